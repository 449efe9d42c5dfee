"""What a training run writes to its workdir and console, besides
checkpoints.

* TensorBoard summaries through clu's default metric writer, with the
  config as hparams (unless ``config.tensorboard`` is False: clu's writer
  imports TensorFlow, about 4 s of a start here);
* ``log.txt``: one JSON object per logged step (``{"step": s, ...}``),
  appended, so a resumed run continues the same file; a resume first drops
  the rows past the checkpoint it resumes from (those steps run again), so
  the file holds each step once however often a run is resumed;
* ``results.json`` at the end (:meth:`RunLog.write_results`), with the
  run's provenance (config, seed, versions, commit, devices);
* on the console (stdout): a header (:meth:`RunLog.header`), a note while
  the step compiles, a progress line with the ETA about every
  ``1 / PROGRESS_LINES`` of the run (plain lines, so it reads the same in
  a terminal and in a log file), and one line per evaluation.

Only process 0 writes files and prints; other hosts log their scalars
through absl only, and never import clu's writers (they import TensorFlow:
about 4 s of every process's start here, which a non-writing host does
not need).
"""

from __future__ import annotations

import datetime
import json
import os
import time
from typing import Any, Dict, Mapping

import jax
from absl import logging

from dropgraph_jax.training import provenance

PROGRESS_LINES = 5  # progress lines per run


def _truncate_after(path: str, step: int) -> None:
  """Keeps the rows of ``path`` up to ``step`` (written atomically)."""
  with open(path) as f:
    rows = [line for line in f if line.strip() and
            json.loads(line).get("step", 0) <= step]
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.writelines(rows)
  os.replace(tmp, path)


def _eta(seconds: float) -> str:
  return str(datetime.timedelta(seconds=int(max(seconds, 0))))


class RunLog:
  """Scalar metrics to TensorBoard, ``log.txt`` and the console."""

  def __init__(self, workdir: str, total_steps: int, start_step: int = 0,
               config=None):
    self.workdir = workdir
    self.config = config
    self.lead = jax.process_index() == 0
    self.writer = None
    if self.lead and (config is None or config.get("tensorboard", True)):
      from clu import metric_writers  # pylint: disable=g-import-not-at-top
      self.writer = metric_writers.create_default_writer(workdir)
    if config is not None and not start_step and self.writer is not None:
      self.writer.write_hparams(provenance.hparams(config))
    path = os.path.join(workdir, "log.txt")
    if self.lead and start_step and os.path.exists(path):
      _truncate_after(path, start_step)
    self.file = open(path, "a") if self.lead else None
    self.total, self.start = total_steps, start_step
    self.every = max(1, total_steps // PROGRESS_LINES)
    self.reported = start_step
    self.clock = None  # set when the first step has run (after compiling)

  def print(self, text: str) -> None:
    if self.lead:
      print(text, flush=True)

  def header(self, what: str, params: int, regularizer: str, sites: int,
             devices: int) -> None:
    """One line on what runs, then the compile note."""
    where = f", resuming at step {self.start}" if self.start else ""
    reg = (f"regularizer {regularizer} at {sites} sites" if sites else
           f"regularizer {regularizer}")
    self.print(f"{what}: {params / 1e6:.2f}M parameters, {reg}, "
               f"{self.total} steps on {devices} {jax.default_backend()} "
               f"device(s), workdir {self.workdir}{where}")
    self.print("compiling the training step ...")

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    values = {k: float(v) for k, v in values.items()}
    if self.writer is None:
      logging.info("[%d] %s", step, values)
    else:
      self.writer.write_scalars(step, values)
    if self.file:
      self.file.write(json.dumps({"step": step, **values}) + "\n")
      self.file.flush()
    shown = {k.split("/", 1)[1]: v for k, v in values.items()
             if k.startswith(("eval/", "train_eval/"))}
    if shown:
      label = "train (eval mode)" if "train_eval/" in next(iter(values)) \
          else "eval"
      self.print(f"  {label} at step {step}: " + ", ".join(
          f"{k} {v:.4f}" for k, v in shown.items()))
    elif "train/loss" in values:
      self._progress(step, values["train/loss"])

  def _progress(self, step: int, loss: float) -> None:
    if self.clock is None:
      self.clock = (time.time(), step)
      self.print(f"  step {step}/{self.total}, loss {loss:.4f} (compiled; "
                 "speed and ETA from here)")
      return
    if step - self.reported < self.every and step != self.total:
      return
    self.reported = step
    start, first = self.clock
    rate = (step - first) / max(time.time() - start, 1e-9)
    self.print(f"  step {step}/{self.total} ({100 * step // self.total}%), "
               f"loss {loss:.4f}, {rate:.1f} steps/s, ETA "
               f"{_eta((self.total - step) / max(rate, 1e-9))}")

  def write_results(self, results: Dict[str, Any]) -> None:
    """``results`` plus the run's provenance (:mod:`provenance`, when the
    log was given the config) to ``results.json``."""
    if self.config is not None:
      results = {**results, **provenance.record(self.config)}
    if self.lead:
      path = os.path.join(self.workdir, "results.json")
      with open(f"{path}.tmp", "w") as f:
        json.dump(results, f, indent=2)
      os.replace(f"{path}.tmp", path)

  def close(self) -> None:
    if self.writer is not None:
      self.writer.flush()
    if self.file:
      self.file.close()
      self.file = None
