"""Builds the API reference from the docstrings, and fails on a broken one.

    python docs/build_api.py --out build/api      # then open build/api/index.html

pdoc renders every module of the package (``-d restructuredtext``: our
docstrings use ``:func:`` roles and double backticks). The build fails
(exit 1) on any warning pdoc raises and on any cross-reference role
(``:func:``, ``:mod:``, ``:class:``, ``:meth:``, ``:data:``, ``:attr:``)
that names nothing importable: a renamed function leaves no silent dead
link. ``tests/test_docs.py`` runs it, so CI builds the reference.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import pathlib
import pkgutil
import re
import sys
import warnings
from typing import Iterator, List, Optional, Tuple

ROLE = re.compile(r":(func|mod|class|meth|data|attr):`~?([\w.]+?)(?:\(\))?`")
PACKAGE = "dropgraph_jax"
# pdoc cannot evaluate the postponed annotations of a NamedTuple's
# generated __init__ (it looks them up in the collections module).
KNOWN_PDOC_LIMITS = re.compile(r"Error parsing type annotation .* for "
                               r"[\w.]+\.__init__\. Import of \w+ failed")


def modules(package: str = PACKAGE) -> List[str]:
  root = importlib.import_module(package)
  names = [package] + [m.name for m in pkgutil.walk_packages(
      root.__path__, package + ".")]
  return sorted(n for n in names if not n.split(".")[-1].startswith("__"))


def _docstrings(tree: ast.AST) -> Iterator[Tuple[str, Optional[str]]]:
  """``(docstring, enclosing class name)`` of every documented node."""
  def walk(node, cls):
    for child in ast.iter_child_nodes(node):
      if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                            ast.ClassDef)):
        doc = ast.get_docstring(child)
        inner = child.name if isinstance(child, ast.ClassDef) else cls
        if doc:
          yield doc, inner
        yield from walk(child, inner)
  doc = ast.get_docstring(tree)
  if doc:
    yield doc, None
  yield from walk(tree, None)


def _lookup(obj, dotted: str) -> bool:
  for part in dotted.split("."):
    if not hasattr(obj, part):
      return False
    obj = getattr(obj, part)
  return True


def resolves(target: str, module, cls: Optional[str]) -> bool:
  """Whether ``target`` names something from ``module`` (its namespace,
  its class ``cls``, its package) or as an absolute dotted path."""
  target = target.lstrip(".")  # a relative name: found below
  parts = target.split(".")
  for i in range(len(parts), 0, -1):  # absolute: longest importable prefix
    try:
      base = importlib.import_module(".".join(parts[:i]))
    except (ImportError, TypeError, ValueError):
      continue
    if _lookup(base, ".".join(parts[i:])) if parts[i:] else True:
      return True
  if _lookup(module, target):
    return True
  if cls and _lookup(getattr(module, cls, None), target):
    return True
  package = (module.__name__ if hasattr(module, "__path__") else
             module.__name__.rsplit(".", 1)[0])
  for prefix in (package, PACKAGE):
    try:
      importlib.import_module(f"{prefix}.{target}")
      return True
    except ImportError:
      if _lookup(importlib.import_module(prefix), target):
        return True
  return False


def broken_references(names: List[str]) -> List[str]:
  out = []
  for name in names:
    module = importlib.import_module(name)
    with open(module.__file__, encoding="utf-8") as f:
      tree = ast.parse(f.read())
    for doc, cls in _docstrings(tree):
      for _, target in ROLE.findall(doc):
        if not resolves(target, module, cls):
          out.append(f"{name}: {target}")
  return sorted(set(out))


def build(out: str) -> List[str]:
  """Writes the HTML reference to ``out``; returns the problems found."""
  os.environ.setdefault("PDOC_ALLOW_EXEC", "1")  # TensorFlow runs uname
  import pdoc  # noqa: E402 (after the variable it reads)
  names = modules()
  problems = broken_references(names)
  # pdoc walks each package itself: name the top-level ones only.
  # (The package's __all__ names the submodules pdoc walks from it.)
  shown = set(getattr(importlib.import_module(PACKAGE), "__all__", ()))
  tops = [n for n in names if n == PACKAGE or (
      n.count(".") == 1 and n.split(".")[1] not in shown)]
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    pdoc.render.configure(docformat="restructuredtext")
    pdoc.pdoc(*tops, output_directory=pathlib.Path(out))
  problems += [f"pdoc: {w.message}" for w in caught
               if "pdoc" in (w.filename or "") and
               not KNOWN_PDOC_LIMITS.search(str(w.message))]
  return problems


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="build/api")
  args = parser.parse_args(argv)
  problems = build(args.out)
  for problem in problems:
    print(f"error: {problem}", file=sys.stderr)
  if not problems:
    print(f"API reference: {args.out}/index.html")
  return 1 if problems else 0


if __name__ == "__main__":
  sys.exit(main())
