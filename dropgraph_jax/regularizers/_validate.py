"""Trace-time argument checks shared by every regularizer.

Each check raises ``ValueError`` naming the function, the argument and the
offending value. They run while JAX traces the function, before any
computation is staged, so a bad call fails at the first ``jit`` trace.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

Rate = Union[float, jax.Array]


def _label(fn: str, name: str) -> str:
  """How a message names an argument: ``fn: name``, or ``config.name``
  when ``fn`` is ``'config'`` (a config field)."""
  return f"config.{name}" if fn == "config" else f"{fn}: {name}"


def static_value(value) -> Optional[float]:
  """Returns ``value`` as a Python float when it is known at trace time.

  Returns ``None`` for a traced value (e.g. a rate computed from the step
  counter inside ``jit``), which the caller must then treat symbolically.
  """
  if isinstance(value, jax.core.Tracer):
    return None
  try:
    return float(value)
  except (TypeError, jax.errors.ConcretizationTypeError):
    return None


def check_train(fn: str, train) -> bool:
  """``train`` selects a different program, so it must be static."""
  if isinstance(train, (bool, np.bool_)):
    return bool(train)
  raise ValueError(
      f"{fn}: train must be a Python bool (it selects a different compiled "
      f"program), got {train!r} of type {type(train).__name__}.")


def check_rate(fn: str, rate: Rate, name: str = "rate",
               upper_inclusive: bool = False) -> Optional[float]:
  """Checks a probability in [0, 1) (or [0, 1]) and returns its static value.

  A traced rate cannot be range-checked at trace time; it is returned as
  ``None`` and used as is (never clipped). Schedules in
  :mod:`dropgraph_jax.schedules` validate their targets, so a traced rate
  from a schedule is in range by construction.
  """
  label = _label(fn, name)
  if rate is None or isinstance(rate, (str, bytes, bool, np.bool_)):
    raise ValueError(f"{label} must be a number in [0, 1), got "
                     f"{rate!r} of type {type(rate).__name__}.")
  if jnp.ndim(rate) != 0:
    raise ValueError(f"{fn}: {name} must be a scalar, got shape "
                     f"{jnp.shape(rate)}.")
  value = static_value(rate)
  if value is None:
    if not jnp.issubdtype(jnp.result_type(rate), jnp.floating):
      raise ValueError(f"{fn}: a traced {name} must be floating point, got "
                       f"dtype {jnp.result_type(rate)}.")
    return None
  ok = 0.0 <= value <= 1.0 if upper_inclusive else 0.0 <= value < 1.0
  if not ok:
    interval = "[0, 1]" if upper_inclusive else "[0, 1)"
    why = ("; a rate of 1 would drop every unit and divide by a kept "
           "fraction of 0 (flax's nn.Dropout returns zeros there); to zero "
           "a tensor, multiply it by 0" if value == 1.0 else "")
    raise ValueError(f"{label} must be in {interval}, got "
                     f"{value!r}{why}.")
  return value


def check_floating(fn: str, x: jax.Array, name: str = "x") -> None:
  dtype = jnp.result_type(x)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"{fn}: {name} must have a floating dtype (float32, "
                     f"bfloat16, float16, ...), got {dtype}.")


def check_rank(fn: str, x: jax.Array, ranks: Sequence[int], layout: str,
               name: str = "x") -> None:
  if jnp.ndim(x) not in ranks:
    raise ValueError(f"{fn}: {name} must be {layout} (rank "
                     f"{' or '.join(map(str, ranks))}), got shape "
                     f"{jnp.shape(x)} of rank {jnp.ndim(x)}.")


def check_key(fn: str, key) -> None:
  if type(key).__name__ in ("Rngs", "RngStream"):  # flax.nnx, not imported
    raise ValueError(f"{fn}: key must be a JAX key, got an nnx "
                     f"{type(key).__name__}; pass key=rngs.dropout() (or use "
                     "the modules of dropgraph_jax.nnx_layers).")
  if key is None:
    raise ValueError(f"{fn}: key is required when train=True and rate > 0; "
                     "pass key=jax.random.key(seed).")
  dtype = jnp.result_type(key) if not hasattr(key, "dtype") else key.dtype
  if jnp.issubdtype(dtype, jax.dtypes.prng_key):
    if jnp.ndim(key) != 0:
      raise ValueError(f"{fn}: key must be a single PRNG key, got a key array "
                       f"of shape {jnp.shape(key)}.")
    return
  if dtype != jnp.uint32 or jnp.shape(key) != (2,):
    raise ValueError(f"{fn}: key must be a PRNG key (jax.random.key(seed) or "
                     f"a legacy uint32[2] key), got dtype {dtype} and shape "
                     f"{jnp.shape(key)}.")


def check_number(fn: str, name: str, value, low=None, high=None, *,
                 low_open: bool = False, integer: bool = False):
  """A finite Python or NumPy number (never a bool or a string) in
  ``[low, high]`` (``(low, high]`` with ``low_open``); returns it as a
  Python ``int`` (``integer``) or ``float``. ``fn='config'`` names a
  config field: the message says ``config.<name>``."""
  ok = (isinstance(value, (int, float, np.integer, np.floating)) and
        not isinstance(value, (bool, np.bool_)) and np.isfinite(value) and
        (not integer or float(value).is_integer()))
  if ok and low is not None:
    ok = value > low if low_open else value >= low
  if ok and high is not None:
    ok = value <= high
  if not ok:
    kind = "an integer" if integer else "a finite number"
    lo = "" if low is None else f" {'>' if low_open else '>='} {low}"
    hi = "" if high is None else f"{' and' if lo else ''} <= {high}"
    label = _label(fn, name)
    raise ValueError(f"{label} must be {kind}{lo}{hi}, got {value!r} of "
                     f"type {type(value).__name__}.")
  return int(value) if integer else float(value)


def check_flag(fn: str, name: str, value) -> bool:
  """A Python or NumPy bool: a truthy string such as 'no' is refused."""
  if not isinstance(value, (bool, np.bool_)):
    label = _label(fn, name)
    raise ValueError(f"{label} must be True or False, got {value!r} of "
                     f"type {type(value).__name__}.")
  return bool(value)


def compile_regex(fn: str, name: str, pattern):
  """``re.compile(pattern)``, or a ValueError naming ``name``."""
  label = _label(fn, name)
  if not isinstance(pattern, str):
    raise ValueError(f"{label} must be a regular expression string, got "
                     f"{pattern!r}.")
  try:
    return re.compile(pattern)
  except re.error as e:
    raise ValueError(f"{label}={pattern!r} is not a valid regular "
                     f"expression ({e}).") from None


def check_choice(fn: str, name: str, value, choices: Sequence[str]) -> str:
  if value not in choices:
    raise ValueError(f"{fn}: {name} must be one of {list(choices)}, got "
                     f"{value!r}.")
  return value


def pair(fn: str, name: str, value) -> Tuple[int, int]:
  """Normalises an int or a pair of ints to ``(height, width)``."""
  if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
    out = (int(value), int(value))
  elif (isinstance(value, (tuple, list)) and len(value) == 2 and
        all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
            for v in value)):
    out = (int(value[0]), int(value[1]))
  else:
    raise ValueError(f"{fn}: {name} must be an int or a pair of ints "
                     f"(height, width), got {value!r}.")
  if min(out) < 1:
    raise ValueError(f"{fn}: {name} must be >= 1, got {value!r}.")
  return out
