"""Header and output files of the benchmark reports in this folder."""

from __future__ import annotations

import datetime
import json
import os
import sys
from typing import Dict, List

import jax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command() -> str:
  """The command that is running, as ``python -m experiments.<module> ...``
  (how every script here is run from the repository root)."""
  script = os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)
  module = script[:-len(".py")].replace(os.sep, ".")
  return " ".join(["python -m", module, *sys.argv[1:]])


def header(title: str, command_line: str = "") -> list:
  """Title, machine, date and the exact command (``command_line``, or the
  running one), as Markdown lines."""
  dev = jax.devices()[0]
  return [f"# {title}", "",
          f"Machine: {dev.platform}:{dev.device_kind} · {os.cpu_count()} "
          f"CPUs · jax {jax.__version__}  ",
          f"Date: {datetime.date.today().isoformat()}  ",
          f"Command: `{command_line or command()}`", ""]


def parse_shapes(text: str) -> list:
  """``'64x28x28x512,64x14x14x1024'`` -> ``[(64, 28, 28, 512), ...]``."""
  return [tuple(int(d) for d in shape.split("x")) for shape in
          text.split(",")]


def emit(lines: list, out: str) -> None:
  """Prints the report and writes it to ``out`` when given."""
  text = "\n".join(lines)
  print(text)
  if out:
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
      f.write(text + "\n")


class Recorder:
  """Appends each row to ``<stem>.md`` and ``<stem>.json`` at once."""

  def __init__(self, stem: str, title: str, command_line: str):
    self.md, self.json = stem + ".md", stem + ".json"
    self.command = command_line
    self.rows: List[dict] = []
    self.section = None
    with open(self.md, "w") as f:
      f.write("\n".join(header(title, command_line)) + "\n")
    self._dump()

  def _dump(self):
    with open(self.json, "w") as f:
      json.dump({"command": self.command,
                 "device": jax.devices()[0].device_kind,
                 "jax": jax.__version__, "rows": self.rows}, f, indent=1)

  def row(self, section: str, columns: Dict[str, str], **values):
    """One Markdown row under ``section``'s header and one JSON record."""
    with open(self.md, "a") as f:
      if section != self.section:
        f.write(f"\n## {section}\n\n| {' | '.join(columns)} |\n"
                f"|{'---|' * len(columns)}\n")
        self.section = section
      f.write("| " + " | ".join(columns.values()) + " |\n")
    self.rows.append({"section": section, **values})
    self._dump()
    print(section, " | ".join(columns.values()), flush=True)
