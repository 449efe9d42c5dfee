"""Cluster-GCN training (Chiang et al. 2019) for ogbn-products.

Steps on METIS-cluster subgraphs (:mod:`dropgraph_jax.data.graph_partition`),
``clusters_per_batch`` clusters a step, Adam; evaluation is full-graph
inference in eval mode (sparse, one segment sum per layer), accuracy on the
official train / valid / test nodes. The reference settings for
ogbn-products (OGB's ``cluster_gcn.py``): 15,000 parts, 32 per batch, 3
layers of 256, lr 0.001, 50 epochs.
"""

from __future__ import annotations

import time
from typing import Any, Dict

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dropgraph_jax.data import graph_partition
from dropgraph_jax.models.gcn import normalized_graph
from dropgraph_jax.training import common, graphs
from dropgraph_jax.training.run_log import RunLog


def _step_fn(model, tx, key):
  def loss_fn(p, stats, b, step_key):
    logits, new = model.apply({"params": p, "batch_stats": stats}, b["x"],
                              train=True, graph=b["graph"],
                              rngs={"dropout": step_key},
                              mutable=["batch_stats"])
    losses = optax.softmax_cross_entropy_with_integer_labels(
        logits, b["labels"])
    mask = b["train_mask"]
    return jnp.sum(losses * mask) / jnp.maximum(mask.sum(), 1), \
        new["batch_stats"]

  @jax.jit
  def step(p, stats, opt_state, b, i):
    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        p, stats, b, jax.random.fold_in(key, i))
    updates, opt_state = tx.update(grads, opt_state, p)
    return optax.apply_updates(p, updates), stats, opt_state, loss

  return step


def _batch(sub) -> Dict[str, Any]:
  """A padded subgraph with its normalised graph (numpy, static sizes)."""
  sub = dict(sub)
  sub["graph"] = normalized_graph(sub.pop("senders"), sub.pop("receivers"),
                                  sub.pop("num_nodes"))
  return sub


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
  first = _batch(next(graph_partition.cluster_batches(
      data, parts, config.clusters_per_batch, rng, budget)))
  sites = graphs.sites_of(graphs.node_model(config, data),
                          jnp.asarray(first["x"]), graph=first["graph"])
  model = graphs.node_model(config, data, graphs.build_policy(config, sites))
  key = jax.random.key(config.seed)
  variables = model.init({"params": key, "dropout": key}, first["x"],
                         train=False, graph=first["graph"])
  params, stats = variables["params"], variables["batch_stats"]
  tx = optax.adam(config.learning_rate)
  opt_state, step, i = tx.init(params), _step_fn(model, tx, key), 0
  log = RunLog(workdir, int(config.num_epochs), config=config)
  for epoch in range(int(config.num_epochs)):
    for sub in graph_partition.cluster_batches(
        data, parts, config.clusters_per_batch, rng, budget):
      params, stats, opt_state, loss = step(params, stats, opt_state,
                                            _batch(sub), i)
      i += 1
    log.scalars(epoch + 1, {"train/loss": float(loss)})
  full = normalized_graph(data.senders, data.receivers, len(data.labels))
  logits = model.apply({"params": params, "batch_stats": stats},
                       jnp.asarray(data.features), train=False, graph=full)
  right = np.asarray(jnp.argmax(logits, -1)) == data.labels
  result = {"test_accuracy": float(right[data.test_mask].mean()),
            "val_accuracy": float(right[data.val_mask].mean()),
            "train_eval_accuracy": float(right[data.train_mask].mean()),
            "steps": i, "policy_sites": len(model.policy or {})}
  log.close()
  return graphs.finish(config, log, result, start)
