"""Disout: feature map distortion (Tang et al., AAAI 2020) as a pure function.

Follows the reference PyTorch code (huawei-noah/Disout, ``Disout.forward``):

    M     = DropBlock keep mask (same gamma and block layout as drop_block)
    sigma = std(x) over the whole tensor, with no gradient
    w     = per-channel weight from the next conv (below), or 0.01
    D     = alpha * w * sigma * N(0, 1)          (one sample per unit)
    y     = (x * M + D * (1 - M)) / (sum(M) / count(M))

The per-channel weight, when the kernel of the convolution that follows is
given (Flax layout ``(kh, kw, C_in, C_out)`` with ``C_in == C``): the maximum
over output channels, multiplied by a random sign per kernel entry, averaged
over the spatial taps, times 0.1 for a 1x1 kernel. No gradient flows into
the kernel through this path (the reference reads ``weight.data``).

A choice the reference leaves open (its models have no grouped
convolutions): a depthwise kernel ``(kh, kw, 1, C)`` is read as
``(kh, kw, C, 1)``, since channel c of x is read by filter c only, so the
maximum over the output channels that read channel c is that filter.
(PyTorch's max over ``dim=0`` of a depthwise weight would give one scalar
for every channel instead.)
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from dropgraph_jax.regularizers import _validate as v
from dropgraph_jax.regularizers import block_mask, random_bits


def _kernel_scale(key: jax.Array, kernel: jax.Array, channels: int,
                  rng: str) -> jax.Array:
  """Per-channel distortion weight from the following conv's kernel, (C,)."""
  depthwise = (kernel.ndim == 4 and channels > 1 and kernel.shape[2] == 1
               and kernel.shape[3] == channels)
  if depthwise:
    kernel = jnp.swapaxes(kernel, 2, 3)
  if kernel.ndim != 4 or kernel.shape[2] != channels:
    raise ValueError(
        "disout: next_conv_kernel must be a Flax conv kernel (kh, kw, C_in, "
        f"C_out) with C_in = {channels} (the channels of x), or a depthwise "
        f"one (kh, kw, 1, {channels}), got shape {kernel.shape}.")
  kernel = jax.lax.stop_gradient(kernel).astype(jnp.float32)
  wmax = jnp.max(kernel, axis=3)  # (kh, kw, C_in)
  sign = jnp.where(random_bits.keep_mask(key, wmax.shape, 0.5, rng), 1.0,
                   -1.0)
  scale = jnp.mean(wmax * sign, axis=(0, 1))
  if kernel.shape[0] * kernel.shape[1] == 1:
    scale = 0.1 * scale
  return scale


def disout(x: jax.Array, *, key: Optional[jax.Array], rate, train: bool,
           block_size=6, alpha: float = 1.0,
           next_conv_kernel: Optional[jax.Array] = None,
           share_channels: bool = False, normalize: str = "batch",
           clip_block_size: bool = False, rng: str = "hash") -> jax.Array:
  """Replaces dropped blocks by scaled Gaussian distortion, then rescales.

  Args:
    x: ``(N, H, W, C)`` floating array.
    key: PRNG key; only read in training with a non-zero rate.
    rate: ``dist_prob``, the fraction of distorted units, in [0, 1); may be
      traced (the reference ramps it linearly, see :mod:`schedules`).
    train: static bool; ``False`` returns ``x``.
    block_size: int or ``(bh, bw)`` (reference default 6).
    alpha: distortion intensity (reference class default 1.0; its ResNet
      blocks use 30 together with ``next_conv_kernel``).
    next_conv_kernel: optional kernel of the convolution applied next
      (``(kh, kw, C, C_out)``, or depthwise ``(kh, kw, 1, C)``).
    share_channels, normalize, clip_block_size, rng: as in
      :func:`dropgraph_jax.drop_block` (the reference uses per-channel masks
      and ``normalize='batch'``).

  Returns:
    Array of the shape and dtype of ``x``.
  """
  active, bs = block_mask.check_block_args(
      "disout", x, key, rate, train, block_size, normalize, clip_block_size,
      rng, share_channels)
  alpha = v.check_number("disout", "alpha", alpha, 0)
  if not active:
    return x
  mask_key, noise_key, sign_key = jax.random.split(key, 3)
  mask = block_mask.sample_block_keep(mask_key, x.shape, rate, bs,
                                      share_channels, rng, like=x)
  sigma = jnp.sqrt(jnp.var(jax.lax.stop_gradient(x), dtype=jnp.float32))
  if next_conv_kernel is None:
    weight = jnp.float32(0.01)
  else:
    weight = _kernel_scale(sign_key, next_conv_kernel, x.shape[3], rng)
  noise_scale = (alpha * weight * sigma).astype(x.dtype)
  noise = random_bits.normal(noise_key, x.shape, x.dtype, rng,
                             like=x) * noise_scale
  scale = block_mask.kept_fraction_scale(mask, normalize,
                                         x.shape).astype(x.dtype)
  return jnp.where(mask.keep, x, noise) * scale
