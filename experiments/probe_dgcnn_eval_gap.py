"""DGCNN on generated shapes: accuracy in training mode vs eval mode.

    python -m experiments.probe_dgcnn_eval_gap [--regularizer dropgraph] \\
        [--steps 150]

Trains the small DGCNN of ``configs/modelnet40_dgcnn.py:REG,synthetic`` for
``--steps`` steps, then scores the first 64 test clouds with the
regularizers active (training mode, batch statistics of the batch) and in
eval mode (running statistics, no regularizer), and prints the largest
running statistics: a large gap means the batch-norm statistics gathered
under the distortions do not fit the undistorted eval features.
"""

from __future__ import annotations

import argparse
import functools
import tempfile

import jax
import jax.numpy as jnp
import optax

from configs import modelnet40_dgcnn
from dropgraph_jax.models import get_model
from dropgraph_jax.training import graphs, points, supervised


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--regularizer", default="dropgraph")
  parser.add_argument("--steps", type=int, default=150)
  args = parser.parse_args(argv)
  config = modelnet40_dgcnn.get_config(f"{args.regularizer},synthetic")
  with tempfile.TemporaryDirectory() as tmp:
    (xs, ys), (xt, yt), classes = points.load_points(config, tmp)
  make = functools.partial(get_model, config.model, num_classes=classes)
  probe = jnp.asarray(xs[:2])
  model = make(policy=graphs.build_policy(config,
                                          graphs.sites_of(make(), probe)))
  key = jax.random.key(0)
  variables = model.init({"params": key, "dropout": key}, probe, train=False)
  tx = optax.chain(optax.add_decayed_weights(1e-4),
                   optax.sgd(0.05, momentum=0.9))
  objective, _ = points.make_steps(model)
  step = jax.jit(supervised.make_train_step(
      model, tx, lambda _: jnp.float32(1.0), key, objective))
  state = supervised.TrainState(
      jnp.zeros((), jnp.int32), variables["params"],
      variables["batch_stats"], tx.init(variables["params"]))
  stream = points.PointStream(xs, ys, config.batch_size, seed=0)
  for _ in range(args.steps):
    state, metrics = step(state, next(stream))
  p, s, loss = state.params, state.batch_stats, metrics["loss"]
  x, y = jnp.asarray(xt[:64]), yt[:64]
  evaluated = model.apply({"params": p, "batch_stats": s}, x, train=False)
  trained, _ = model.apply({"params": p, "batch_stats": s}, x, train=True,
                           rngs={"dropout": key}, mutable=["batch_stats"])
  print(f"{args.regularizer}, {args.steps} steps: last loss {float(loss):.3f}"
        f", test accuracy in eval mode "
        f"{float((evaluated.argmax(-1) == y).mean()):.3f}, in training mode "
        f"{float((trained.argmax(-1) == y).mean()):.3f}")
  for path, value in jax.tree_util.tree_flatten_with_path(s)[0]:
    print(jax.tree_util.keystr(path), f"max |.| {float(jnp.abs(value).max()):.3f}")


if __name__ == "__main__":
  main()
