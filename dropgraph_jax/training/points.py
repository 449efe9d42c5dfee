"""Training DGCNN on point clouds (DropGraph's Table 4).

The reference's recipe (WangYueFt/dgcnn): SGD momentum 0.9, lr 0.1 with
cosine annealing, weight decay 1e-4, batch 32, 250 epochs on ModelNet40
(1,024 points, unit sphere), training clouds randomly scaled, translated
and shuffled (:func:`~dropgraph_jax.data.point_clouds.augment_point_cloud`);
the regularizer goes to the sites ``config.regularizer.sites`` (after every
EdgeConv) as in :mod:`graphs`. ``dataset='synthetic_shapes'`` generates
clouds of primitive shapes, for a run without ModelNet40.

The loop is :func:`supervised.train`'s (the image trainers'): the batch
sharded over the ``data`` mesh of every device of every process, the
state replicated, checkpoints with the input position, exact resume,
NaN guards, simulated preemption. Step ``s`` draws its clouds and their
augmentation for the whole global batch from ``default_rng([seed, s])``
and each process keeps its rows, so the run does not depend on the
number of processes and its input position is the step.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any, Dict

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dropgraph_jax.data import hosts, point_clouds
from dropgraph_jax.models import get_model
from dropgraph_jax.training import common, distributed, graphs, supervised
from dropgraph_jax.training.supervised import TrainState


def load_points(config, workdir: str):
  """``(train points, labels), (test points, labels), num_classes``.

  ``synthetic_shapes`` writes the generated clouds in ModelNet40's HDF5
  layout under ``workdir/data`` and reads them back through the same
  reader, so the run exercises the real format end to end.
  """
  root = config.data_dir
  if config.dataset == "synthetic_shapes":
    root = os.path.join(workdir, "data")
    for split, count, seed in (("train", config.synthetic_per_class, 0),
                               ("test", config.synthetic_per_class // 4, 1)):
      if distributed.is_primary():  # one writer; the others wait below
        point_clouds.write_modelnet40_h5(
            root, *point_clouds.synthetic_shapes(count, config.num_points,
                                                 seed=seed), split)
    distributed.barrier("synthetic point clouds")
  elif config.dataset != "modelnet40":
    raise ValueError(f"config.dataset={config.dataset!r}: point datasets "
                     "are 'modelnet40' (data_dir = the folder of "
                     "modelnet40_ply_hdf5_2048) or 'synthetic_shapes'.")
  train = point_clouds.load_modelnet40_h5(root, "train", config.num_points)
  test = point_clouds.load_modelnet40_h5(root, "test", config.num_points)
  return train, test, int(max(train[1].max(), test[1].max())) + 1


class PointStream:
  """Step ``s`` -> this process's rows of the global batch of step ``s``
  (see the module docstring); ``get_state``/``set_state`` as grain's
  iterators, for the checkpoint."""

  def __init__(self, points, labels, global_batch: int, seed: int):
    if global_batch % jax.process_count():
      raise ValueError(f"batch_size {global_batch} is not divisible by the "
                       f"number of processes {jax.process_count()}.")
    self.points, self.labels, self.seed = points, labels, seed
    self.batch, self.step = global_batch, 0
    self.rows = hosts.this_host_rows(global_batch)

  def __next__(self) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng([self.seed, self.step])
    idx = rng.choice(len(self.labels), self.batch, replace=False)
    clouds = point_clouds.augment_point_cloud(self.points[idx], rng)
    self.step += 1
    return {"image": self.rows.of(clouds),
            "label": self.rows.of(self.labels[idx]).astype(np.int32)}

  def get_state(self) -> Dict[str, int]:
    return {"step": self.step}

  def set_state(self, state) -> None:
    self.step = int(state["step"])


def make_steps(model):
  """``train_step(state, batch)`` and ``eval_step(state, batch)`` for
  :func:`supervised.train` (no regularizer ramp: ``rate_factor`` 1)."""
  def objective(logits, batch):
    loss = optax.softmax_cross_entropy_with_integer_labels(
        logits, batch["label"]).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) ==
                                       batch["label"])}

  def eval_step(state: TrainState, batch):
    logits = model.apply({"params": state.params,
                          "batch_stats": state.batch_stats}, batch["image"],
                         train=False)
    mask = batch["mask"].astype(jnp.float32)
    return {"correct": jnp.sum((jnp.argmax(logits, -1) == batch["label"]) *
                               mask), "count": jnp.sum(mask)}
  return objective, eval_step


def evaluate(eval_step, state, points, labels, batch: int, sharding
             ) -> Dict[str, float]:
  """Accuracy over ``points`` (each process scores its share)."""
  correct = count = 0.0
  for idx, valid in hosts.host_eval_batches(len(labels), batch):
    out = jax.device_get(eval_step(state, common.to_global(
        {"image": points[idx], "label": labels[idx].astype(np.int32),
         "mask": valid}, sharding)))
    correct, count = correct + out["correct"], count + out["count"]
  return {"accuracy": float(correct) / max(float(count), 1.0)}


def train_points(config: ml_collections.ConfigDict, workdir: str
                 ) -> Dict[str, Any]:
  """DGCNN on point clouds: ``results.json`` with ``test_accuracy``."""
  start = time.time()
  common.ensure_writable(workdir)
  (xs, ys), (xt, yt), classes = load_points(config, workdir)
  steps_per_epoch, total = supervised.steps_of(config, len(ys), "clouds")
  config = common.resolved(config, num_train_steps=total)
  make = functools.partial(get_model, config.model, num_classes=classes,
                           **config.model_kwargs)
  probe = jnp.asarray(xs[:2])
  policy = graphs.build_policy(config, graphs.sites_of(make(), probe))
  model, mesh = make(policy=policy), common.data_mesh(config)
  schedule = optax.cosine_decay_schedule(config.learning_rate, total)
  tx = optax.chain(optax.add_decayed_weights(config.weight_decay),
                   optax.sgd(schedule, momentum=0.9))
  key = jax.random.key(config.seed)
  objective, eval_step = make_steps(model)
  train_step = supervised.make_train_step(
      model, tx, lambda step: jnp.float32(1.0), key, objective)
  train_step, eval_step, sharding, replicated = supervised.jit_steps(
      train_step, eval_step, mesh)
  state = supervised.init_state(model, tx, probe.shape, key, replicated)

  def scores_on(data, state):
    return evaluate(eval_step, state, *data, config.eval_batch_size,
                    sharding)

  state, log = supervised.train(
      config, workdir, state=state,
      iterator=PointStream(xs, ys, config.batch_size, config.seed),
      train_step=train_step, evaluate=functools.partial(
          scores_on, (xt, yt)), sharding=sharding, policy=policy,
      mesh=mesh, lr_schedule=schedule, steps_per_epoch=steps_per_epoch,
      examples="clouds")
  scores, fit = supervised.final_scores(
      log, total, functools.partial(scores_on, state=state), (xt, yt),
      (xs, ys))
  results = {**supervised.results_base(config, policy, total, start, mesh),
             "test_accuracy": scores["accuracy"],
             "train_eval_accuracy": fit["accuracy"]}
  log.write_results(results)
  results["state"] = state
  return results
