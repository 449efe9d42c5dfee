"""Block masks of DropBlock (Ghiasi et al. 2018), shared by DropBlock, Disout
and DropGraph.

For a feature map of height H and width W and a block of ``(bh, bw)``, block
*seeds* are drawn i.i.d. Bernoulli(gamma) on the valid region: the
``(H - bh + 1) x (W - bw + 1)`` top-left corners whose block lies entirely
inside the map. Each seed drops the ``bh x bw`` block below and to the right
of it. gamma follows Eq. 1 of the DropBlock paper, generalised to
rectangular blocks and maps:

    gamma = rate * H * W / (bh * bw * (H - bh + 1) * (W - bw + 1))

so that the expected number of dropped cells, ignoring block overlap, is
``rate * H * W``; overlaps make the realised fraction slightly smaller (the
tests compare it with the exact expectation). For odd block sizes this is
the TensorFlow TPU ResNet ``dropblock`` (whose valid *centres* are the
corners shifted by ``b // 2``); indexing blocks by their corner is what lets
even sizes and non-square maps work without the off-by-one crops other
implementations need.

The dilation from seeds to blocks is separable: an OR over ``bh`` shifted
slices along H, then over ``bw`` along W. XLA fuses it with the seed hashing
into one loop per axis.
"""

from __future__ import annotations

from typing import Optional, Tuple

import jax
import jax.numpy as jnp
from jax import lax

from dropgraph_jax import _validate as v
from dropgraph_jax import random_bits

NORMALIZE_MODES = ("batch", "example")


def resolve_block_size(fn: str, block_size, height: int, width: int,
                       clip: bool) -> Tuple[int, int]:
  """Validates ``block_size`` against the map; clips only when asked."""
  bh, bw = v.pair(fn, "block_size", block_size)
  if clip:
    return min(bh, height), min(bw, width)
  if bh > height or bw > width:
    raise ValueError(
        f"{fn}: block_size {block_size!r} is larger than the feature map "
        f"(H, W) = ({height}, {width}); pass a smaller block_size or "
        "clip_block_size=True.")
  return bh, bw


def seed_rate(rate, height: int, width: int, bh: int, bw: int):
  """DropBlock's gamma for a rectangular block on a rectangular map."""
  valid = (height - bh + 1) * (width - bw + 1)
  return rate * (height * width) / (bh * bw * valid)


def _or_dilate(seeds: jax.Array, axis: int, size: int, out_len: int
               ) -> jax.Array:
  """out[y] = OR(seeds[y - size + 1 .. y]) along ``axis`` (zero padded)."""
  if size == 1:
    return seeds
  pad = [(0, 0)] * seeds.ndim
  pad[axis] = (size - 1, size - 1)
  padded = jnp.pad(seeds, pad)
  out = lax.slice_in_dim(padded, 0, out_len, axis=axis)
  for k in range(1, size):
    out = out | lax.slice_in_dim(padded, k, k + out_len, axis=axis)
  return out


def sample_keep_mask(key: jax.Array, shape: Tuple[int, int, int, int], rate,
                     block_size: Tuple[int, int], share_channels: bool = False,
                     rng: str = "hash", like: Optional[jax.Array] = None
                     ) -> jax.Array:
  """Samples DropBlock's keep mask.

  Args:
    key: PRNG key.
    shape: NHWC shape ``(N, H, W, C)`` of the activation.
    rate: target fraction of dropped units (may be traced).
    block_size: validated ``(bh, bw)`` with ``bh <= H`` and ``bw <= W``.
    share_channels: one spatial mask for all channels (shape ``(N,H,W,1)``)
      instead of an independent mask per channel (``(N,H,W,C)``, the
      DropBlock paper's better-performing choice).
    rng: ``'hash'`` or ``'jax'``.
    like: the activation to be masked (its explicit sharding is followed).

  Returns:
    bool keep mask, ``True`` where the unit is kept.
  """
  n, h, w, c = shape
  bh, bw = block_size
  mask_c = 1 if share_channels else c
  gamma = seed_rate(rate, h, w, bh, bw)
  seed_shape = (n, h - bh + 1, w - bw + 1, mask_c)
  seeds = ~random_bits.keep_mask(key, seed_shape, gamma, rng, like=like)
  dropped = _or_dilate(_or_dilate(seeds, 1, bh, h), 2, bw, w)
  return ~dropped


def kept_fraction_scale(keep: jax.Array, normalize: str) -> jax.Array:
  """``count / sum(keep)`` in float32, over the batch or per example.

  Returns a scalar for ``normalize='batch'`` and an ``(N, 1, 1, 1)`` array for
  ``'example'``. A mask with nothing kept gives scale ``count`` rather than a
  division by zero (the output is zero there anyway).
  """
  if normalize == "batch":
    axes = None
    count = keep.size
  else:
    axes = tuple(range(1, keep.ndim))
    count = keep.size // keep.shape[0]
  kept = jnp.sum(keep, axis=axes, dtype=jnp.float32, keepdims=axes is not None)
  return count / jnp.maximum(kept, 1.0)


def apply_rescaled(x: jax.Array, keep: jax.Array, normalize: str
                   ) -> jax.Array:
  """``x * keep * count / sum(keep)`` (Eq. 1 of AutoDropout, DropBlock's
  normalisation); ``keep`` broadcasts against ``x``; dtype of ``x``."""
  scale = kept_fraction_scale(jnp.broadcast_to(keep, x.shape),
                              normalize).astype(x.dtype)
  return jnp.where(keep, x * scale, jnp.zeros((), x.dtype))


def check_block_args(fn: str, x: jax.Array, key, rate, train, block_size,
                     normalize: Optional[str], clip_block_size: bool, rng: str
                     ) -> Tuple[bool, Tuple[int, int]]:
  """Validation shared by the block-masked regularizers (NHWC input).

  Returns ``(active, (bh, bw))``; ``active`` is False when the call must
  return ``x`` unchanged (eval mode or a static zero rate).
  """
  train = v.check_train(fn, train)
  v.check_floating(fn, x)
  v.check_rank(fn, x, (4,), "NHWC")
  static_rate = v.check_rate(fn, rate)
  if normalize is not None:
    v.check_choice(fn, "normalize", normalize, NORMALIZE_MODES)
  v.check_choice(fn, "rng", rng, random_bits.RNG_IMPLS)
  _, h, w, _ = x.shape
  bs = resolve_block_size(fn, block_size, h, w, clip_block_size)
  active = train and static_rate != 0.0
  if active:
    v.check_key(fn, key)
  return active, bs
