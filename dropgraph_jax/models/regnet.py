"""RegNetX (Radosavovic et al. 2020) with named regularization sites.

``RegNetX-200MF``: stem 32, depths (1, 1, 4, 7), widths (24, 56, 152, 368),
group width 8, bottleneck ratio 1 (2.7M parameters at 1000 classes).
``regnetx_200mf_cifar`` is the pytorch-cifar variant the DropGraph paper
trained on CIFAR: a 64-channel stride-1 stem and stage strides (1, 1, 2, 2),
so the last stage is 8x8 at 32x32 input. The X
block is conv1x1-BN-ReLU, grouped conv3x3 (stride)-BN-ReLU, conv1x1-BN, plus
the (projected) shortcut, then ReLU. Sites of ``stage{s}/block{b}``:
``bn1, relu1, bn2, relu2, bn3, relu3, shortcut``. The DropGraph paper uses
the last 3 blocks of the last stage (:func:`paper_policy` with
``blocks=(4, 5, 6)`` and ``stages=(4,)``); inside a block the regularizer
goes where DropBlock's and Disout's ResNet references put it
(:mod:`placement`). Disout's next convolutions as in ResNet: ``conv2``,
``conv3``, then the next block's ``conv1`` (0.01 after the last block).
"""

from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from dropgraph_jax.models import building_blocks as bb
from dropgraph_jax.models.placement import placement_policy
from dropgraph_jax.models.sites import apply_site, check_policy, conv_kernel
from dropgraph_jax.patterns.policy import Policy, RegularizerSpec

REGNETX_200MF = dict(stem=32, depths=(1, 1, 4, 7), widths=(24, 56, 152, 368),
                     group_width=8)


class XBlock(nn.Module):
  features: int
  strides: int
  group_width: int
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None, next_kernel=None):
    """``next_kernel``: the next block's ``conv1`` kernel (Disout)."""
    site = functools.partial(apply_site, self.policy, "conv", train,
                             rate_factor)
    conv2, conv3 = conv_kernel(self, "conv2"), conv_kernel(self, "conv3")
    w = self.features
    y = bb.conv(w, 1, dtype=self.dtype, name="conv1")(x)
    y = site("relu1", nn.relu(site("bn1", bb.batch_norm(
        train, dtype=self.dtype, name="norm1")(y), next_conv_kernel=conv2)),
             next_conv_kernel=conv2)
    y = bb.conv(w, 3, self.strides, dtype=self.dtype, name="conv2",
                groups=w // self.group_width)(y)
    y = site("relu2", nn.relu(site("bn2", bb.batch_norm(
        train, dtype=self.dtype, name="norm2")(y), next_conv_kernel=conv3)),
             next_conv_kernel=conv3)
    y = bb.conv(w, 1, dtype=self.dtype, name="conv3")(y)
    y = site("bn3", bb.batch_norm(train, dtype=self.dtype, name="norm3",
                                  zero_init=True)(y),
             next_conv_kernel=next_kernel)
    shortcut = site("shortcut", bb.projected_shortcut(
        x, w, self.strides, train, dtype=self.dtype),
        next_conv_kernel=next_kernel)
    return site("relu3", nn.relu(y + shortcut), next_conv_kernel=next_kernel)


class RegNetX(nn.Module):
  """RegNetX; ``__call__(x, train, rate_factor=None)`` -> float32 logits."""
  stem: int = 32
  depths: Sequence[int] = REGNETX_200MF["depths"]
  widths: Sequence[int] = REGNETX_200MF["widths"]
  group_width: int = 8
  num_classes: int = 1000
  stem_stride: int = 2
  strides: Sequence[int] = (2, 2, 2, 2)
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None):
    downsample = self.stem_stride
    for s in self.strides:
      downsample *= s
    bb.check_image(type(self).__name__, x, downsample)
    x = bb.conv(self.stem, 3, self.stem_stride, dtype=self.dtype,
                name="stem_conv")(x.astype(self.dtype))
    x = nn.relu(bb.batch_norm(train, dtype=self.dtype, name="stem_norm")(x))
    blocks = [(s, b, width) for s, (depth, width) in
              enumerate(zip(self.depths, self.widths)) for b in range(depth)]
    names = [f"stage{s + 1}/block{b}" for s, b, _ in blocks]
    for i, (s, b, width) in enumerate(blocks):
      # Disout at a block's last sites reads the next block's conv1.
      following = (conv_kernel(self, names[i + 1], "conv1")
                   if i + 1 < len(names) else None)
      x = XBlock(width, self.strides[s] if b == 0 else 1, self.group_width,
                 self.policy, self.dtype, name=names[i])(
                     x, train, rate_factor, following)
    logits = bb.global_pool_logits(
        x, bb.classifier(self.num_classes, dtype=self.dtype))
    check_policy(self, self.policy)
    return logits


def paper_policy(sites: Sequence[str], spec: RegularizerSpec,
                 stage: int = 4, blocks: Sequence[int] = (4, 5, 6),
                 placement: str = "reference", labels: str = "") -> Policy:
  """``spec`` in the given blocks of ``stage``, at the sites ``placement``
  picks (:mod:`placement`; an X block is a bottleneck: ``relu1, relu2,
  bn3`` and the shortcut by default)."""
  return placement_policy(sites, spec,
                          [f"stage{stage}/block{b}" for b in blocks],
                          placement, labels)
