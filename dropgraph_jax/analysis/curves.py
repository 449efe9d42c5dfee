"""Training curves from runs' ``log.txt`` (DropGraph Figure 4 style).

    python -m dropgraph_jax.analysis.curves \\
        --run "none=runs/repro_overfit/none/seed*" \\
        --run "dropgraph=runs/repro_overfit/dropgraph/seed*" \\
        --out curves.png

Each ``--run LABEL=GLOB`` names one curve; the workdirs its glob matches
(seeds) give the mean and a +- one standard deviation band. Two panels,
as the paper's figure: training accuracy and training loss against the
step (the per-logging-step means the trainer writes), with the test
accuracy of evaluation steps as markers when the runs logged any.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from typing import Dict, List, Sequence, Tuple

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_log(workdir: str) -> List[dict]:
  path = os.path.join(workdir, "log.txt")
  if not os.path.exists(path):
    raise ValueError(f"curves: {path} does not exist.")
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def series(rows: Sequence[dict], key: str) -> Tuple[np.ndarray, np.ndarray]:
  """``(steps, values)`` of ``key`` in the rows that have it."""
  picked = [(r["step"], r[key]) for r in rows if key in r]
  if not picked:
    return np.zeros(0), np.zeros(0)
  steps, values = zip(*picked)
  return np.asarray(steps), np.asarray(values, np.float64)


def aggregate(workdirs: Sequence[str], key: str):
  """Mean and std over runs at the steps every run logged."""
  runs = [series(read_log(w), key) for w in workdirs]
  common = sorted(set.intersection(*(set(s.tolist()) for s, _ in runs)))
  if not common:
    return np.zeros(0), np.zeros(0), np.zeros(0)
  stacked = np.stack([[dict(zip(s.tolist(), v))[c] for c in common]
                      for s, v in runs])
  return np.asarray(common), stacked.mean(0), stacked.std(0)


def plot(runs: Dict[str, List[str]], out: str) -> str:
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  panels = (("train/accuracy", "eval/accuracy", "accuracy"),
            ("train/loss", None, "loss"))
  for ax, (key, marker_key, label) in zip(axes, panels):
    for name, workdirs in runs.items():
      steps, mean, std = aggregate(workdirs, key)
      line, = ax.plot(steps, mean, label=f"{name} (train)")
      ax.fill_between(steps, mean - std, mean + std, alpha=0.2,
                      color=line.get_color())
      if marker_key:
        s, m, _ = aggregate(workdirs, marker_key)
        if len(s):
          ax.plot(s, m, "o", color=line.get_color(), label=f"{name} (test)")
    ax.set_xlabel("step")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=7)
  counts = sorted({len(w) for w in runs.values()})
  fig.suptitle(f"mean +- std over {'/'.join(map(str, counts))} run(s) each",
               fontsize=8)
  fig.savefig(out, dpi=110, bbox_inches="tight")
  plt.close(fig)
  return out


def parse_runs(specs: Sequence[str]) -> Dict[str, List[str]]:
  runs = {}
  for spec in specs:
    if "=" not in spec:
      raise ValueError(f"--run must be LABEL=GLOB, got {spec!r}.")
    label, pattern = spec.split("=", 1)
    matched = sorted(glob.glob(pattern))
    if not matched:
      raise ValueError(f"--run {spec!r}: the glob matches no workdir.")
    runs[label] = matched
  return runs


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--run", action="append", required=True)
  parser.add_argument("--out", required=True)
  args = parser.parse_args(argv)
  try:
    print(plot(parse_runs(args.run), args.out))
  except (ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
