"""Graph classification (DropGraph's Table 5: PROTEINS; OGB ``ogbg-*``).

Fold ``config.fold`` of a seeded stratified ``config.num_folds``-fold
split, or an ``ogbg-*`` folder's official split. Batches are disjoint
unions of up to ``batch_size`` graphs padded to a fixed node and edge
count (one compiled step; padding nodes are masked out of the loss and
the readout and carry no edges); epoch ``e`` visits the training graphs
in the ``e``-th permutation drawn from one ``default_rng(seed)``.

The loop is :func:`supervised.train`'s: checkpoints holding the input
position (the step), exact resume, NaN guards, logging, an evaluation of
the test fold every ``eval_every_epochs``; the input is an
:class:`~dropgraph_jax.data.epoch_stream.EpochStream`. A packed batch does not split
evenly over devices (graphs of every size share one padded graph), so
the step runs replicated: every device of every process computes the
whole batch. A multi-process run is correct and resumable, but no faster
than one device.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Dict, Iterator, List

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dropgraph_jax.data import graphs as graph_data
from dropgraph_jax.data.epoch_stream import EpochStream
from dropgraph_jax.models import get_model
from dropgraph_jax.models.gcn import normalized_graph
from dropgraph_jax.training import common, graphs, supervised
from dropgraph_jax.training.supervised import TrainState


def batch_budget(dataset, batch_size: int):
  """Fixed node and edge counts of every packed batch (one compile): room
  for the largest graph, and 1.5x an average batch."""
  nodes = np.array([len(f) for f in dataset.node_features])
  edges = np.array([len(s) for s in dataset.senders])
  return (int(max(nodes.max(), 1.5 * batch_size * nodes.mean())) + 1,
          int(max(edges.max(), 1.5 * batch_size * edges.mean())) + 1)


def batch_groups(dataset, order, batch_size: int, budget
                 ) -> Iterator[List[int]]:
  """The graphs of each batch: up to ``batch_size`` of ``order`` in turn,
  within the ``budget`` (nodes, edges; the last node is padding)."""
  current, nodes, edges = [], 0, 0
  for i in order:
    n, e = len(dataset.node_features[i]), len(dataset.senders[i])
    if current and (len(current) == batch_size or nodes + n >= budget[0] or
                    edges + e > budget[1]):
      yield current
      current, nodes, edges = [], 0, 0
    current.append(i)
    nodes, edges = nodes + n, edges + e
  if current:
    yield current


def packed_batches(dataset, order, batch_size: int, budget):
  """:func:`pack` of each of :func:`batch_groups`."""
  for group in batch_groups(dataset, order, batch_size, budget):
    yield pack(dataset, group, batch_size, budget)


def pack(dataset, idx, batch_size: int, budget) -> Dict[str, Any]:
  """One padded batch: features, a normalised
  :class:`~dropgraph_jax.models.gcn.Graph`, node-to-graph ids (padding
  nodes belong to graph ``batch_size``), labels and masks."""
  max_nodes, max_edges = budget
  feats = dataset.node_features
  x = np.zeros((max_nodes, feats[0].shape[1]), np.float32)
  ids = np.full(max_nodes, batch_size, np.int32)
  pad = max_nodes - 1
  senders, receivers = np.full(max_edges, pad), np.full(max_edges, pad)
  offset = count = 0
  for g, i in enumerate(idx):
    n, e = len(feats[i]), len(dataset.senders[i])
    x[offset:offset + n], ids[offset:offset + n] = feats[i], g
    senders[count:count + e] = dataset.senders[i] + offset
    receivers[count:count + e] = dataset.receivers[i] + offset
    offset, count = offset + n, count + e
  labels = np.zeros(batch_size, np.int32)
  labels[:len(idx)] = dataset.labels[idx]
  # Padding edges are loops on the padding node: every batch keeps the
  # same edge count (one compiled step) and no real node is touched.
  return {"x": x, "graph": normalized_graph(senders, receivers, max_nodes),
          "graph_ids": ids, "node_mask": ids < batch_size, "labels": labels,
          "label_mask": (np.arange(batch_size) < len(idx)).astype(
              np.float32)}


def graph_stream(dataset, train_idx, batch_size: int, budget, seed: int,
                 epochs: int, steps: int = 0) -> EpochStream:
  """The run's packed batches: epoch ``e`` in the ``e``-th permutation of
  ``default_rng(seed)``."""
  def plan(rng):
    return list(batch_groups(dataset, rng.permutation(train_idx),
                             batch_size, budget))
  build = functools.partial(pack, dataset, batch_size=batch_size,
                            budget=budget)
  return EpochStream(np.random.default_rng(seed), plan, build, epochs, steps)


def make_steps(model, tx, key, batch_size: int):
  """``train_step(state, batch)`` and ``eval_step(state, batch)`` for
  :func:`supervised.train`; the state's ``batch_stats`` is ``{}`` for a
  model without batch norm."""
  def logits_of(params, stats, b, train, step_key=None):
    collections = {"batch_stats": stats} if stats else {}
    out = model.apply(
        {"params": params, **collections}, b["x"], train=train,
        graph=b["graph"], graph_ids=b["graph_ids"],
        num_graphs=batch_size + 1, node_mask=b["node_mask"],
        rngs=None if step_key is None else {"dropout": step_key},
        mutable=list(collections) if train else False)
    logits, new = out if train else (out, collections)
    return logits[:batch_size], new.get("batch_stats", {})

  def train_step(state: TrainState, b):
    def loss_fn(p):
      logits, stats = logits_of(p, state.batch_stats, b, True,
                                jax.random.fold_in(key, state.step))
      return graphs.masked_xent(logits, b["labels"], b["label_mask"]), (
          None, stats)
    state, loss, _ = supervised.gradient_step(state, tx, loss_fn)
    return state, {"loss": loss, "rate_factor": jnp.float32(1.0)}

  def eval_step(state: TrainState, b):
    logits, _ = logits_of(state.params, state.batch_stats, b, False)
    return jnp.sum((jnp.argmax(logits, -1) == b["labels"]) * b["label_mask"])

  return train_step, eval_step


def load_graph_split(config):
  """``(dataset, train_idx, test_idx)``: an ``ogbg-*`` folder with its
  official split, or a TU dataset with fold ``config.fold`` of a seeded
  stratified ``config.num_folds``-fold split."""
  if config.dataset.startswith("ogbg"):
    dataset = graph_data.load_ogb_graph_csv(config.data_dir)
    return dataset, dataset.splits["train"], dataset.splits["test"]
  # Node labels one-hot, as GIN and the TU benchmarks use PROTEINS (its raw
  # node attribute is unscaled).
  dataset = graph_data.load_tu(config.data_dir, config.dataset,
                               node_attributes=False)
  folds = graph_data.stratified_folds(dataset.labels, config.num_folds,
                                      config.data_seed)
  if not 0 <= config.fold < len(folds):
    raise ValueError(f"config.fold must be in [0, {len(folds)}), got "
                     f"{config.fold}.")
  return (dataset, *folds[config.fold])


def _initial_state(config, model, tx, first, key, sharding) -> TrainState:
  variables = model.init({"params": key, "dropout": key},
                         jnp.asarray(first["x"]), train=False,
                         graph=first["graph"], graph_ids=first["graph_ids"],
                         num_graphs=config.batch_size + 1)
  params = variables["params"]
  return common.to_global(TrainState(
      np.zeros((), np.int32), params, variables.get("batch_stats", {}),
      tx.init(params)), sharding)


def train_graphs(config: ml_collections.ConfigDict, workdir: str
                 ) -> Dict[str, Any]:
  """Graph classification on fold ``config.fold``: ``results.json``."""
  start = time.time()
  common.ensure_writable(workdir)
  dataset, train_idx, test_idx = load_graph_split(config)
  budget = batch_budget(dataset, config.batch_size)
  stream = graph_stream(dataset, train_idx, config.batch_size, budget,
                        config.seed, int(config.num_epochs),
                        config.num_train_steps)
  config = common.resolved(config, num_train_steps=stream.total)
  first = pack(dataset, train_idx[:1], config.batch_size, budget)
  make = functools.partial(get_model, config.model,
                           num_classes=dataset.num_classes,
                           **config.model_kwargs)
  policy = graphs.build_policy(config, graphs.sites_of(
      make(), jnp.asarray(first["x"]), graph=first["graph"],
      graph_ids=first["graph_ids"], num_graphs=config.batch_size + 1))
  model, mesh = make(policy=policy), common.data_mesh(config)
  tx, key = graphs.optimizer(config), jax.random.key(config.seed)
  rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  train_step, eval_step = make_steps(model, tx, key, config.batch_size)
  # Replicated batch and state (see the module docstring).
  train_step = jax.jit(train_step, in_shardings=(rep, rep),
                       out_shardings=(rep, rep), donate_argnums=0)
  eval_step = jax.jit(eval_step, in_shardings=(rep, rep), out_shardings=rep)

  def accuracy(idx, state):
    return {"accuracy": sum(float(eval_step(state, common.to_global(b, rep)))
                            for b in packed_batches(dataset, idx,
                                                    config.batch_size,
                                                    budget)) / len(idx)}

  state, log = supervised.train(
      config, workdir,
      state=_initial_state(config, model, tx, first, key, rep),
      iterator=stream, train_step=train_step,
      evaluate=functools.partial(accuracy, test_idx), sharding=rep,
      policy=policy, mesh=mesh, lr_schedule=lambda _: config.learning_rate,
      steps_per_epoch=stream.firsts[1],
      examples="graphs")
  scores, fit = supervised.final_scores(
      log, stream.total, functools.partial(accuracy, state=state),
      test_idx, train_idx)
  result = {"test_accuracy": scores["accuracy"],
            "train_eval_accuracy": fit["accuracy"], "steps": stream.total,
            "policy_sites": len(policy or {}),
            "fold": config.get("fold", -1)}
  result = graphs.finish(config, log, result, start)
  result["state"] = state
  return result
