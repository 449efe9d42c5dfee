"""The one registry of the library's regularizers: name -> function.

Configs, policies (``RegularizerSpec.kind``), the trainers, the search and
the tests read names and option names from here, so a regularizer added
to the library is added in one place::

    from dropgraph_jax.regularizers import registry
    registry.get("drop_block").fn(x, key=key, rate=0.1, block_size=7,
                                  train=True)
    registry.option_names("dropgraph")   # {'rate', 'alpha', ...}

Each entry names its input layout and the options a trainer config passes
from ``config.regularizer`` (``config_options``); the full option set of a
regularizer is the keyword-only parameters of its function, less the
per-call ones (``x``, ``params``, ``key``, ``train``).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from typing import Any, Callable, Dict, FrozenSet, Mapping, Tuple

from dropgraph_jax.regularizers import _validate
from dropgraph_jax.regularizers.disout import disout
from dropgraph_jax.regularizers.drop_block import drop_block
from dropgraph_jax.regularizers.dropgraph import dropgraph
from dropgraph_jax.regularizers.dropout import (
  drop_path,
  dropout,
  spatial_dropout,
  variational_dropout,
  word_dropout,
)
from dropgraph_jax.regularizers.graph_signal import (
  graph_disout,
  graph_dropgraph,
  graph_dropout,
  graph_spatial_dropout,
)
from dropgraph_jax.regularizers.partial_reasoning import partial_reasoning

# Arguments of every call, never options of a spec or config.
CALL_ARGS = frozenset({"x", "params", "key", "train"})


@dataclasses.dataclass(frozen=True)
class Regularizer:
  """One registered regularizer.

  ``layout``: the input it takes (``'NHWC'``, ``'NTC'``, ``'N...'``,
  ``'NC'`` (node features ``(N, C)`` or ``(B, N, C)``), or ``'any'``).
  ``config_options``: the ``config.regularizer`` fields a trainer passes
  to it (besides ``options``). ``needs_params``: it has
  trainable weights (DropGraph's graph), so a model must create them.
  ``reads_next_conv``: it takes the kernel of the convolution that follows
  (Disout), which models pass at their sites.
  """
  name: str
  fn: Callable
  layout: str
  config_options: Tuple[str, ...] = ("rate",)
  needs_params: bool = False
  reads_next_conv: bool = False


REGISTRY: Dict[str, Regularizer] = {r.name: r for r in (
    Regularizer("dropout", dropout, "any"),
    Regularizer("spatial_dropout", spatial_dropout, "NHWC"),
    Regularizer("drop_block", drop_block, "NHWC", ("rate", "block_size")),
    Regularizer("disout", disout, "NHWC", ("rate", "block_size"),
                reads_next_conv=True),
    Regularizer("dropgraph", dropgraph, "NHWC",
                ("rate", "block_size", "alpha"), needs_params=True),
    Regularizer("partial_reasoning", partial_reasoning, "NHWC",
                needs_params=True),
    Regularizer("drop_path", drop_path, "N..."),
    Regularizer("variational_dropout", variational_dropout, "NTC"),
    Regularizer("word_dropout", word_dropout, "NTC"),
    Regularizer("graph_dropout", graph_dropout, "NC"),
    Regularizer("graph_spatial_dropout", graph_spatial_dropout, "NC"),
    Regularizer("graph_disout", graph_disout, "NC", ("rate",)),
    Regularizer("graph_dropgraph", graph_dropgraph, "NC", ("rate", "alpha"),
                needs_params=True),
)}


def names() -> Tuple[str, ...]:
  """Every registered name, sorted."""
  return tuple(sorted(REGISTRY))


def get(name: str, where: str = "regularizer") -> Regularizer:
  """The entry for ``name``; ``ValueError`` naming ``where`` otherwise."""
  if name not in REGISTRY:
    close = difflib.get_close_matches(str(name), REGISTRY, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{where}: unknown regularizer {name!r}; registered: "
                     f"{list(names())}.{hint}")
  return REGISTRY[name]


def option_names(name: str) -> FrozenSet[str]:
  """The keyword options ``name``'s function accepts (``rate``, ...)."""
  params = inspect.signature(get(name).fn).parameters
  return frozenset(params) - CALL_ARGS


def _check_option(where: str, name: str, value, default) -> None:
  """``value`` has the type ``default`` implies: a bool flag, a number
  (an int default also takes an ``(h, w)`` pair: block sizes), a string
  (its choices are checked by the function), or anything for ``None``."""
  if isinstance(default, bool):
    _validate.check_flag(where, name, value)
  elif isinstance(default, str):
    if not isinstance(value, str):
      raise ValueError(f"{where}: {name} must be a string, got {value!r} "
                       f"of type {type(value).__name__}.")
  elif isinstance(default, int) and isinstance(value, (tuple, list)):
    _validate.pair(where, name, value)
  elif isinstance(default, (int, float)):
    _validate.check_number(where, name, value,
                           integer=isinstance(default, int))
  elif name == "temperature" and value is not None:
    _validate.check_number(where, name, value, 0, low_open=True)


def check_options(name: str, options: Mapping[str, Any],
                  where: str = "regularizer") -> None:
  """Every option of ``options`` is one ``name``'s function takes, with a
  value of the right type (``rate`` in [0, 1)): the errors a policy file
  or config would otherwise give only when the model is first traced."""
  params = inspect.signature(get(name, where).fn).parameters
  for option, value in options.items():
    if option not in params or option in CALL_ARGS:
      raise ValueError(f"{where}: unknown field {option!r} for kind "
                       f"{name!r}; allowed: {sorted(option_names(name))}.")
    if option == "rate":
      _validate.check_rate(where, value)
    else:
      _check_option(where, option, value, params[option].default)
