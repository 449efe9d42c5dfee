"""This library vs the regularizers users use today, side by side in one run.

    python -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm
    python -m experiments.bench_vs_pytorch --torch-python /tmp/torchenv/bin/python \
        [--shapes 64x28x28x512,64x14x14x1024] [--repeats 9] \
        [--out experiments/results/bench_vs_pytorch_cpu.md]

Peers (PyTorch CPU, through ``experiments/torch_peers.py`` running in the
separate environment): ``torchvision.ops.drop_block2d``,
``timm.layers.DropBlock2d``, ``torchvision.ops.stochastic_depth`` (row
mode), ``timm.layers.DropPath``, ``F.dropout2d``, ``F.dropout``; and in JAX
``flax.linen.Dropout`` (with ``broadcast_dims=(1, 2)`` for spatial dropout).
Same shapes (NHWC here, NCHW for PyTorch), rates (0.1) and block size (7).
DropBlock is compared mask kind by mask kind: per-channel masks (ours'
default, torchvision's only kind, timm with ``couple_channels=False``) and
one mask shared by all channels (``share_channels=True``; timm >= 1.0.20's
default ``couple_channels=True``).

1. Time: every row computes its output and its input gradient (forward +
   backward); rows of both frameworks are timed in shuffled round-robin
   rounds (one call each per round, the torch helper answering between JAX
   calls), compile and warm-up excluded, ``block_until_ready`` on JAX
   results; the table gives medians and the ratio of ours to the fastest
   peer of the same regularizer.
2. Memory: bytes allocated by one forward+backward (JAX: the compiled
   program's outputs + temporaries; PyTorch: the profiler's peak of
   allocated CPU bytes). Inputs excluded on both sides.
3. Semantics: dropped fraction and P(right neighbour dropped | dropped) for
   DropBlock, over 20 draws on ``--stats-shape``; ours vs torchvision vs
   timm.
   A ``floor x*s`` row pair times the plain scaling ``y = x * s`` (and
   ``dx = g * s``) in JAX and in PyTorch: the elementwise floor of each
   framework, which a mask-applying regularizer cannot go below. On the
   2-core VM most of that floor is first-touch page faults of the fresh
   output buffers (each call allocates two 100 MB outputs in both
   frameworks).
4. Inference: for each regularizer, the eval program (lowered, as handed
   to XLA) of a ResNet-50 (CIFAR) with the regularizer at the papers'
   placement is compared with the one without any (HLO text equality).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import dropgraph_jax as dg
from experiments import report

HERE = os.path.dirname(os.path.abspath(__file__))
FAMILIES = {  # regularizer -> (ours, [peers])
    "drop_block": ("drop_block ours",
                   ["drop_block torchvision", "drop_block timm"]),
    "drop_block_shared": ("drop_block_shared ours",
                          ["drop_block_shared timm"]),
    "drop_path": ("drop_path ours",
                  ["drop_path torchvision", "drop_path timm"]),
    "spatial_dropout": ("spatial_dropout ours",
                        ["spatial_dropout flax", "spatial_dropout torch"]),
    "dropout": ("dropout ours", ["dropout flax", "dropout torch"]),
    # Not a regularizer: the same multiply, ``x * s`` and ``g * s``, in
    # each framework, to show the elementwise floor each one runs at.
    "floor x*s": ("floor x*s jax", ["floor x*s torch"]),
}


def jax_rows(rate: float, block: int):
  spatial = nn.Dropout(rate, broadcast_dims=(1, 2), deterministic=False)
  plain = nn.Dropout(rate, deterministic=False)
  return {
      "drop_block ours": lambda x, k: dg.drop_block(
          x, key=k, rate=rate, block_size=block, train=True),
      "drop_block_shared ours": lambda x, k: dg.drop_block(
          x, key=k, rate=rate, block_size=block, train=True,
          share_channels=True),
      "drop_path ours": lambda x, k: dg.drop_path(x, key=k, rate=rate,
                                                  train=True),
      "spatial_dropout ours": lambda x, k: dg.spatial_dropout(
          x, key=k, rate=rate, train=True),
      "spatial_dropout flax": lambda x, k: spatial.apply(
          {}, x, rngs={"dropout": k}),
      "dropout ours": lambda x, k: dg.dropout(x, key=k, rate=rate,
                                              train=True),
      "dropout flax": lambda x, k: plain.apply({}, x, rngs={"dropout": k}),
      "floor x*s jax": lambda x, k: x * jnp.float32(1.0 / 0.9),
  }


class TorchPeers:
  def __init__(self, python: str):
    self.proc = subprocess.Popen(
        [python, os.path.join(HERE, "torch_peers.py")], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True)

  def ask(self, **req):
    self.proc.stdin.write(json.dumps(req) + "\n")
    self.proc.stdin.flush()
    out = json.loads(self.proc.stdout.readline())
    if "error" in out:
      raise RuntimeError(f"torch_peers: {out['error']} for {req}")
    return out

  def close(self):
    self.proc.stdin.close()
    self.proc.wait(30)


def compile_row(fn, shape):
  def fwd_bwd(x, g, key):
    y, vjp = jax.vjp(lambda v: fn(v, key), x)
    return y, vjp(g)[0]
  x = jax.random.normal(jax.random.key(0), shape)
  g = jax.random.normal(jax.random.key(1), shape)
  compiled = jax.jit(fwd_bwd).lower(x, g, jax.random.key(2)).compile()
  mem = compiled.memory_analysis()
  peak = mem.temp_size_in_bytes + mem.output_size_in_bytes
  jax.block_until_ready(compiled(x, g, jax.random.key(3)))  # warm-up
  return compiled, x, g, peak


def jax_stats(fn, shape, draws=20):
  ones = jnp.ones(shape)
  dropped = pairs = both = same = 0.0
  f = jax.jit(fn)
  for d in range(draws):
    mask = np.asarray(f(ones, jax.random.key(100 + d)) == 0, np.float64)
    dropped += mask.mean()
    pairs += mask[:, :, :-1].sum()
    both += (mask[:, :, :-1] * mask[:, :, 1:]).sum()
    same += (mask == mask[..., :1]).mean()
  return {"dropped": dropped / draws, "neighbour": both / pairs,
          "channels_agree": same / draws}


def inference_identical(rate: float, block: int):
  from dropgraph_jax.models import get_model, list_sites
  from dropgraph_jax.models import resnet as resnet_lib
  from dropgraph_jax.patterns import RegularizerSpec
  shape = (8, 32, 32, 3)
  sites = list_sites(get_model("resnet50_cifar"), shape)
  base = get_model("resnet50_cifar")
  x = jnp.zeros(shape)
  variables = jax.eval_shape(lambda: base.init(jax.random.key(0), x,
                                               train=False))

  def hlo(model):
    def evaluate(v, x):
      return model.apply(v, x, train=False)
    return jax.jit(evaluate).lower(variables, x).as_text()

  reference = hlo(base)
  out = {}
  for name in ("dropout", "spatial_dropout", "drop_block", "disout",
               "dropgraph", "drop_path"):
    options = {"rate": rate}
    if name in ("drop_block", "disout", "dropgraph"):
      options["block_size"] = 3
    policy = resnet_lib.paper_policy(sites, RegularizerSpec(name, options))
    model = get_model("resnet50_cifar", policy=policy)
    if name == "dropgraph":  # graph weights exist only in training
      variables_g = jax.eval_shape(lambda: model.init(
          {"params": jax.random.key(0), "dropout": jax.random.key(1)}, x,
          train=True, mutable=["params", "batch_stats"]))
      stripped = dg.strip_graph_params(variables_g["params"])
      same = jax.tree.structure(stripped) == jax.tree.structure(
          variables["params"])
      out[name] = same and hlo(model) == reference
    else:
      out[name] = hlo(model) == reference
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--torch-python", required=True)
  parser.add_argument("--shapes", default="64x28x28x512,64x14x14x1024")
  parser.add_argument("--rate", type=float, default=0.1)
  parser.add_argument("--block", type=int, default=7)
  parser.add_argument("--repeats", type=int, default=9)
  parser.add_argument("--stats-shape", default="8x28x28x32")
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  shapes = report.parse_shapes(args.shapes)
  peers = TorchPeers(args.torch_python)
  versions = peers.ask(op="versions")
  rows = jax_rows(args.rate, args.block)
  torch_names = [p for _, ps in FAMILIES.values() for p in ps
                 if p not in rows]
  times, peaks = {}, {}
  for shape in shapes:
    compiled = {name: compile_row(fn, shape) for name, fn in rows.items()}
    req = dict(shape=list(shape), rate=args.rate, block=args.block)
    for name in torch_names:
      peaks[(name, shape)] = peers.ask(op="memory", row=name,
                                       **req)["peak_bytes"]
      peers.ask(op="time", row=name, **req)  # warm-up
    for name, (_, _, _, peak) in compiled.items():
      peaks[(name, shape)] = peak
    order = list(rows) + torch_names
    rng = random.Random(0)
    for r in range(args.repeats):
      rng.shuffle(order)
      for name in order:
        if name in compiled:
          fn, x, g, _ = compiled[name]
          key = jax.random.key(1000 + r)
          start = time.perf_counter()
          jax.block_until_ready(fn(x, g, key))
          seconds = time.perf_counter() - start
        else:
          seconds = peers.ask(op="time", row=name, **req)["seconds"]
        times.setdefault((name, shape), []).append(seconds)
    print(f"timed {shape}", flush=True)
  stats_shape, = report.parse_shapes(args.stats_shape)
  stats = {name: jax_stats(rows[name], stats_shape)
           for name in ("drop_block ours", "drop_block_shared ours")}
  for name in ("drop_block torchvision", "drop_block timm",
               "drop_block_shared timm"):
    stats[name] = peers.ask(op="stats", row=name, shape=list(stats_shape),
                            rate=args.rate, block=args.block)
  peers.close()
  identical = inference_identical(args.rate, args.block)

  lines = report.header("Regularizers vs PyTorch / Flax peers (forward + "
                        "backward)") + [
      f"Peers: torch {versions['torch']}, torchvision "
      f"{versions['torchvision']}, timm {versions['timm']} "
      f"({versions['threads']} threads), flax.linen.Dropout; rate "
      f"{args.rate}, block {args.block}; medians of {args.repeats} "
      "interleaved rounds.", ""]
  for shape in shapes:
    lines += [f"### {'x'.join(map(str, shape))} (NHWC; NCHW for PyTorch)",
              "", "| regularizer | implementation | ms | MiB | ours / "
              "fastest peer |", "|---|---|---|---|---|"]
    for family, (ours, peer_names) in FAMILIES.items():
      med = {n: 1e3 * float(np.median(times[(n, shape)]))
             for n in [ours] + peer_names}
      fastest = min(med[p] for p in peer_names)
      for n in [ours] + peer_names:
        ratio = f"{med[ours] / fastest:.2f}x" if n == ours else ""
        lines.append(f"| {family} | {n.split(' ', 1)[1]} | {med[n]:.1f} | "
                     f"{peaks[(n, shape)] / 2**20:.0f} | {ratio} |")
    lines.append("")
  lines += ["### DropBlock semantics (statistics over 20 draws, "
            f"{args.stats_shape}, rate {args.rate}, block {args.block})", "",
            "| mask | implementation | dropped fraction | P(right neighbour "
            "dropped \\| dropped) | units whose mask equals channel 0's |",
            "|---|---|---|---|---|"]
  for name in sorted(stats):
    s = stats[name]
    family, impl = name.split(" ", 1)
    kind = "shared" if family.endswith("shared") else "per channel"
    lines.append(f"| {kind} | {impl} | {s['dropped']:.4f} | "
                 f"{s['neighbour']:.4f} | {s['channels_agree']:.4f} |")
  lines += ["", "### Inference overhead (ResNet-50 CIFAR eval program with "
            "the regularizer at the papers' placement vs without)", "",
            "| regularizer | compiled eval HLO identical |", "|---|---|"]
  lines += [f"| {name} | {'yes' if same else 'NO'} |"
            for name, same in identical.items()]
  report.emit(lines, args.out)


if __name__ == "__main__":
  sys.exit(main())
