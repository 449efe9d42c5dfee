"""Training on graph data: node classification, graph classification and
point clouds (DropGraph's Tables 4 and 5).

Trainers registered by model kind in :mod:`trainers`:

- ``'graph_nodes'`` (:func:`train_nodes`): one graph, full batch, as Kipf &
  Welling and pygcn: Adam with coupled L2 weight decay (pygcn's
  ``Adam(weight_decay=5e-4)`` on every parameter), ``num_epochs`` steps,
  cross-entropy on the training nodes; the reported ``test_accuracy`` is
  the last epoch's (pygcn reports the last epoch; ``best_val_test_accuracy``
  is the test accuracy at the best validation epoch, for reference).
- ``'graphs'`` (:func:`train_graphs`): graph classification with fold
  ``config.fold`` of a seeded stratified ``config.num_folds``-fold split;
  batches are disjoint unions of ``batch_size`` graphs padded to a fixed
  node and edge count (one compiled step; padding nodes are masked out of
  the loss and the readout and carry no edges).
- ``'points'``: DGCNN on point clouds, in :mod:`points`.

The regularizer goes to the model's sites matching
``config.regularizer.sites`` (a regex) as the graph-signal version of
``config.regularizer.name`` (:data:`GRAPH_NAMES`). Every run writes
``log.txt``, TensorBoard summaries and ``results.json`` (``test_accuracy``,
``train_eval_accuracy``: the same metric on the training nodes / graphs in
eval mode). Runs are seconds to minutes long; they keep no checkpoints.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Dict, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dropgraph_jax.data import graphs as graph_data
from dropgraph_jax.models import get_model, list_sites
from dropgraph_jax.models.gcn import Graph, normalized_graph
from dropgraph_jax.patterns import Policy, RegularizerSpec
from dropgraph_jax.regularizers._validate import compile_regex
from dropgraph_jax.training import common
from dropgraph_jax.training.run_log import RunLog

# config.regularizer.name -> the registry's graph-signal regularizer.
GRAPH_NAMES = {"dropout": "graph_dropout",
               "spatial_dropout": "graph_spatial_dropout",
               "disout": "graph_disout", "dropgraph": "graph_dropgraph"}


def build_policy(config, sites) -> Optional[Policy]:
  """``config.regularizer`` at the sites matching ``regularizer.sites``."""
  reg = config.regularizer
  common.check_regularizer_name(reg.name, ("none", *GRAPH_NAMES), "graph")
  if reg.name == "none":
    return None
  options = {"rate": reg.rate, **dict(reg.get("options", {}))}
  if reg.name == "dropgraph":
    options["alpha"] = reg.alpha
  spec = RegularizerSpec(GRAPH_NAMES[reg.name], options).validate(
      "config.regularizer")
  pattern = compile_regex("config", "regularizer.sites", reg.sites)
  chosen = {s: spec for s in sites if pattern.fullmatch(s)}
  if not chosen:
    raise ValueError(f"config.regularizer.sites={reg.sites!r} matches none "
                     f"of the model's sites {list(sites)}.")
  return Policy(chosen)


def _optimizer(config):
  return optax.chain(optax.add_decayed_weights(config.weight_decay),
                     optax.adam(config.learning_rate))


def _accuracy(logits, labels, mask) -> jax.Array:
  hits = (jnp.argmax(logits, -1) == labels) * mask
  return jnp.sum(hits) / jnp.maximum(jnp.sum(mask), 1)


def _masked_xent(logits, labels, mask) -> jax.Array:
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1)


def load_node_graph(config) -> graph_data.NodeGraph:
  """``config.dataset``: a Planetoid name (``cora``, ``citeseer``,
  ``pubmed``: ``ind.NAME.*`` files in ``data_dir``) or an ``ogbn-*``
  folder in OGB's raw CSV layout."""
  if config.dataset.startswith("ogbn"):
    return graph_data.load_ogb_node_csv(config.data_dir)
  return graph_data.load_planetoid(config.data_dir, config.dataset)


def node_model(config, data, policy=None):
  return get_model(config.model, num_classes=data.num_classes,
                   policy=policy, **config.model_kwargs)


