"""DropBlock (Ghiasi, Lin & Le, NeurIPS 2018) as a pure function."""

from __future__ import annotations

from typing import Optional

import jax

from dropgraph_jax.regularizers import block_mask


def drop_block(x: jax.Array, *, key: Optional[jax.Array], rate, train: bool,
               block_size=7, share_channels: bool = False,
               normalize: str = "batch", clip_block_size: bool = False,
               rng: str = "hash") -> jax.Array:
  """Drops contiguous ``block_size`` regions of an NHWC feature map.

  Algorithm 1 of the DropBlock paper, following the TensorFlow TPU ResNet
  reference ``dropblock``:

    M = block keep mask with seed rate gamma (see :mod:`block_mask`)
    y = x * M * count(M) / sum(M)

  Args:
    x: ``(N, H, W, C)`` floating array.
    key: PRNG key; only read in training with a non-zero rate.
    rate: target fraction of dropped units, ``1 - keep_prob``, in [0, 1);
      may be a traced scalar (a schedule) without recompiling.
    train: static bool; ``False`` returns ``x`` with no added operation.
    block_size: int or ``(bh, bw)``; even sizes and rectangles are fine.
      A block larger than the map is an error unless ``clip_block_size``.
    share_channels: one mask shared by all channels (``True``) or an
      independent mask per channel (``False``, default: the DropBlock paper
      found per-channel masks work better, and the TF reference does this).
    normalize: ``'batch'`` (default, as the TF reference: one scale
      ``count / sum`` over the whole batch) or ``'example'`` (a scale per
      example, so each example's mean is preserved on its own).
    clip_block_size: clip the block to the map instead of raising.
    rng: ``'hash'`` (default, fused) or ``'jax'``.

  Returns:
    Array of the shape and dtype of ``x``.
  """
  active, bs = block_mask.check_block_args(
      "drop_block", x, key, rate, train, block_size, normalize,
      clip_block_size, rng, share_channels)
  if not active:
    return x
  keep = block_mask.sample_block_keep(key, x.shape, rate, bs, share_channels,
                                      rng, like=x)
  return block_mask.apply_rescaled(x, keep, normalize)
