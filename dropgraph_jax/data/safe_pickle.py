"""Unpickling that resolves only numpy, scipy.sparse and builtin types.

Planetoid's ``ind.NAME.*`` files are Python-2 pickles. :func:`load` reads
them with an unpickler whose ``find_class`` knows only the globals of
:data:`ALLOWED` (numpy arrays and scalars, scipy.sparse matrices and arrays
under their old and new module paths, builtin containers); any other
global, e.g. ``os.system`` in a crafted ``__reduce__``, raises
``ValueError`` before anything runs. This is the standard library's own
recipe (the ``pickle`` documentation's "Restricting Globals": override
``Unpickler.find_class``) with the table these files need.
"""

from __future__ import annotations

import codecs
import collections
import itertools
import pickle
from typing import Any, Dict, Tuple

import numpy as np
from scipy import sparse


class RefusedPickle(ValueError):
  """A pickle names a global outside :data:`ALLOWED`."""


def _allowed_globals() -> Dict[Tuple[str, str], Any]:
  """(module, name) -> object, in every spelling old and new files use."""
  table: Dict[Tuple[str, str], Any] = {
      ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
      ("collections", "defaultdict"): collections.defaultdict,
      ("_codecs", "encode"): codecs.encode}  # bytes in Python-3 protocol 2
  for c in ("numpy.core", "numpy._core"):  # numpy 1 and 2
    table[(f"{c}.multiarray", "_reconstruct")] = np.empty(0).__reduce__()[0]
    table[(f"{c}.multiarray", "scalar")] = np.float64(0).__reduce__()[0]
    table[(f"{c}.numeric", "_frombuffer")] = np.ones(1).__reduce_ex__(5)[0]
  for f, kind in itertools.product(("csr", "csc", "coo"), ("matrix", "array")):
    for module in ("", f".{f}", f"._{f}"):  # public, scipy < 1.8, >= 1.8
      table[(f"scipy.sparse{module}", f"{f}_{kind}")] = getattr(
          sparse, f"{f}_{kind}")
  for module in ("__builtin__", "builtins"):  # Python 2 and 3
    for cls in (list, dict, set, frozenset, tuple, int, float, bool, complex):
      table[(module, cls.__name__)] = cls
  return table


ALLOWED = _allowed_globals()


class RestrictedUnpickler(pickle.Unpickler):
  """Resolves only :data:`ALLOWED` globals (latin-1 for Python-2 strings);
  a refusal names ``caller``, ``path`` and ``hint``."""

  def __init__(self, file, caller: str, path: str, hint: str):
    super().__init__(file, encoding="latin1")
    self.caller, self.path, self.hint = caller, path, hint

  def find_class(self, module: str, name: str):
    if (module, name) not in ALLOWED:
      raise RefusedPickle(
          f"{self.caller}: refusing to unpickle {module}.{name} from "
          f"{self.path!r}: only numpy/scipy/builtin types are allowed; "
          f"{self.hint}")
    return ALLOWED[(module, name)]


def load(path: str, caller: str, hint: str):
  """The object pickled in ``path``; ``ValueError`` naming ``caller`` and
  ``hint`` (what the files should be) if it is missing, damaged or names a
  global outside :data:`ALLOWED`."""
  try:
    with open(path, "rb") as f:
      return RestrictedUnpickler(f, caller, path, hint).load()
  except RefusedPickle:
    raise
  except Exception as e:  # missing, or garbage failing in one of many ways
    raise ValueError(f"{caller}: cannot read {path!r} ({type(e).__name__}: "
                     f"{e}); {hint}") from None
