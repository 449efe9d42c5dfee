"""Search cost: children per hour, sequential vs vmapped vs early-stopped.

    python -m experiments.bench_search --children 16 --group 8 \
        [--steps 150] [--out experiments/results/bench_search_digits_cpu.md]

The same ``--children`` policies, drawn uniformly from the digits search
space (``configs/search/digits.py``), are trained on the digits proxy
(``resnet_digits``, ``--steps`` SGD steps, reward = accuracy on the held-out
10% of the training split) three ways, in one run, one after the other in
this process:

* ``sequential``: one child at a time (``ImageProxy.train_one``: each
  child compiles its own step, as a worker does);
* ``vmapped``: groups of ``--group`` children side by side in one
  compiled, vmapped program (:mod:`dropgraph_jax.search.vmap_children`);
* ``one program, in turn``: the group's children one after another
  through one compiled step (their patterns are traced inputs);
* ``... + halving``: the same with successive halving (eta 2, first rung
  ``--steps / 8``).

Each mode's wall time includes compilation (a search pays it for every
job). Second table (``--synthetic-jobs``): grouping changes how a search
is scheduled (a group's children finish together, so updates see staler
samples); a REINFORCE search on the synthetic proxy (known optimum 1.0,
noise 0.05) with 1 and with ``--group`` children per job reports its
best-so-far reward at several job counts, for ``--synthetic-seeds``
seeds. The table gives children per hour, the speed-up over sequential, the
best reward among the children (the end point of a best-so-far curve over
the same children), and how many children each mode ranks in the same top
quarter as sequential training.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from configs.search import digits as digits_search
from dropgraph_jax.search import proxy, run, vmap_children
from dropgraph_jax.search import space as space_lib
from experiments import report


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--children", type=int, default=16)
  parser.add_argument("--group", type=int, default=8)
  parser.add_argument("--steps", type=int, default=150)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--synthetic-jobs", type=int, default=512)
  parser.add_argument("--synthetic-seeds", type=int, default=3)
  parser.add_argument("--out", default="")
  args = parser.parse_args()

  config = digits_search.get_config()
  space = run.build_space(config.space)
  cfg = config.proxy.to_dict()
  cfg["steps"] = args.steps
  px = proxy.ImageProxy(cfg)
  policies = [space.decode(space_lib.random_tokens(
      space, np.random.default_rng([args.seed, i])))
      for i in range(args.children)]
  groups = [policies[i:i + args.group]
            for i in range(0, len(policies), args.group)]

  def grouped(**options):
    return lambda: sum((vmap_children.train_children(px, g, **options)
                        for g in groups), [])

  halving = dict(eta=2, min_steps=max(1, args.steps // 8))
  modes = {
      "sequential": lambda: [px.train_one(p) for p in policies],
      "vmapped": grouped(mode="vmap"),
      "one program, in turn": grouped(mode="loop"),
      "vmapped + halving": grouped(mode="vmap", **halving),
      "one program + halving": grouped(mode="loop", **halving),
  }
  results = {}
  for name, fn in modes.items():
    start = time.perf_counter()
    rewards = np.asarray(fn())
    results[name] = (time.perf_counter() - start, rewards)
    print(f"{name}: {results[name][0]:.1f} s, best {rewards.max():.4f}",
          flush=True)

  base_time, base = results["sequential"]
  top = max(1, len(base) // 4)
  top_seq = set(np.argsort(-base, kind="stable")[:top])
  lines = report.header("AutoDropout search cost on the digits proxy") + [
      f"{args.children} children (uniform from the digits search space), "
      f"{args.steps} steps each, groups of {args.group}; wall time includes "
      "compilation.", "",
      "| mode | wall s | children / hour | vs sequential | best reward | "
      f"top-{top} agreement with sequential |",
      "|---|---|---|---|---|---|"]
  for name, (wall, rewards) in results.items():
    agree = len(top_seq & set(np.argsort(-rewards, kind="stable")[:top]))
    lines.append(f"| {name} | {wall:.1f} | {3600 * len(rewards) / wall:.0f}"
                 f" | {base_time / wall:.2f}x | {rewards.max():.4f} | "
                 f"{agree}/{top} |")
  lines += synthetic_table(args)
  lines += ["", "Rewards per child (same order in every mode):", ""]
  for name, (_, rewards) in results.items():
    lines.append(f"- {name}: " + ", ".join(f"{r:.3f}" for r in rewards))
  report.emit(lines, args.out)
  if args.out:
    _plot(results, os.path.splitext(args.out)[0] + ".png")


def synthetic_table(args) -> list:
  """Best-so-far of REINFORCE on the synthetic proxy, 1 vs K per job."""
  import tempfile

  from dropgraph_jax.search import engine
  checkpoints = [n for n in (32, 64, 128, 256, 512, 1024, 2048)
                 if n <= args.synthetic_jobs]
  rows = {}
  for per_job in (1, args.group):
    curves = []
    for seed in range(args.synthetic_seeds):
      config = digits_search.get_config()
      config.search.update(backend="inline", num_jobs=args.synthetic_jobs,
                           capacity=max(16, per_job), minibatch=8,
                           children_per_job=per_job, seed=seed,
                           checkpoint_every=10**6, learning_rate=3e-3)
      config.proxy.name = "synthetic"
      config.proxy.noise = 0.05
      config.proxy.seed = seed
      space = run.build_space(config.space)
      with tempfile.TemporaryDirectory() as tmp:
        result = engine.Search(space, config.search,
                               config.controller.to_dict(),
                               run.proxy_config(config, space), tmp).run()
      curves.append(engine.best_so_far(result.jobs))
    rows[per_job] = [np.mean([c[n - 1] for c in curves]) for n in checkpoints]
  lines = ["", f"Synthetic proxy, REINFORCE (C = 16, M = 8), best reward so "
           f"far, mean of {args.synthetic_seeds} seeds:", "",
           "| children per job | " + " | ".join(f"{n} jobs" for n in
                                                checkpoints) + " |",
           "|---|" + "---|" * len(checkpoints)]
  for per_job, values in rows.items():
    lines.append(f"| {per_job} | " + " | ".join(f"{v:.3f}" for v in values)
                 + " |")
  return lines


def _plot(results, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 3.5))
  for name, (wall, rewards) in results.items():
    times = np.linspace(wall / len(rewards), wall, len(rewards))
    ax.step(times, np.maximum.accumulate(rewards), where="post", label=name)
  ax.set_xlabel("wall seconds (children spread evenly over the mode's run)")
  ax.set_ylabel("best reward so far")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


if __name__ == "__main__":
  main()
