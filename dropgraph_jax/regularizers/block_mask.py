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
slices along H, then over ``bw`` along W. Per-channel masks are dilated as
packed bits (32, 16 or 8 channels to a uint32 word), so the dilation and the
kept count read a few MB even for large activations.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dropgraph_jax.regularizers import _validate as v
from dropgraph_jax.regularizers import random_bits

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


class KeepMask(NamedTuple):
  """A sampled block keep mask.

  Attributes:
    keep: bool ``(N, H, W, Cm)``, ``True`` where the unit is kept
      (``Cm = C``, or 1 with ``share_channels``).
    words: ``None``, or the same mask packed ``word_bits`` channels to a
      uint32 word, ``(N, H, W, Cm // word_bits)``; ``keep`` is then the
      elementwise unpacking of ``words`` (fused by XLA into whatever reads
      it) and kept counts are popcounts of the words.

  ``word_bits`` (derived): channels per word (8, 16 or 32), 0 without
  ``words``.
  """
  keep: jax.Array
  words: Optional[jax.Array] = None

  @property
  def word_bits(self) -> int:
    return 0 if self.words is None else (self.keep.shape[-1] //
                                         self.words.shape[-1])


def _word_bits(channels: int, like: Optional[jax.Array]) -> int:
  """Channels per packed word for a per-channel mask, 0 for no packing.

  No packing when the channel count is not a multiple of 8, or when
  ``like`` is sharded over its channel axis (the words axis could not carry
  that sharding).
  """
  sharding = (random_bits.sharding_like(like, like.shape)
              if like is not None else None)
  if sharding is not None and sharding.spec[-1] is not None:
    return 0
  for bits in (32, 16, 8):
    if channels % bits == 0:
      return bits
  return 0


def sample_block_keep(key: jax.Array, shape: Tuple[int, int, int, int], rate,
                      block_size: Tuple[int, int],
                      share_channels: bool = False, rng: str = "hash",
                      like: Optional[jax.Array] = None) -> KeepMask:
  """Samples DropBlock's keep mask.

  Per-channel masks with a channel count divisible by 8 are drawn, dilated
  and counted as packed bits (:func:`random_bits.packed_keep_mask`): the
  seeds, the mask and its count never exist as one byte per unit, and the
  unpacking fuses into the consumer. The draws are the same as unpacked,
  bit for bit (``tests/test_block_regularizers.py``).

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
    :class:`KeepMask`.
  """
  n, h, w, c = shape
  bh, bw = block_size
  mask_c = 1 if share_channels else c
  gamma = seed_rate(rate, h, w, bh, bw)
  seed_shape = (n, h - bh + 1, w - bw + 1, mask_c)
  word_bits = _word_bits(mask_c, like) if mask_c > 1 else 0
  if word_bits:
    full = jnp.uint32(2**word_bits - 1)
    seeds = ~random_bits.packed_keep_mask(key, seed_shape, gamma, word_bits,
                                          rng, like=like) & full
  else:
    seeds = ~random_bits.keep_mask(key, seed_shape, gamma, rng, like=like)
  dropped = _or_dilate(_or_dilate(seeds, 1, bh, h), 2, bw, w)
  if not word_bits:
    return KeepMask(~dropped)
  words = ~dropped & full
  return KeepMask(random_bits.unpack_words(words, word_bits), words)


def sample_keep_mask(key: jax.Array, shape: Tuple[int, int, int, int], rate,
                     block_size: Tuple[int, int], share_channels: bool = False,
                     rng: str = "hash", like: Optional[jax.Array] = None
                     ) -> jax.Array:
  """The bool keep mask of :func:`sample_block_keep` (same arguments)."""
  return sample_block_keep(key, shape, rate, block_size, share_channels, rng,
                           like).keep


def kept_fraction_scale(keep, normalize: str,
                        like_shape: Optional[Sequence[int]] = None
                        ) -> jax.Array:
  """``count / kept`` in float32, over the batch or per example.

  Args:
    keep: bool mask, or a :class:`KeepMask` (counted by popcount).
    normalize: ``'batch'`` or ``'example'``.
    like_shape: the shape the mask is broadcast to (default its own); the
      mask is counted at its own size and the count multiplied by the
      broadcast factor, never broadcast.

  Returns:
    A scalar for ``normalize='batch'``; for ``'example'`` an array of
    ``len(like_shape)`` dims, ``(N or 1, 1, ..., 1)``. A mask with nothing
    kept gives scale ``count`` rather than a division by zero (the output
    is zero there anyway).
  """
  mask = keep if isinstance(keep, KeepMask) else KeepMask(keep)
  shape = tuple(mask.keep.shape if like_shape is None else like_shape)
  mask_shape = (1,) * (len(shape) - mask.keep.ndim) + tuple(mask.keep.shape)
  if mask.words is not None:
    units = lax.population_count(mask.words)
  else:
    units = mask.keep.reshape(mask_shape)
  # int32 counts are exact; a float32 sum is not above 2**24 units.
  dtype = jnp.int32 if mask.keep.size < 2**31 else jnp.float32
  if normalize == "batch":
    kept = jnp.sum(units, dtype=dtype).astype(jnp.float32)
    count = np.prod(shape, dtype=np.int64)
    factor = count / np.prod(mask_shape, dtype=np.int64)
  else:
    axes = tuple(range(1, units.ndim))
    kept = jnp.sum(units, axis=axes, dtype=dtype).astype(jnp.float32)
    kept = kept.reshape((-1,) + (1,) * (len(shape) - 1))
    count = np.prod(shape[1:], dtype=np.int64)
    factor = count / np.prod(mask_shape[1:], dtype=np.int64)
  if factor != 1:
    kept = kept * np.float32(factor)
  return np.float32(count) / jnp.maximum(kept, 1.0)


def apply_rescaled(x: jax.Array, keep, normalize: str) -> jax.Array:
  """``x * keep * count / sum(keep)`` (Eq. 1 of AutoDropout, DropBlock's
  normalisation); ``keep`` (bool array or :class:`KeepMask`) broadcasts
  against ``x``; dtype of ``x``."""
  scale = kept_fraction_scale(keep, normalize, x.shape).astype(x.dtype)
  mask = keep.keep if isinstance(keep, KeepMask) else keep
  return jnp.where(mask, x * scale, jnp.zeros((), x.dtype))


def check_block_args(fn: str, x: jax.Array, key, rate, train, block_size,
                     normalize: Optional[str], clip_block_size: bool, rng: str,
                     share_channels: bool = False
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
  v.check_flag(fn, "clip_block_size", clip_block_size)
  v.check_flag(fn, "share_channels", share_channels)
  _, h, w, _ = x.shape
  bs = resolve_block_size(fn, block_size, h, w, clip_block_size)
  active = train and static_rate != 0.0
  if active:
    v.check_key(fn, key)
  return active, bs