def fit_nodes(config, data, graph: Graph, seed: int) -> Dict[str, Any]:
  """Trains one seed on one graph; returns accuracies and the history."""
  x = jnp.asarray(data.features)
  sites = sites_of(node_model(config, data), x, graph=graph)
  model = node_model(config, data, build_policy(config, sites))
  key = jax.random.key(seed)
  variables = model.init({"params": key, "dropout": key}, x, train=False,
                         graph=graph)
  params = variables["params"]
  tx = _optimizer(config)
  labels = jnp.asarray(data.labels)
  masks = {k: jnp.asarray(getattr(data, f"{k}_mask"), jnp.float32)
           for k in ("train", "val", "test")}

  def loss_fn(p, step_key):
    logits = model.apply({"params": p}, x, train=True, graph=graph,
                         rngs={"dropout": step_key})
    return _masked_xent(logits, labels, masks["train"])

  def scores(p):
    logits = model.apply({"params": p}, x, train=False, graph=graph)
    return {k: _accuracy(logits, labels, m) for k, m in masks.items()}

  def epoch(carry, i):
    p, opt_state = carry
    loss, grads = jax.value_and_grad(loss_fn)(p, jax.random.fold_in(key, i))
    updates, opt_state = tx.update(grads, opt_state, p)
    p = optax.apply_updates(p, updates)
    return (p, opt_state), (loss, scores(p))

  # Every epoch in one compiled scan: the whole run is one program call.
  run = jax.jit(lambda p: jax.lax.scan(
      epoch, (p, tx.init(p)), jnp.arange(int(config.num_epochs)))[1])
  losses, accs = jax.device_get(run(params))
  history = [(float(losses[i]), {k: float(v[i]) for k, v in accs.items()})
             for i in range(len(losses))]
  best = int(np.argmax([h[1]["val"] for h in history]))
  last = history[-1][1]
  return {"test_accuracy": float(last["test"]),
          "val_accuracy": float(last["val"]),
          "train_eval_accuracy": float(last["train"]),
          "best_val_test_accuracy": float(history[best][1]["test"]),
          "best_val_epoch": best + 1, "history": history,
          "policy_sites": len(model.policy or {})}


def sites_of(model, x, **kwargs):
  return list_sites(model, x.shape, **kwargs)


def train_nodes(config: ml_collections.ConfigDict, workdir: str
                ) -> Dict[str, Any]:
  """Node classification (Cora, ...): ``results.json`` and the results."""
  start = time.time()
  common.ensure_writable(workdir)
  data = load_node_graph(config)
  graph = normalized_graph(data.senders, data.receivers,
                           data.features.shape[0])
  result = fit_nodes(config, data, graph, config.seed)
  log = RunLog(workdir, int(config.num_epochs), config=config)
  for i, (loss, acc) in enumerate(result.pop("history")):
    if (i + 1) % config.log_every_steps == 0 or i + 1 == int(config.num_epochs):
      log.scalars(i + 1, {"train/loss": loss, **{
          f"eval/{k}_accuracy": float(v) for k, v in acc.items()}})
  log.close()
  return finish(config, log, result, start)


def finish(config, log: RunLog, result, start) -> Dict[str, Any]:
  result = {"model": config.model, "dataset": config.dataset,
            "regularizer": config.regularizer.name, "seed": config.seed,
            "steps": int(config.num_epochs), **result,
            "wall_time_s": time.time() - start,
            "backend": jax.default_backend()}
  log.write_results(result)
  return result


# --- graph classification ----------------------------------------------


def batch_budget(dataset, batch_size: int):
  """Fixed node and edge counts of every packed batch (one compile): room
  for the largest graph, and 1.5x an average batch."""
  nodes = np.array([len(f) for f in dataset.node_features])
  edges = np.array([len(s) for s in dataset.senders])
  return (int(max(nodes.max(), 1.5 * batch_size * nodes.mean())) + 1,
          int(max(edges.max(), 1.5 * batch_size * edges.mean())) + 1)


def packed_batches(dataset, order, batch_size: int, budget):
  """Yields disjoint unions of up to ``batch_size`` graphs in ``order``
  within the ``budget`` (nodes, edges); the last node is padding."""
  current, nodes, edges = [], 0, 0
  for i in order:
    n, e = len(dataset.node_features[i]), len(dataset.senders[i])
    if current and (len(current) == batch_size or nodes + n >= budget[0] or
                    edges + e > budget[1]):
      yield pack(dataset, current, batch_size, budget)
      current, nodes, edges = [], 0, 0
    current.append(i)
    nodes, edges = nodes + n, edges + e
  if current:
    yield pack(dataset, current, batch_size, budget)


