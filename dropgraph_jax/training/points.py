"""Training DGCNN on point clouds (DropGraph's Table 4).

The reference's recipe (WangYueFt/dgcnn): SGD momentum 0.9, lr 0.1 with
cosine annealing, weight decay 1e-4, batch 32, 250 epochs on ModelNet40
(1,024 points, unit sphere), training clouds randomly scaled, translated
and shuffled (:func:`~dropgraph_jax.data.point_clouds.augment_point_cloud`);
the regularizer goes to the sites ``config.regularizer.sites`` (after every
EdgeConv) as in :mod:`graphs`. ``dataset='synthetic_shapes'`` generates
clouds of primitive shapes, for a run without ModelNet40.
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

from dropgraph_jax.data import point_clouds
from dropgraph_jax.models import get_model
from dropgraph_jax.training import common, graphs
from dropgraph_jax.training.run_log import RunLog


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
      point_clouds.write_modelnet40_h5(root, *point_clouds.synthetic_shapes(
          count, config.num_points, seed=seed), split)
  elif config.dataset != "modelnet40":
    raise ValueError(f"config.dataset={config.dataset!r}: point datasets "
                     "are 'modelnet40' (data_dir = the folder of "
                     "modelnet40_ply_hdf5_2048) or 'synthetic_shapes'.")
  train = point_clouds.load_modelnet40_h5(root, "train", config.num_points)
  test = point_clouds.load_modelnet40_h5(root, "test", config.num_points)
  return train, test, int(max(train[1].max(), test[1].max())) + 1


def _point_steps(model, tx, key):
  def loss_fn(p, stats, x, y, step_key):
    logits, new = model.apply({"params": p, "batch_stats": stats}, x,
                              train=True, rngs={"dropout": step_key},
                              mutable=["batch_stats"])
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, y).mean(), new["batch_stats"]

  @jax.jit
  def step(p, stats, opt_state, x, y, i):
    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        p, stats, x, y, jax.random.fold_in(key, i))
    updates, opt_state = tx.update(grads, opt_state, p)
    return optax.apply_updates(p, updates), stats, opt_state, loss

  @jax.jit
  def hits(p, stats, x, y):
    logits = model.apply({"params": p, "batch_stats": stats}, x,
                         train=False)
    return jnp.sum(jnp.argmax(logits, -1) == y)

  return step, hits


def train_points(config: ml_collections.ConfigDict, workdir: str
                 ) -> Dict[str, Any]:
  """DGCNN on point clouds: ``results.json`` with ``test_accuracy``."""
  start = time.time()
  common.ensure_writable(workdir)
  (xs, ys), (xt, yt), classes = load_points(config, workdir)
  batch = config.batch_size
  steps_per_epoch = max(1, len(ys) // batch)
  total = int(config.num_epochs) * steps_per_epoch
  make = functools.partial(get_model, config.model, num_classes=classes,
                           **config.model_kwargs)
  probe = jnp.asarray(xs[:2])
  model = make(policy=graphs.build_policy(config, graphs.sites_of(make(), probe)))
  key = jax.random.key(config.seed)
  variables = model.init({"params": key, "dropout": key}, probe,
                         train=False)
  tx = optax.chain(optax.add_decayed_weights(config.weight_decay),
                   optax.sgd(optax.cosine_decay_schedule(
                       config.learning_rate, total), momentum=0.9))
  params, stats = variables["params"], variables["batch_stats"]
  opt_state, rng = tx.init(params), np.random.default_rng(config.seed)
  step, hits = _point_steps(model, tx, key)
  log = RunLog(workdir, total, config=config)
  for i in range(total):
    idx = rng.choice(len(ys), batch, replace=False)
    x = point_clouds.augment_point_cloud(xs[idx], rng)
    params, stats, opt_state, loss = step(params, stats, opt_state,
                                          jnp.asarray(x), ys[idx], i)
    if (i + 1) % config.log_every_steps == 0:
      log.scalars(i + 1, {"train/loss": float(loss)})

  def accuracy(x, y):
    return sum(float(hits(params, stats, jnp.asarray(x[j:j + batch]),
                          y[j:j + batch]))
               for j in range(0, len(y), batch)) / len(y)

  result = {"test_accuracy": accuracy(xt, yt),
            "train_eval_accuracy": accuracy(xs, ys), "steps": total,
            "policy_sites": len(model.policy or {})}
  log.scalars(total, {"eval/test_accuracy": result["test_accuracy"]})
  log.close()
  return graphs.finish(config, log, result, start)
