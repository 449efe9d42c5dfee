"""Cluster-GCN training (Chiang et al. 2019) for ogbn-products.

Steps on METIS-cluster subgraphs (:mod:`dropgraph_jax.data.graph_partition`),
``clusters_per_batch`` clusters a step, Adam; evaluation is full-graph
inference in eval mode (sparse, one segment sum per layer), accuracy on the
official train / valid / test nodes. The reference settings for
ogbn-products (OGB's ``cluster_gcn.py``): 15,000 parts, 32 per batch, 3
layers of 256, lr 0.001, 50 epochs.

The loop is :func:`supervised.train`'s (checkpoints holding the input
position, exact resume, NaN guards, logging); epoch ``e`` visits the
clusters in the ``e + 1``-th permutation of ``default_rng(seed)`` (the
first sizes the model), through an
:class:`~dropgraph_jax.data.epoch_stream.EpochStream`. As for graph
classification, a subgraph does not split evenly over devices: the step
runs replicated on every device of every process.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Dict

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dropgraph_jax.data import graph_partition
from dropgraph_jax.data.epoch_stream import EpochStream
from dropgraph_jax.models.gcn import normalized_graph
from dropgraph_jax.training import common, graphs, supervised
from dropgraph_jax.training.supervised import TrainState


def make_train_step(model, tx, key):
  """``train_step(state, batch)`` for :func:`supervised.train`."""
  def train_step(state: TrainState, b):
    def loss_fn(p):
      logits, new = model.apply(
          {"params": p, "batch_stats": state.batch_stats}, b["x"],
          train=True, graph=b["graph"],
          rngs={"dropout": jax.random.fold_in(key, state.step)},
          mutable=["batch_stats"])
      return graphs.masked_xent(logits, b["labels"], b["train_mask"]), (
          None, new["batch_stats"])
    state, loss, _ = supervised.gradient_step(state, tx, loss_fn)
    return state, {"loss": loss, "rate_factor": jnp.float32(1.0)}
  return train_step


def _batch(sub) -> Dict[str, Any]:
  """A padded subgraph with its normalised graph (numpy, static sizes)."""
  sub = dict(sub)
  sub["graph"] = normalized_graph(sub.pop("senders"), sub.pop("receivers"),
                                  sub.pop("num_nodes"))
  return sub


def make_evaluate(model, data, sharding):
  """``evaluate(state)``: full-graph inference in eval mode (replicated),
  accuracy on the train / valid / test nodes. The normalised graph, the
  global inputs and the compiled program are made once, for every
  evaluation of the run."""
  full = normalized_graph(data.senders, data.receivers, len(data.labels))
  inputs = common.to_global((np.asarray(data.features), full), sharding)
  infer = jax.jit(lambda s, x, g: model.apply(
      {"params": s.params, "batch_stats": s.batch_stats}, x, train=False,
      graph=g), out_shardings=sharding)

  def evaluate(state) -> Dict[str, float]:
    logits = infer(state, *inputs)
    right = np.asarray(jnp.argmax(logits.addressable_data(0), -1)) == \
        data.labels
    return {f"{name}_accuracy": float(right[mask].mean()) for name, mask in
            (("test", data.test_mask), ("val", data.val_mask),
             ("train_eval", data.train_mask))}
  return evaluate


def train_clusters(config: ml_collections.ConfigDict, workdir: str
                   ) -> Dict[str, Any]:
  """Cluster-GCN on ``config.dataset`` (an ``ogbn-*`` folder):
  ``results.json`` with train / valid / test accuracy."""
  start = time.time()
  common.ensure_writable(workdir)
  data = graphs.load_node_graph(config)
  parts = graph_partition.metis_parts(data.senders, data.receivers,
                                      len(data.labels), config.cluster_parts)
  budget = graph_partition.batch_budget(parts, data.senders,
                                        config.clusters_per_batch)
  rng = np.random.default_rng(config.seed)
  plan = functools.partial(graph_partition.cluster_node_sets, parts,
                           config.clusters_per_batch)

  def build(nodes):
    return _batch(graph_partition.induced(data, nodes, budget))

  first = build(plan(rng)[0])
  stream = EpochStream(rng, plan, build, int(config.num_epochs),
                       config.num_train_steps)
  config = common.resolved(config, num_train_steps=stream.total)
  sites = graphs.sites_of(graphs.node_model(config, data),
                          jnp.asarray(first["x"]), graph=first["graph"])
  policy = graphs.build_policy(config, sites)
  model, mesh = graphs.node_model(config, data, policy), \
      common.data_mesh(config)
  key, tx = jax.random.key(config.seed), optax.adam(config.learning_rate)
  variables = model.init({"params": key, "dropout": key}, first["x"],
                         train=False, graph=first["graph"])
  rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = common.to_global(TrainState(
      np.zeros((), np.int32), variables["params"], variables["batch_stats"],
      tx.init(variables["params"])), rep)
  train_step = jax.jit(make_train_step(model, tx, key),
                       in_shardings=(rep, rep), out_shardings=(rep, rep),
                       donate_argnums=0)
  evaluate = make_evaluate(model, data, rep)
  state, log = supervised.train(
      config, workdir, state=state, iterator=stream, train_step=train_step,
      evaluate=evaluate, sharding=rep,
      policy=policy, mesh=mesh, lr_schedule=lambda _: config.learning_rate,
      steps_per_epoch=stream.firsts[1], examples="subgraphs")
  result = {**evaluate(state), "steps": stream.total,
            "policy_sites": len(policy or {})}
  log.scalars(stream.total, {f"eval/{k}": v for k, v in result.items()
                             if k.endswith("accuracy")})
  log.close()
  result = graphs.finish(config, log, result, start)
  result["state"] = state
  return result
