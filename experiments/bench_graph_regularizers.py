"""Cost of the graph-signal regularizers per training step (DropGraph
Tables 4-5 settings), against no regularizer.

    python -m experiments.bench_graph_regularizers [--repeats 21] \\
        [--out experiments/results/bench_graph_regularizers_cpu.md]

Rows: one full-batch GCN training step on a Cora-sized graph (2,708
nodes, 1,433 features, 10,556 edges, random; hidden 16, the regularizer
between the layers, rho 0.1, alpha 0.15), and forward + backward of each
regularizer alone on DGCNN's activation ``(32, 1024, 64)``. Policies are
timed in a round-robin (machine drift hits all alike); medians, compile
excluded, ``block_until_ready`` on the results.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dropgraph_jax as dg
from dropgraph_jax.models import get_model
from dropgraph_jax.models.gcn import normalized_graph
from dropgraph_jax.patterns import Policy, RegularizerSpec
from dropgraph_jax.regularizers import graph_signal
from experiments import report

NAMES = ("none", "graph_dropout", "graph_spatial_dropout", "graph_disout",
         "graph_dropgraph")


def cora_like(seed: int = 0):
  rng = np.random.default_rng(seed)
  s = rng.integers(0, 2708, 5278)
  r = (s + rng.integers(1, 2707, 5278)) % 2708
  graph = normalized_graph(np.concatenate([s, r]), np.concatenate([r, s]),
                           2708)
  x = jnp.asarray((rng.random((2708, 1433)) < 0.013).astype(np.float32))
  return x, jnp.asarray(rng.integers(0, 7, 2708)), graph


def gcn_step(name: str, x, y, graph):
  options = {"rate": 0.1, **({"alpha": 0.15} if "dropgraph" in name else {})}
  policy = None if name == "none" else Policy(
      {"hidden": RegularizerSpec(name, options)})
  model = get_model("gcn", num_classes=7, policy=policy)
  params = {"params": model.init(jax.random.key(0), x, train=False,
                                 graph=graph)["params"]}
  tx = optax.adam(0.01)

  def step(p, opt, key):
    def loss_fn(q):
      logits = model.apply(q, x, train=True, graph=graph,
                           rngs={"dropout": key})
      return optax.softmax_cross_entropy_with_integer_labels(
          logits, y).mean()
    grads = jax.grad(loss_fn)(p)
    updates, opt = tx.update(grads, opt, p)
    return optax.apply_updates(p, updates), opt

  fn = jax.jit(step)
  state = [params, tx.init(params)]

  def call():
    state[:] = fn(*state, jax.random.key(1))
    return state[0]
  return call


def op_call(name: str, x):
  params = graph_signal.init_graph_params(jax.random.key(0), x.shape,
                                          alpha=0.15)
  fns = {"none": lambda v, k: v * 1.1,  # one elementwise pass each way
         "graph_dropout": lambda v, k: dg.graph_dropout(
             v, key=k, rate=0.1, train=True),
         "graph_spatial_dropout": lambda v, k: dg.graph_spatial_dropout(
             v, key=k, rate=0.1, train=True),
         "graph_disout": lambda v, k: dg.graph_disout(
             v, key=k, rate=0.1, train=True),
         "graph_dropgraph": lambda v, k: dg.graph_dropgraph(
             v, params, key=k, rate=0.1, alpha=0.15, train=True)}

  def both(v, k):
    y, vjp = jax.vjp(lambda u: fns[name](u, k), v)
    return y, vjp(jnp.ones_like(y))[0]
  fn = jax.jit(both)
  return lambda: fn(x, jax.random.key(1))


def round_robin(calls, repeats: int):
  for call in calls.values():
    jax.block_until_ready(call())
  times = {name: [] for name in calls}
  for _ in range(repeats):
    for name, call in calls.items():
      start = time.perf_counter()
      jax.block_until_ready(call())
      times[name].append(time.perf_counter() - start)
  return {name: float(np.median(t)) for name, t in times.items()}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=21)
  parser.add_argument("--out", default="")
  args = parser.parse_args(argv)
  x, y, graph = cora_like()
  step = round_robin({n: gcn_step(n, x, y, graph) for n in NAMES},
                     args.repeats)
  act = jax.random.normal(jax.random.key(0), (32, 1024, 64))
  ops = round_robin({n: op_call(n, act) for n in NAMES}, args.repeats)
  lines = report.header("Graph-signal regularizers: cost per step") + [
      "| regularizer | GCN step on Cora-size graph, ms | vs none | "
      "fwd+bwd on (32, 1024, 64), ms | vs x * s |",
      "|---|---|---|---|---|"]
  for n in NAMES:
    lines.append(f"| {n} | {step[n] * 1e3:.2f} | "
                 f"{step[n] / step['none']:.2f}x | {ops[n] * 1e3:.2f} | "
                 f"{ops[n] / ops['none']:.2f}x |")
  report.emit(lines, args.out)


if __name__ == "__main__":
  main()
