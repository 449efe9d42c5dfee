"""Where a run came from: what ``results.json`` records beside the scores.

The resolved config, the seed, the versions of this package and of the
libraries that decide the numbers (JAX, jaxlib, Flax, Optax, orbax), the
git commit when the package runs from a checkout (with ``dirty`` when the
checkout has uncommitted changes), and the devices: kind, count and
process count. Enough to rerun a row of a table, or to see why two rows
cannot be compared.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
from typing import Any, Dict, Optional

import jax

PACKAGES = ("dropgraph_jax", "jax", "jaxlib", "flax", "optax",
            "orbax-checkpoint")


def versions() -> Dict[str, Optional[str]]:
  out = {}
  for name in PACKAGES:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = None
  return out


def git_commit() -> Optional[Dict[str, Any]]:
  """``{"commit": sha, "dirty": bool}`` of the checkout this package is
  imported from, or ``None`` (an installed wheel, or no git)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    sha = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"],
                         capture_output=True, text=True, timeout=10)
    if sha.returncode:
      return None
    status = subprocess.run(["git", "-C", root, "status", "--porcelain",
                             "--untracked-files=no"], capture_output=True,
                            text=True, timeout=10)
  except (OSError, subprocess.SubprocessError):
    return None
  return {"commit": sha.stdout.strip(), "dirty": bool(status.stdout.strip())}


def record(config) -> Dict[str, Any]:
  """The provenance block of ``results.json`` for a run of ``config``."""
  devices = jax.devices()
  return {"config": json.loads(config.to_json_best_effort()),
          "seed": config.get("seed"), "versions": versions(),
          "git": git_commit(), "device_kind": devices[0].device_kind,
          "device_count": len(devices),
          "process_count": jax.process_count()}


def hparams(config) -> Dict[str, Any]:
  """The config flattened to TensorBoard hparams (numbers, strings and
  bools; sequences as strings)."""
  out = {}

  def walk(tree, prefix):
    for key, value in tree.items():
      name = f"{prefix}{key}"
      if isinstance(value, dict):
        walk(value, name + ".")
      elif isinstance(value, (bool, int, float, str)):
        out[name] = value
      else:
        out[name] = str(value)
  walk(json.loads(config.to_json_best_effort()), "")
  return out
