"""Rate schedules ``step -> rate`` in optax style, for any regularizer.

All schedules return a float32 scalar, accept a traced ``step`` (so the rate
is a traced value in a compiled train step, with no recompilation), start at
0 where they ramp, reach ``target`` at ``ramp_steps`` and stay there.

With ``t = clip(step / ramp_steps, 0, 1)``:

| name         | rate(step)                     | notes                        |
|--------------|--------------------------------|------------------------------|
| constant     | target                         | optax.constant_schedule      |
| linear       | target * t                     | DropBlock / Disout ramp      |
| f1           | target * t                     | DropGraph appendix A, linear |
| f2           | target * t**2                  | convex: lowest of the five at|
|              |                                | every step                   |
| f3           | target * sin(pi * t / 2)**2    | cosine S-curve (smoothstep)  |
| f4           | target * sin(pi * t / 2)       | concave, fast start          |
| f5           | target * sqrt(t)               | concave, fastest start       |

About f1-f5: the DropGraph appendix (Figure 3) plots five candidate
schedulers from 0 to rho, but its curves are not recoverable from the text.
What the text does fix: one of them is the linear scheduler used in all
ablations (f1: it scores 78.40 / 94.07, the same as the linear-scheduler
ablation of Table 6), and f2 "yields the lowest distortion probabilities at
all training steps". The shapes above honour both facts (t**2 <= every
other curve on [0, 1]) and otherwise span the usual convex, S-shaped and
concave ramps; they are our definition, named after the paper's labels.
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import optax

from dropgraph_jax.regularizers import _validate as v

Schedule = Callable[[jnp.ndarray], jnp.ndarray]

_SHAPES = {
    "linear": lambda t: t,
    "f1": lambda t: t,
    "f2": lambda t: t * t,
    "f3": lambda t: jnp.sin(0.5 * jnp.pi * t) ** 2,
    "f4": lambda t: jnp.sin(0.5 * jnp.pi * t),
    "f5": jnp.sqrt,
}
SCHEDULE_NAMES = ("constant",) + tuple(_SHAPES)


def _check(fn: str, target: float, ramp_steps: int = 1) -> float:
  value = v.check_rate(fn, target, name="target")
  if value is None:
    raise ValueError(f"{fn}: target must be a concrete number, got a traced "
                     "value.")
  if not isinstance(ramp_steps, int) or ramp_steps < 1:
    raise ValueError(f"{fn}: ramp_steps must be an int >= 1, got "
                     f"{ramp_steps!r}.")
  return value


def constant(target: float) -> Schedule:
  """``rate(step) = target``."""
  target = _check("schedules.constant", target)
  sched = optax.constant_schedule(target)
  return lambda step: jnp.asarray(sched(step), jnp.float32)


def ramp(target: float, ramp_steps: int, shape: str = "linear") -> Schedule:
  """``rate(step) = target * shape(clip(step / ramp_steps, 0, 1))``.

  Args:
    target: final rate in [0, 1).
    ramp_steps: steps to reach ``target`` (int >= 1).
    shape: one of ``'linear', 'f1', 'f2', 'f3', 'f4', 'f5'`` (module doc).
  """
  target = _check("schedules.ramp", target, ramp_steps)
  v.check_choice("schedules.ramp", "shape", shape, tuple(_SHAPES))
  curve = _SHAPES[shape]

  def schedule(step):
    t = jnp.clip(jnp.asarray(step, jnp.float32) / ramp_steps, 0.0, 1.0)
    return (target * curve(t)).astype(jnp.float32)

  return schedule


def linear(target: float, ramp_steps: int) -> Schedule:
  """DropBlock's schedule: linear from 0 to ``target`` over ``ramp_steps``."""
  return ramp(target, ramp_steps, "linear")


def get_schedule(name: str, target: float, ramp_steps: int = 1) -> Schedule:
  """Schedule by name (``'constant'`` ignores ``ramp_steps``)."""
  v.check_choice("schedules.get_schedule", "name", name, SCHEDULE_NAMES)
  if name == "constant":
    return constant(target)
  return ramp(target, ramp_steps, name)


def progress(ramp_steps: int, shape: str = "linear") -> Schedule:
  """The ramp's shape alone, from 0 to 1: ``shape(clip(step / ramp_steps))``.

  Models multiply every site's rate by this factor (``rate_factor``), so one
  schedule ramps all regularizers of a policy together. ``'constant'``
  gives 1 at every step.
  """
  v.check_choice("schedules.progress", "shape", shape, SCHEDULE_NAMES)
  if not isinstance(ramp_steps, int) or ramp_steps < 1:
    raise ValueError(f"schedules.progress: ramp_steps must be an int >= 1, "
                     f"got {ramp_steps!r}.")
  if shape == "constant":
    return lambda step: jnp.ones((), jnp.float32)
  curve = _SHAPES[shape]
  return lambda step: curve(jnp.clip(
      jnp.asarray(step, jnp.float32) / ramp_steps, 0.0, 1.0)).astype(
          jnp.float32)
