"""Applies every regularizer to a real image batch and prints what each did.

    python -m dropgraph_jax.tools.demo [--batch 256] [--rate 0.2] [--seed 0]

The batch is scikit-learn's ``load_digits`` (1,797 real 8x8 handwritten
digits, shipped inside the wheel, so this runs offline), as NHWC
``(N, 8, 8, 1)`` images for the image regularizers and as ``(N, T=8, C=8)``
row sequences for the sequence ones. For each transform the table shows the
fraction of units it zeroed or replaced (DropGraph and Disout write
distortions into the dropped blocks), the batch mean before and after
(rescaling methods keep it), and that ``train=False`` returns the input.
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits

import dropgraph_jax as dg
from dropgraph_jax.regularizers import dropgraph as dropgraph_lib


def digits_batch(n: int) -> jnp.ndarray:
  images = load_digits().images[:n].astype(np.float32) / 16.0
  return jnp.asarray(images)[..., None]  # (N, 8, 8, 1) in [0, 1]


def _dropgraph(x, *, key, rate, train):
  """DropGraph with freshly initialised graph weights (one input channel,
  so no channel reduction): the distortions its GCN writes into the
  dropped blocks, as at the start of training."""
  params = dropgraph_lib.init_params(jax.random.key(1), x.shape,
                                     reduction=1)
  return dg.dropgraph(x, params, key=key, rate=rate, train=train,
                      block_size=3, reduction=1)


def transforms():
  return {
      "dropout": (dg.dropout, "image"),
      "spatial_dropout": (dg.spatial_dropout, "image"),
      "drop_block (3x3)": (functools.partial(dg.drop_block, block_size=3),
                           "image"),
      "disout (3x3)": (functools.partial(dg.disout, block_size=3, alpha=5.0),
                       "image"),
      "dropgraph (3x3)": (_dropgraph, "image"),
      "drop_path": (dg.drop_path, "image"),
      "variational_dropout": (dg.variational_dropout, "rows"),
      "word_dropout": (dg.word_dropout, "rows"),
  }


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--rate", type=float, default=0.2)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)

  images = digits_batch(args.batch)
  key = jax.random.key(args.seed)
  print(f"load_digits batch: {images.shape} {images.dtype}, rate={args.rate}, "
        f"backend={jax.default_backend()}")
  header = (f"{'transform':22s} {'input':>15s} {'changed':>8s} "
            f"{'mean in':>8s} {'mean out':>9s} {'eval=id':>8s} {'ms':>7s}")
  print(header)
  print("-" * len(header))
  for name, (fn, kind) in transforms().items():
    x = images if kind == "image" else images[..., 0]
    run = jax.jit(lambda x, k, fn=fn: fn(x, key=k, rate=args.rate, train=True))
    y = jax.block_until_ready(run(x, key))
    start = time.perf_counter()
    jax.block_until_ready(run(x, key))
    ms = 1e3 * (time.perf_counter() - start)
    # Non-zero input units whose value is no longer a rescaled copy of the
    # input (the rescaling factor is the most common ratio y / x).
    nonzero = np.asarray(x) != 0
    ratio = np.asarray(y)[nonzero] / np.asarray(x)[nonzero]
    values, counts = np.unique(np.round(ratio, 5), return_counts=True)
    kept_ratio = values[np.argmax(counts)]
    changed = float(np.mean(~np.isclose(ratio, kept_ratio, rtol=1e-4)))
    identity = fn(x, key=key, rate=args.rate, train=False) is x
    print(f"{name:22s} {str(tuple(x.shape)):>15s} {changed:8.3f} "
          f"{float(x.mean()):8.4f} {float(jnp.mean(y)):9.4f} "
          f"{str(identity):>8s} {ms:7.2f}")
  print("\n'changed' counts non-zero input pixels that were dropped or "
        "distorted; kept units are rescaled by the method's factor.")


if __name__ == "__main__":
  main()
