"""Runs a grid of training runs (variants x seeds) and tabulates them.

Used by the one-script-per-table reproductions in this folder. Every run
goes through the real trainer (``train.train_and_evaluate``) in its own
``WORKDIR/<variant>/seed<k>`` (a finished run's ``results.json`` is
reused, so a killed reproduction restarts where it stopped); the table
gives mean and standard deviation over seeds, plus the wall time, and the
header names the command, machine and date.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from typing import Callable, Dict, List

import jax
import numpy as np
from matplotlib.figure import Figure
from scipy import stats

from dropgraph_jax.training import trainers as train
from experiments import report

# Result keys shown in percent, as the metric: accuracies and the
# segmentation overlaps.
PERCENT_SUFFIXES = ("accuracy", "iou_fg", "dice_fg", "miou", "macc")


def run_grid(variants: Dict[str, Callable[[int], object]], seeds: List[int],
             workdir: str, metric: str) -> Dict[str, List[dict]]:
  """``variants``: name -> (seed -> config). Returns name -> results."""
  out = {}
  for name, make in variants.items():
    out[name] = []
    for seed in seeds:
      run_dir = os.path.join(workdir, name.replace(" ", "_"), f"seed{seed}")
      done = os.path.join(run_dir, "results.json")
      if os.path.exists(done):
        with open(done) as f:
          out[name].append(json.load(f))
        continue
      config = make(seed)
      start = time.time()
      result = train.train_and_evaluate(config, run_dir)
      result.pop("state", None)
      print(f"{name} seed {seed}: {metric} {result[metric]:.4f} "
            f"({time.time() - start:.0f} s)", flush=True)
      out[name].append(result)
  return out


def table(title: str, results: Dict[str, List[dict]], metric: str,
          label: str, paper: Dict[str, str], note: str, out: str,
          scale: float = 100.0, extra: Dict[str, str] = None,
          pairs: List[tuple] = ()) -> None:
  """Markdown (``out``) and a bar chart (``out`` with ``.png``) of
  ``metric``; ``extra`` (result key -> label) adds mean +- std columns
  (keys ending in :data:`PERCENT_SUFFIXES` scaled like ``metric``); ``pairs`` of
  variant names get a significance test (:func:`significance`)."""
  extra = extra or {}
  total = sum(r["wall_time_s"] for runs in results.values() for r in runs)
  columns = [label] + list(extra.values())
  lines = report.header(title) + [
      f"Backend: {jax.default_backend()} ({jax.devices()[0].device_kind}). "
      + note + f" Wall time of all {sum(map(len, results.values()))} runs: "
      f"{total / 60:.0f} min.", "",
      "| variant | " + " | ".join(f"{c} (mean +- std)" for c in columns) +
      " | seeds | wall time per run, s | paper |",
      "|---|" + "---|" * (len(columns) + 3)]

  def summary(key):
    values = np.array([r[key] for r in runs]) * (
        scale if key == metric or key.endswith(PERCENT_SUFFIXES) else 1.0)
    return values, values.mean(), (values.std(ddof=1) if len(values) > 1
                                   else 0.0)

  means, stds = [], []
  for name, runs in results.items():
    values, mean, std = summary(metric)
    means.append(mean)
    stds.append(std)
    def cell(mean, std, count):  # no spread from a single seed
      return f"{mean:.2f} +- {std:.2f}" if count > 1 else f"{mean:.2f}"

    cells = [cell(mean, std, len(values))] + [
        cell(*summary(key)[1:], len(values)) for key in extra]
    wall = np.mean([r["wall_time_s"] for r in runs])
    lines.append(f"| {name} | " + " | ".join(cells) +
                 f" | {len(values)} | {wall:.0f} | {paper.get(name, '')} |")
  lines += significance(results, metric, scale, pairs)
  report.emit(lines, out)
  fig = Figure(figsize=(1.2 * len(means) + 2, 3.5))  # no pyplot state
  ax = fig.subplots()
  ax.bar(range(len(means)), means, yerr=stds, capsize=4, color="#4c72b0")
  ax.set_xticks(range(len(means)), list(results), rotation=30, ha="right")
  ax.set_ylabel(label)
  low = min(m - s for m, s in zip(means, stds))
  high = max(m + s for m, s in zip(means, stds))
  ax.set_ylim(low - 0.1 * (high - low + 1e-9), high + 0.1 * (high - low + 1e-9))
  # Wrapped to the figure (~13 characters an inch at 9 pt): long titles
  # name the whole protocol and would be cut at the right edge.
  ax.set_title(textwrap.fill(title, int(13 * (1.2 * len(means) + 2))),
               fontsize=9)
  fig.tight_layout()
  fig.savefig(os.path.splitext(out)[0] + ".png", dpi=120)


def significance(results: Dict[str, List[dict]], metric: str, scale: float,
                 pairs: List[tuple]) -> List[str]:
  """Markdown rows of Welch's two-sided t-test on ``metric`` for each
  ``(a, b)`` in ``pairs`` whose rows both have 2+ seeds."""
  rows = []
  for a, b in pairs:
    if a not in results or b not in results or min(
        len(results[a]), len(results[b])) < 2:
      continue
    va = np.array([r[metric] for r in results[a]]) * scale
    vb = np.array([r[metric] for r in results[b]]) * scale
    test = stats.ttest_ind(va, vb, equal_var=False)
    rows.append(f"| {a} vs {b} | {va.mean() - vb.mean():+.2f} | "
                f"{test.statistic:+.2f} | {test.pvalue:.3g} |")
  if not rows:
    return []
  return ["", "Welch's t-test (two-sided, per-seed values):", "",
          "| comparison | difference of means | t | p |", "|---|---|---|---|",
          *rows]
