"""ResNet (He et al. 2016) with named regularization sites.

Variants: CIFAR ResNet-18/50 (3x3 stride-1 stem, no max-pool, as the
pytorch-cifar code the DropGraph paper used) and ImageNet ResNet-50 v1.5
(7x7 stride-2 stem and max-pool; the stride sits on the 3x3 conv).

Sites of a block ``stage{s}/block{b}`` (names are module paths):
``bn1, relu1, bn2, relu2[, bn3, relu3], shortcut``: after every batch norm
(AutoDropout's placement), after every activation including the one after
the residual addition (DropGraph appendix Fig. 5, Disout), and on the
shortcut. :func:`paper_policy` builds the papers' default placement: every
activation and shortcut site of every block of the last two stages.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from dropgraph_jax.models import building_blocks as bb
from dropgraph_jax.models.sites import (
  Site,
  apply_site,
  check_policy,
  residual_pattern,
)
from dropgraph_jax.patterns.policy import Policy, RegularizerSpec


class BasicBlock(nn.Module):
  features: int
  strides: int = 1
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None):
    site = functools.partial(apply_site, self.policy, "conv", train,
                             rate_factor)
    y = bb.conv(self.features, 3, self.strides, dtype=self.dtype,
                name="conv1")(x)
    y = site("bn1", bb.batch_norm(train, dtype=self.dtype, name="norm1")(y))
    y = site("relu1", nn.relu(y))
    y = bb.conv(self.features, 3, dtype=self.dtype, name="conv2")(y)
    y = site("bn2", bb.batch_norm(train, dtype=self.dtype, name="norm2",
                                  zero_init=True)(y))
    shortcut = bb.projected_shortcut(x, self.features, self.strides, train,
                                     dtype=self.dtype)
    shortcut = Site(self.policy, name="shortcut")(
        shortcut, train, rate_factor,
        spec_override=residual_pattern(self.policy, self.path, ("bn1", "bn2"),
                                       "shortcut"))
    return site("relu2", nn.relu(y + shortcut))


class Bottleneck(BasicBlock):
  expansion: int = 4

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None):
    site = functools.partial(apply_site, self.policy, "conv", train,
                             rate_factor)
    out = self.features * self.expansion
    y = bb.conv(self.features, 1, dtype=self.dtype, name="conv1")(x)
    y = site("bn1", bb.batch_norm(train, dtype=self.dtype, name="norm1")(y))
    y = site("relu1", nn.relu(y))
    y = bb.conv(self.features, 3, self.strides, dtype=self.dtype,
                name="conv2")(y)
    y = site("bn2", bb.batch_norm(train, dtype=self.dtype, name="norm2")(y))
    y = site("relu2", nn.relu(y))
    y = bb.conv(out, 1, dtype=self.dtype, name="conv3")(y)
    y = site("bn3", bb.batch_norm(train, dtype=self.dtype, name="norm3",
                                  zero_init=True)(y))
    shortcut = bb.projected_shortcut(x, out, self.strides, train,
                                     dtype=self.dtype)
    shortcut = Site(self.policy, name="shortcut")(
        shortcut, train, rate_factor,
        spec_override=residual_pattern(self.policy, self.path,
                                       ("bn1", "bn2", "bn3"), "shortcut"))
    return site("relu3", nn.relu(y + shortcut))


class ResNet(nn.Module):
  """ResNet; ``__call__(x, train, rate_factor=None)`` -> float32 logits."""
  stage_sizes: Sequence[int]
  block: str = "bottleneck"
  num_classes: int = 1000
  width: int = 64
  stem: str = "imagenet"  # or 'cifar'
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None):
    name = type(self).__name__
    if self.stem not in ("imagenet", "cifar"):
      raise ValueError(f"{name}: stem must be 'imagenet' or 'cifar', got "
                       f"{self.stem!r}.")
    downsample = 2 ** (len(self.stage_sizes) - 1)
    if self.stem == "imagenet":
      downsample *= 4
    bb.check_image(name, x, downsample)
    x = x.astype(self.dtype)
    if self.stem == "imagenet":
      x = bb.conv(self.width, 7, 2, dtype=self.dtype, name="stem_conv")(x)
      x = nn.relu(bb.batch_norm(train, dtype=self.dtype, name="stem_norm")(x))
      x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    else:
      x = bb.conv(self.width, 3, 1, dtype=self.dtype, name="stem_conv")(x)
      x = nn.relu(bb.batch_norm(train, dtype=self.dtype, name="stem_norm")(x))
    block_cls = Bottleneck if self.block == "bottleneck" else BasicBlock
    for s, size in enumerate(self.stage_sizes):
      for b in range(size):
        strides = 2 if s > 0 and b == 0 else 1
        x = block_cls(self.width * 2**s, strides, self.policy, self.dtype,
                      name=f"stage{s + 1}/block{b}")(x, train, rate_factor)
    logits = bb.global_pool_logits(
        x, bb.classifier(self.num_classes, dtype=self.dtype))
    check_policy(self, self.policy)
    return logits


def paper_policy(sites: Sequence[str], spec: RegularizerSpec,
                 stages: Sequence[int] = (3, 4),
                 labels: str = r"relu\d|shortcut") -> Policy:
  """``spec`` at every activation and shortcut of the given stages.

  The DropGraph / Disout placement on ResNet-50: all blocks of the last two
  groups (stages 3 and 4), after each activation and on the shortcut.
  """
  pattern = re.compile(rf"^stage({'|'.join(map(str, stages))})/block\d+/"
                       rf"({labels})$")
  return Policy({site: spec for site in sites if pattern.match(site)})
