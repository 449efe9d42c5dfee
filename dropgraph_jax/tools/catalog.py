"""The experiment configs a CLI can run, for its ``--help``.

Reads ``configs/`` (beside the package in a checkout, else in the working
directory) without importing the configs: each file's first docstring
line and its ``REGULARIZERS`` variants, the values after ``:`` in
``--config configs/NAME.py:VARIANT``.
"""

from __future__ import annotations

import ast
import os
from typing import List, Optional, Tuple


def config_dir(subdir: str = "") -> Optional[str]:
  here = os.path.dirname(os.path.abspath(__file__))
  for root in (os.path.join(here, "..", ".."), os.getcwd()):
    path = os.path.normpath(os.path.join(root, "configs", subdir))
    if os.path.isdir(path):
      return path
  return None


def _entry(path: str) -> Tuple[str, Tuple[str, ...]]:
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read())
  paragraph = (ast.get_docstring(tree) or "").strip().split("\n\n")[0]
  summary = " ".join(paragraph.split()).split(". ")[0].rstrip(".")
  summary = summary if len(summary) <= 90 else summary[:87] + "..."
  variants = ()
  for node in tree.body:
    if (isinstance(node, ast.Assign) and len(node.targets) == 1 and
        getattr(node.targets[0], "id", "") == "REGULARIZERS"):
      try:
        variants = tuple(ast.literal_eval(node.value))
      except ValueError:
        pass
  return summary, variants


def configs_help(subdir: str = "") -> str:
  """One line per config: path, variants, summary."""
  folder = config_dir(subdir)
  if folder is None:
    return "(no configs/ folder found: run from the repository root)"
  lines: List[str] = []
  for name in sorted(os.listdir(folder)):
    if not name.endswith(".py") or name.startswith("_"):
      continue
    summary, variants = _entry(os.path.join(folder, name))
    shown = f":{{{','.join(variants)}}}" if variants else ""
    lines.append(f"  configs/{subdir + '/' if subdir else ''}{name}{shown}"
                 f"  {summary}")
  return "\n".join(lines)
