"""Where a regularized ResNet step spends its time, kernel by kernel.

    python -m experiments.profile_step                      # the GPU suite's
        # ResNet-50 step (224 px, batch 256, bf16), none / disout / dropgraph
    python -m experiments.profile_step --smoke --policies none,dropgraph

For each policy the step of :mod:`experiments.gpu_suite` (same model, same
placement) is compiled, run once, then traced for ``--steps`` calls with
``jax.profiler`` (Perfetto export). The device's kernel events (on a CPU: the
XLA thunks) are summed by kernel name with its numeric suffix removed
(``loop_multiply_fusion_12`` -> ``loop_multiply_fusion``), so the kernels of
two programs can be compared: the table lists, per policy, the kernel time
per step and the kinds of kernel that account for its excess over ``none``.
Output: ``<out-dir>/profile_step_<device>_<date>.md``.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import glob
import gzip
import json
import os
import re
import tempfile
from typing import Dict

import jax

from experiments import gpu_suite, report

# Events that wrap the kernels on XLA's CPU threads, not kernels themselves.
WRAPPERS = ("ThreadpoolListener", "ThunkExecutor", "end: ")


def kernel_times(trace_dir: str) -> Dict[str, float]:
  """Microseconds per kernel kind summed over a Perfetto trace's events on
  the device (or, with no device process, on XLA's CPU threads)."""
  path = glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"),
                   recursive=True)[0]
  with gzip.open(path) as f:
    events = json.load(f)["traceEvents"]
  names = {(e["pid"], e.get("tid")): e["args"]["name"] for e in events
           if e.get("ph") == "M" and e["name"] in ("process_name",
                                                   "thread_name")}
  device = {e["pid"] for e in events if e.get("ph") == "M"
            and e["name"] == "process_name"
            and "/device:" in e["args"]["name"]}

  def on_device(e):
    if device:
      return e["pid"] in device
    return names.get((e["pid"], e.get("tid")), "").startswith("tf_XLA")

  totals = collections.Counter()
  for e in events:
    if e.get("ph") == "X" and on_device(e) and not e["name"].startswith(
        WRAPPERS):
      totals[re.sub(r"[._]\d+$", "", e["name"])] += float(e.get("dur", 0))
  return dict(totals)


def profile(cfg, policy: str, steps: int) -> Dict[str, float]:
  """Per-step microseconds by kernel kind for one policy's training step."""
  step = gpu_suite.Step(cfg, policy)
  jax.block_until_ready(step())
  with tempfile.TemporaryDirectory() as tmp:
    with jax.profiler.trace(tmp, create_perfetto_trace=True):
      for _ in range(steps):
        jax.block_until_ready(step())
    return {k: v / steps for k, v in kernel_times(tmp).items()}


def table(base: Dict[str, float], times: Dict[str, float], top: int):
  """Markdown rows: the ``top`` kernel kinds by excess over ``base``."""
  kinds = sorted(set(base) | set(times),
                 key=lambda k: times.get(k, 0) - base.get(k, 0), reverse=True)
  rows = ["| kernel kind | none us/step | this us/step | excess us |",
          "|---|---|---|---|"]
  for k in kinds[:top]:
    a, b = base.get(k, 0.0), times.get(k, 0.0)
    rows.append(f"| `{k[:70]}` | {a:.0f} | {b:.0f} | {b - a:+.0f} |")
  return rows


def suite_rows(cfg, rec) -> None:
  """The GPU suite's ``profile`` section: for Disout and DropGraph, the
  five kernel kinds whose time per step grows most over ``none``."""
  base = profile(cfg, "none", 3)
  for name in ("disout", "dropgraph"):
    times = profile(cfg, name, 3)
    excess = sorted(((times.get(k, 0.0) - base.get(k, 0.0), k)
                     for k in set(times) | set(base)), reverse=True)[:5]
    for us, kind in excess:
      rec.row("profile", {"policy": name, "kernel kind": f"`{kind[:60]}`",
                          "excess us / step": f"{us:+.0f}"},
              policy=name, kernel=kind, excess_us=us)


def main(argv=None) -> str:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--smoke", action="store_true")
  parser.add_argument("--policies", default="none,disout,dropgraph")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--top", type=int, default=12)
  parser.add_argument("--out-dir", default=os.path.join(
      report.ROOT, "experiments", "results"))
  args = parser.parse_args(argv)
  cfg = gpu_suite.SMOKE if args.smoke else gpu_suite.FULL
  policies = args.policies.split(",")
  if policies[0] != "none":
    raise SystemExit(f"--policies: must start with 'none' (the baseline of "
                     f"every excess), got {args.policies!r}.")
  device = re.sub(r"\W+", "_", jax.devices()[0].device_kind).strip("_")
  os.makedirs(args.out_dir, exist_ok=True)
  out = os.path.join(args.out_dir, f"profile_step_{device}_"
                     f"{datetime.date.today().isoformat()}.md")
  command = " ".join(["python -m experiments.profile_step", *(argv or [])])
  lines = report.header("Kernel time of a regularized ResNet step", command)
  results = {p: profile(cfg, p, args.steps) for p in policies}
  base = results["none"]
  for p in policies:
    total = sum(results[p].values())
    lines += ["", f"## {p}: {total / 1e3:.2f} ms of kernels per step "
              f"({total / sum(base.values()):.3f}x none)", ""]
    if p != "none":
      lines += table(base, results[p], args.top)
  with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))
  return out


if __name__ == "__main__":
  main()
