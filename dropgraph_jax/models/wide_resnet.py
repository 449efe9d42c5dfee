"""Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016), AutoDropout's CIFAR net.

Pre-activation blocks (BN-ReLU-conv), ``(d - 4) / 6`` blocks per stage,
widths 16k, 32k, 64k. Sites of ``stage{s}/block{b}``: ``bn1`` and ``bn2``
(after each batch norm, AutoDropout's placement; a pattern with
``residual=True`` also applies to the shortcut) and ``shortcut``.

Disout's next convolution (its noise is scaled by that kernel's weights,
huawei-noah/Disout ``weight_behind``): ``bn1`` -> ``conv1`` (its output,
after the ReLU, also feeds the projection of a downsampling block; the
residual branch's ``conv1`` is used, as the reference reads the branch);
``bn2`` -> ``conv2``; ``shortcut`` -> the next block's ``conv1`` (the sum
goes through that block's ``norm1`` and ReLU into it). The last block's
shortcut has no next convolution (the final norm, pooling and classifier
follow): Disout there uses its reference constant 0.01.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

import dropgraph_jax as dg
from dropgraph_jax.models import building_blocks as bb
from dropgraph_jax.models.sites import (
  Site,
  apply_site,
  check_policy,
  conv_kernel,
  residual_pattern,
)
from dropgraph_jax.patterns.policy import Policy


class WideBlock(nn.Module):
  features: int
  strides: int
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32
  drop_path_rate: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None, next_kernel=None):
    """``next_kernel``: the next block's ``conv1`` kernel (Disout)."""
    site = functools.partial(apply_site, self.policy, "conv", train,
                             rate_factor)
    conv1, conv2 = conv_kernel(self, "conv1"), conv_kernel(self, "conv2")
    pre = nn.relu(site("bn1", bb.batch_norm(train, dtype=self.dtype,
                                            name="norm1")(x),
                       next_conv_kernel=conv1))
    y = bb.conv(self.features, 3, self.strides, dtype=self.dtype,
                name="conv1")(pre)
    y = nn.relu(site("bn2", bb.batch_norm(train, dtype=self.dtype,
                                          name="norm2")(y),
                     next_conv_kernel=conv2))
    y = bb.conv(self.features, 3, dtype=self.dtype, name="conv2")(y)
    shortcut = x
    if x.shape[-1] != self.features or self.strides != 1:
      shortcut = bb.conv(self.features, 1, self.strides, dtype=self.dtype,
                         name="proj_conv")(pre)
    shortcut = Site(self.policy, name="shortcut")(
        shortcut, train, rate_factor,
        spec_override=residual_pattern(self.policy, self.path,
                                       ("bn1", "bn2"), "shortcut"),
        next_conv_kernel=next_kernel)
    if train and self.drop_path_rate > 0:
      y = dg.drop_path(y, key=self.make_rng("dropout"),
                       rate=self.drop_path_rate, train=True)
    return y + shortcut


class WideResNet(nn.Module):
  """WRN-``depth``-``widen``; ``__call__(x, train, rate_factor=None)``."""
  depth: int = 28
  widen: int = 10
  num_classes: int = 10
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32
  # Stochastic depth (Huang et al. 2016): block i of L drops its residual
  # branch with rate stochastic_depth * (i + 1) / L (the linear rule).
  stochastic_depth: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None):
    name = type(self).__name__
    if (self.depth - 4) % 6 or self.depth < 10:
      raise ValueError(f"{name}: depth must be 6n + 4 (e.g. 16, 22, 28), got "
                       f"{self.depth}.")
    bb.check_image(name, x, 4)
    n = (self.depth - 4) // 6
    x = bb.conv(16, 3, dtype=self.dtype, name="stem_conv")(
        x.astype(self.dtype))
    names = [f"stage{s + 1}/block{b}" for s in range(3) for b in range(n)]
    for i, name in enumerate(names):
      s, b = divmod(i, n)
      strides = 2 if s > 0 and b == 0 else 1
      rate = self.stochastic_depth * (i + 1) / (3 * n)
      # Disout at the shortcut reads the next block's conv1 (none after
      # the last block: the 0.01 constant).
      following = (conv_kernel(self, names[i + 1], "conv1")
                   if i + 1 < len(names) else None)
      x = WideBlock(16 * 2**s * self.widen, strides, self.policy,
                    self.dtype, rate, name=name)(x, train, rate_factor,
                                                 following)
    x = nn.relu(bb.batch_norm(train, dtype=self.dtype, name="final_norm")(x))
    logits = bb.global_pool_logits(
        x, bb.classifier(self.num_classes, dtype=self.dtype))
    check_policy(self, self.policy)
    return logits
