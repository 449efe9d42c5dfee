"""Forward+backward cost of each regularizer vs one elementwise pass.

    python -m experiments.bench_regularizers [--shapes 64x28x28x512,64x14x14x1024]
        [--repeats 7] [--out experiments/results/bench_regularizers.md]

For each ResNet-50-sized activation, every transform is compiled once as
``(f(x), vjp(f)(g))``: its output and its input gradient, so both passes
run (``g`` and the reference's scale are runtime inputs, so nothing folds
away); then ``--repeats`` rounds time every transform in turn
(round-robin in a shuffled order, so drift of a shared machine hits all
rows alike) with
``block_until_ready``; the table reports the median. Ratios are against
``ref: x * s``, measured in the
same run: ``ref: x * s`` is one elementwise pass each way (y = x s,
dx = g s). ``rng=jax`` rows use ``jax.random.bits`` (threefry) instead of the
default fused hash, to show why the hash exists. Issue targets: dropout,
spatial_dropout and drop_path <= 1.3x, drop_block <= 2x.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import dropgraph_jax as dg
from dropgraph_jax.patterns import ConvPattern, conv_pattern_dropout
from experiments import report


def _dropgraph_row(rate: float, block: int, shape, **options):
  init_options = {k: v for k, v in options.items() if k != "vertex_gradient"}
  params = dg.dropgraph_lib.init_params(jax.random.key(1), shape,
                                        **init_options)
  return lambda x, k: dg.dropgraph(x, params, key=k, rate=rate, train=True,
                                   block_size=block, **options)


def regularizers(rate: float, block: int, shape):
  """name -> fn(x, key) for NHWC inputs of ``shape``."""
  return {
      "ref: x * s": lambda x, k, s: x * s,
      "dropout": lambda x, k: dg.dropout(x, key=k, rate=rate, train=True),
      "dropout rng=jax": lambda x, k: dg.dropout(x, key=k, rate=rate,
                                                 train=True, rng="jax"),
      "spatial_dropout": lambda x, k: dg.spatial_dropout(x, key=k, rate=rate,
                                                         train=True),
      "drop_path": lambda x, k: dg.drop_path(x, key=k, rate=rate, train=True),
      "drop_block": lambda x, k: dg.drop_block(x, key=k, rate=rate,
                                               block_size=block, train=True),
      "drop_block shared": lambda x, k: dg.drop_block(
          x, key=k, rate=rate, block_size=block, share_channels=True,
          train=True),
      "drop_block rng=jax": lambda x, k: dg.drop_block(
          x, key=k, rate=rate, block_size=block, train=True, rng="jax"),
      "disout": lambda x, k: dg.disout(x, key=k, rate=rate, block_size=block,
                                       train=True),
      "dropgraph": _dropgraph_row(rate, block, shape),
      "dropgraph gcn_avgpool": _dropgraph_row(rate, block, shape,
                                              generator="gcn_avgpool"),
      "dropgraph vertex_gradient": _dropgraph_row(rate, block, shape,
                                                  vertex_gradient=True),
      "conv_pattern rot+shear": lambda x, k: (
          conv_pattern_dropout(x, key=k, train=True, pattern=ConvPattern(
              height=3, width=5, stride_h=7, stride_w=7, repeats_h=2,
              repeats_w=2, rotate=30.0, shear_x=0.2, share_c=False))),
  }


def compile_fwd_bwd(fn, x, key):
  """jit of (y, dx) = (f(x), vjp(f)(g)), compiled and run once.

  Returning both the output and the input gradient makes the program do the
  forward and the backward pass; the cotangent ``g`` and the reference's
  scale ``s`` are runtime arguments so XLA cannot fold either away.
  """
  def fwd_bwd(x, k, g, s):
    f = (lambda x: fn(x, k, s)) if fn.__code__.co_argcount == 3 else (
        lambda x: fn(x, k))
    y, vjp = jax.vjp(f, x)
    return y, vjp(g)[0]

  step = jax.jit(fwd_bwd)
  g = jnp.full(x.shape, 0.5, x.dtype)
  s = jnp.asarray(2.0, x.dtype)
  jax.block_until_ready(step(x, key, g, s))
  return lambda x, k: step(x, k, g, s)


def time_round_robin(steps, x, key, repeats: int):
  """Median seconds per step; rows take turns so drift hits all alike.

  The order is shuffled every round (seeded), so no row always runs right
  after the same (e.g. cache-flushing) neighbour.
  """
  times = {name: [] for name in steps}
  order = np.random.default_rng(0)
  names = list(steps)
  for i in range(repeats):
    k = jax.random.fold_in(key, i)
    for name in order.permutation(names):
      step = steps[name]
      start = time.perf_counter()
      jax.block_until_ready(step(x, k))
      times[name].append(time.perf_counter() - start)
  return {name: float(np.median(t)) for name, t in times.items()}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--shapes", default="64x28x28x512,64x14x14x1024")
  parser.add_argument("--rate", type=float, default=0.1)
  parser.add_argument("--block", type=int, default=7)
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--dtype", default="float32")
  parser.add_argument("--only", default="", help="comma list of row names")
  parser.add_argument("--out", default="")
  args = parser.parse_args(argv)

  shapes = report.parse_shapes(args.shapes)
  keep = {"ref: x * s"} | set(args.only.split(",")) if args.only else None

  def rows_for(shape):
    rows = regularizers(args.rate, args.block, shape)
    return {k: v for k, v in rows.items() if keep is None or k in keep}

  names = list(rows_for(shapes[0]))
  key = jax.random.key(0)
  lines = report.header(
      f"Regularizer forward+backward cost ({args.dtype}, rate {args.rate}, "
      f"block {args.block})") + [
      "| transform | " + " | ".join(f"{'x'.join(map(str, s))} ms (ratio)"
                                     for s in shapes) + " |",
      "|---|" + "---|" * len(shapes),
  ]
  results = {name: [] for name in names}
  for shape in shapes:
    x = jax.random.normal(key, shape, jnp.float32).astype(args.dtype)
    steps = {name: compile_fwd_bwd(fn, x, key)
             for name, fn in rows_for(shape).items()}
    for name, t in time_round_robin(steps, x, key, args.repeats).items():
      results[name].append(t)
  for name in names:
    cells = []
    for i, t in enumerate(results[name]):
      cells.append(f"{1e3 * t:.1f} ({t / results['ref: x * s'][i]:.2f}x)")
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  lines += ["", "DropGraph graph branch (alpha 0.2, reduction 4, per example, "
            "training only):", "",
            "| shape | vertices K | parameters | extra MACs |", "|---|---|---|---|"]
  for shape in shapes:
    cost = dg.dropgraph_lib.graph_cost(shape)
    lines.append(f"| {'x'.join(map(str, shape))} | {cost['vertices']} | "
                 f"{cost['params']:,} | {cost['macs'] / 1e9:.4f} G |")
  report.emit(lines, args.out)


if __name__ == "__main__":
  main()
