"""Training on graph data: node classification, graph classification and
point clouds (DropGraph's Tables 4 and 5).

Trainers registered by model kind in :mod:`trainers`:

- ``'graph_nodes'`` (:func:`train_nodes`): one graph, full batch, as Kipf &
  Welling and pygcn: Adam with coupled L2 weight decay (pygcn's
  ``Adam(weight_decay=5e-4)`` on every parameter), ``num_epochs`` steps,
  cross-entropy on the training nodes; the reported ``test_accuracy`` is
  the last epoch's (pygcn reports the last epoch; ``best_val_test_accuracy``
  is the test accuracy at the best validation epoch, for reference).
- ``'graphs'``: graph classification, in :mod:`graph_classification`.
- ``'points'``: DGCNN on point clouds, in :mod:`points`.

The regularizer goes to the model's sites matching
``config.regularizer.sites`` (a regex) as the graph-signal version of
``config.regularizer.name`` (:data:`GRAPH_NAMES`). Every run writes
``log.txt``, TensorBoard summaries and ``results.json`` (``test_accuracy``,
``train_eval_accuracy``: the same metric on the training nodes / graphs in
eval mode). A node-classification run scans its epochs in compiled
chunks of ``checkpoint_every_steps`` (one chunk for Cora's 200 epochs),
with a checkpoint after each (the state and the history), and resumes
from the latest; with several processes each runs the whole graph
(replicated) and process 0 writes the files.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

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
from dropgraph_jax.training import checkpointing, common
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


def optimizer(config):
  return optax.chain(optax.add_decayed_weights(config.weight_decay),
                     optax.adam(config.learning_rate))


def _accuracy(logits, labels, mask) -> jax.Array:
  hits = (jnp.argmax(logits, -1) == labels) * mask
  return jnp.sum(hits) / jnp.maximum(jnp.sum(mask), 1)


def masked_xent(logits, labels, mask) -> jax.Array:
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


def fit_nodes(config, data, graph: Graph, seed: int, workdir: str
              ) -> Dict[str, Any]:
  """Trains one seed on one graph; returns accuracies and the history.

  The epochs run as compiled scans of ``checkpoint_every_steps`` epochs
  (one scan when the run is shorter), each followed by a checkpoint of the
  state and the history so far; a restarted run resumes from the latest.
  """
  x = jnp.asarray(data.features)
  sites = sites_of(node_model(config, data), x, graph=graph)
  model = node_model(config, data, build_policy(config, sites))
  key = jax.random.key(seed)
  params = model.init({"params": key, "dropout": key}, x, train=False,
                      graph=graph)["params"]
  tx = optimizer(config)
  labels = jnp.asarray(data.labels)
  masks = {k: jnp.asarray(getattr(data, f"{k}_mask"), jnp.float32)
           for k in ("train", "val", "test")}

  def loss_fn(p, step_key):
    logits = model.apply({"params": p}, x, train=True, graph=graph,
                         rngs={"dropout": step_key})
    return masked_xent(logits, labels, masks["train"])

  def scores(p):
    logits = model.apply({"params": p}, x, train=False, graph=graph)
    return {k: _accuracy(logits, labels, m) for k, m in masks.items()}

  def epoch(carry, i):
    p, opt_state = carry
    loss, grads = jax.value_and_grad(loss_fn)(p, jax.random.fold_in(key, i))
    updates, opt_state = tx.update(grads, opt_state, p)
    p = optax.apply_updates(p, updates)
    return (p, opt_state), (loss, scores(p))

  # Epochs [start, start + length) in one compiled scan.
  run = jax.jit(lambda p, o, start, length: jax.lax.scan(
      epoch, (p, o), start + jnp.arange(length)), static_argnums=3)
  history = run_epochs(config, workdir, run, params, tx.init(params))
  best = int(np.argmax([h[1]["val"] for h in history]))
  last = history[-1][1]
  return {"test_accuracy": float(last["test"]),
          "val_accuracy": float(last["val"]),
          "train_eval_accuracy": float(last["train"]),
          "best_val_test_accuracy": float(history[best][1]["test"]),
          "best_val_epoch": best + 1, "history": history,
          "policy_sites": len(model.policy or {})}


def _host(tree):
  """A replicated global pytree's values on this host."""
  return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)


def run_epochs(config, workdir: str, run, params, opt_state) -> List:
  """Runs (or resumes) ``run`` chunk by chunk with checkpoints; returns
  the ``(loss, accuracies)`` of every epoch. The state is replicated over
  the mesh, so every process runs the whole graph."""
  mesh = common.data_mesh(config)
  rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = common.to_global({"step": np.zeros((), np.int32), "params": params,
                            "opt_state": opt_state}, rep)
  history, total = [], int(config.num_epochs)
  mngr, restored = common.open_checkpoints(
      config, workdir, state, lambda data, _: history.extend(data["history"]))
  done = 0 if restored is None else restored[0]
  state = state if restored is None else restored[1]
  every, stop = config.checkpoint_every_steps, config.preempt_at_step
  record = common.config_record(config)
  try:
    while done < total:
      end = min((done // every + 1) * every, total,
                stop if done < stop else total)
      (p, o), (losses, accs) = run(state["params"], state["opt_state"],
                                   done, end - done)
      losses, accs = _host((losses, accs))
      history += [(float(losses[i]), {k: float(v[i]) for k, v in accs.items()})
                  for i in range(end - done)]
      done, state = end, {"step": common.to_global(
          np.asarray(end, np.int32), rep), "params": p, "opt_state": o}
      checkpointing.save(mngr, done, state, {"history": history},
                         force=done % every == 0 or done == total,
                         config=record)
      if done == stop and done < total:
        mngr.wait_until_finished()
        raise common.Preempted(f"simulated preemption after epoch {done}")
    mngr.wait_until_finished()
  finally:
    mngr.close()
  return history


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
  result = fit_nodes(config, data, graph, config.seed, workdir)
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
