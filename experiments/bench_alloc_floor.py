"""How much of an elementwise pass is allocating its output, JAX vs PyTorch.

    python -m experiments.bench_alloc_floor --torch-python /tmp/torchenv/bin/python \
        [--shapes 64x28x28x512,64x14x14x1024] [--repeats 25] \
        [--out experiments/results/bench_alloc_floor_cpu.md]

The floor of every mask-applying regularizer in ``bench_vs_pytorch.py`` is
two elementwise passes, ``y = x * s`` and ``dx = g * s``, each writing a
new activation-sized array. This script times that pair four ways in
shuffled interleaved rounds (medians, compile and warm-up excluded):

* JAX, fresh outputs: a jitted function of ``(x, g)``, as the regularizer
  rows are timed;
* JAX, reused buffers: the same function with ``x`` and ``g`` donated, so
  XLA writes the outputs into the input buffers (fresh inputs are made
  outside the timed region);
* PyTorch, fresh outputs: ``x * s, g * s``;
* PyTorch, reused buffers: ``torch.mul(..., out=...)`` into preallocated
  tensors (through ``experiments/torch_peers.py`` in its own environment).

The difference between the fresh and reused rows is the cost of the output
allocation, mostly first-touch page faults of the new memory; it is what
makes the ratios of ``bench_vs_pytorch.py`` move by several percent from
run to run on a shared VM.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from bench_vs_pytorch import TorchPeers

from experiments import report

SCALE = 1.0 / 0.9


def _scale_pair(x, g):
  return x * jnp.float32(SCALE), g * jnp.float32(SCALE)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--torch-python", required=True)
  parser.add_argument("--shapes", default="64x28x28x512,64x14x14x1024")
  parser.add_argument("--repeats", type=int, default=25)
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  shapes = report.parse_shapes(args.shapes)
  peers = TorchPeers(args.torch_python)
  versions = peers.ask(op="versions")
  fresh = jax.jit(_scale_pair)
  donated = jax.jit(_scale_pair, donate_argnums=(0, 1))
  rows = ("jax fresh", "jax reused", "torch fresh", "torch reused")
  medians = {}
  for shape in shapes:
    x = jax.random.normal(jax.random.key(0), shape)
    g = jax.random.normal(jax.random.key(1), shape)
    jax.block_until_ready(fresh(x, g))
    jax.block_until_ready(donated(x + 0.0, g + 0.0))
    for reuse in (False, True):
      peers.ask(op="floor", shape=list(shape), reuse=reuse)
    times = {r: [] for r in rows}
    order = list(rows)
    rng = random.Random(0)
    for _ in range(args.repeats):
      rng.shuffle(order)
      for row in order:
        if row.startswith("torch"):
          times[row].append(peers.ask(op="floor", shape=list(shape),
                                      reuse=row.endswith("reused"))["seconds"])
          continue
        if row == "jax reused":
          a, b = jax.block_until_ready((x + 0.0, g + 0.0))
          fn = donated
        else:
          a, b, fn = x, g, fresh
        start = time.perf_counter()
        jax.block_until_ready(fn(a, b))
        times[row].append(time.perf_counter() - start)
    medians[shape] = {r: 1e3 * float(np.median(t)) for r, t in times.items()}
    print(f"timed {shape}", flush=True)
  peers.close()
  lines = report.header("Elementwise floor: output allocation vs arithmetic")
  lines += [f"PyTorch {versions['torch']} ({versions['threads']} threads); "
            f"`x * s` and `g * s` in float32, medians of {args.repeats} "
            "interleaved rounds, ms.", "",
            "| shape | " + " | ".join(rows) + " | fresh / reused, jax | "
            "fresh / reused, torch |",
            "|---|" + "---|" * (len(rows) + 2)]
  for shape, m in medians.items():
    lines.append(
        f"| {'x'.join(map(str, shape))} | " +
        " | ".join(f"{m[r]:.1f}" for r in rows) +
        f" | {m['jax fresh'] / m['jax reused']:.2f}x"
        f" | {m['torch fresh'] / m['torch reused']:.2f}x |")
  report.emit(lines, args.out)


if __name__ == "__main__":
  sys.exit(main())
