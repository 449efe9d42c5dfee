"""What a training run writes to its workdir, besides checkpoints.

* TensorBoard summaries through clu's default metric writer;
* ``log.txt``: one JSON object per logged step (``{"step": s, ...}``),
  appended, so a resumed run continues the same file; a resume first drops
  the rows past the checkpoint it resumes from (those steps run again), so
  the file holds each step once however often a run is resumed;
* a tqdm progress bar with ETA when stderr is an interactive terminal;
* ``results.json`` at the end (:meth:`RunLog.write_results`).

Only process 0 writes files; other hosts log through absl only.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, Mapping

import jax
from clu import metric_writers
from tqdm import tqdm


def _truncate_after(path: str, step: int) -> None:
  """Keeps the rows of ``path`` up to ``step`` (written atomically)."""
  with open(path) as f:
    rows = [line for line in f if line.strip() and
            json.loads(line).get("step", 0) <= step]
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(rows)
  os.replace(tmp, path)


class RunLog:
  """Scalar metrics to TensorBoard and ``log.txt``, plus a progress bar."""

  def __init__(self, workdir: str, total_steps: int, start_step: int = 0):
    self.workdir = workdir
    self.lead = jax.process_index() == 0
    self.writer = metric_writers.create_default_writer(
        workdir, just_logging=not self.lead)
    path = os.path.join(workdir, "log.txt")
    if self.lead and start_step and os.path.exists(path):
      _truncate_after(path, start_step)
    self.file = open(path, "a") if self.lead else None
    self.bar = None
    if self.lead and sys.stderr.isatty():
      self.bar = tqdm(total=total_steps, initial=start_step, desc="train")

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    values = {k: float(v) for k, v in values.items()}
    self.writer.write_scalars(step, values)
    if self.file:
      self.file.write(json.dumps({"step": step, **values}) + "\n")
      self.file.flush()

  def advance(self) -> None:
    if self.bar:
      self.bar.update(1)

  def write_results(self, results: Dict[str, Any]) -> None:
    if self.lead:
      path = os.path.join(self.workdir, "results.json")
      with open(f"{path}.tmp", "w") as f:
        json.dump(results, f, indent=2)
      os.replace(f"{path}.tmp", path)

  def close(self) -> None:
    if self.bar:
      self.bar.close()
      self.bar = None
    self.writer.flush()
    if self.file:
      self.file.close()
      self.file = None