def pack(dataset, idx, batch_size: int, budget) -> Dict[str, Any]:
  """One padded batch: features, a normalised :class:`Graph`, node-to-graph
  ids (padding nodes belong to graph ``batch_size``), labels and masks."""
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


def _graph_step_fns(model, tx, batch_size: int, key):
  """Jitted ``step`` and ``hits``; ``state`` holds the batch-norm
  statistics of models that have them (an empty dict otherwise)."""
  def logits_of(p, state, b, train, step_key=None):
    out = model.apply(
        {"params": p, **state}, jnp.asarray(b["x"]), train=train,
        graph=b["graph"], graph_ids=b["graph_ids"],
        num_graphs=batch_size + 1, node_mask=b["node_mask"],
        rngs=None if step_key is None else {"dropout": step_key},
        mutable=list(state) if train else False)
    logits, state = out if train else (out, state)
    return logits[:batch_size], state

  @jax.jit
  def step(p, state, opt_state, b, i):
    def loss_fn(q):
      logits, new = logits_of(q, state, b, True, jax.random.fold_in(key, i))
      return _masked_xent(logits, b["labels"], b["label_mask"]), new
    (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(p)
    updates, opt_state = tx.update(grads, opt_state, p)
    return optax.apply_updates(p, updates), state, opt_state, loss

  @jax.jit
  def hits(p, state, b):
    logits, _ = logits_of(p, state, b, False)
    return jnp.sum((jnp.argmax(logits, -1) == b["labels"]) * b["label_mask"])

  return step, hits


def fit_graphs(config, dataset, train_idx, test_idx, seed: int
               ) -> Dict[str, Any]:
  """Trains one seed on ``train_idx``; accuracies on both index sets."""
  budget = batch_budget(dataset, config.batch_size)
  first = pack(dataset, train_idx[:1], config.batch_size, budget)
  kwargs = dict(graph=first["graph"], graph_ids=first["graph_ids"],
                num_graphs=config.batch_size + 1)
  make = functools.partial(get_model, config.model,
                           num_classes=dataset.num_classes,
                           **config.model_kwargs)
  model = make(policy=build_policy(
      config, sites_of(make(), jnp.asarray(first["x"]), **kwargs)))
  key = jax.random.key(seed)
  variables = model.init({"params": key, "dropout": key},
                         jnp.asarray(first["x"]), train=False, **kwargs)
  params = variables["params"]
  state = {k: v for k, v in variables.items() if k == "batch_stats"}
  tx = _optimizer(config)
  step, hits = _graph_step_fns(model, tx, config.batch_size, key)
  opt_state, rng, i = tx.init(params), np.random.default_rng(seed), 0
  for _ in range(int(config.num_epochs)):
    for b in packed_batches(dataset, rng.permutation(train_idx),
                            config.batch_size, budget):
      params, state, opt_state, _ = step(params, state, opt_state, b, i)
      i += 1

  def accuracy(idx):
    return sum(float(hits(params, state, b)) for b in packed_batches(
        dataset, idx, config.batch_size, budget)) / len(idx)

  return {"test_accuracy": accuracy(test_idx),
          "train_eval_accuracy": accuracy(train_idx), "steps": i,
          "policy_sites": len(model.policy or {})}


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


def train_graphs(config: ml_collections.ConfigDict, workdir: str
                 ) -> Dict[str, Any]:
  """Graph classification on fold ``config.fold``: ``results.json``."""
  start = time.time()
  common.ensure_writable(workdir)
  dataset, train_idx, test_idx = load_graph_split(config)
  result = fit_graphs(config, dataset, train_idx, test_idx, config.seed)
  log = RunLog(workdir, int(config.num_epochs), config=config)
  log.scalars(int(config.num_epochs), {"eval/test_accuracy":
                                  result["test_accuracy"]})
  log.close()
  result["fold"] = config.get("fold", -1)
  return finish(config, log, result, start)


