"""Header and output file of the benchmark reports in this folder."""

from __future__ import annotations

import datetime
import os
import sys

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
