"""ResNet (He et al. 2016) with named regularization sites.

Variants: CIFAR ResNet-18/50 (3x3 stride-1 stem, no max-pool, as the
pytorch-cifar code the DropGraph paper used) and ImageNet ResNet-50 v1.5
(7x7 stride-2 stem and max-pool; the stride sits on the 3x3 conv).

Sites of a block ``stage{s}/block{b}`` (names are module paths):
``bn1, relu1, bn2, relu2[, bn3, relu3], shortcut``: after every batch norm
(AutoDropout's placement), after every activation including the one after
the residual addition, and on the shortcut. :func:`paper_policy` builds the
papers' placement in the last two stages: by default the one of DropBlock's
reference (TPU ResNet) and Disout's (huawei-noah/Disout
``models/resnet_imagenet.py``): ``relu1, relu2, bn3`` and the shortcut of a
bottleneck (``relu1, bn2``, shortcut of a basic block), i.e. inside the
residual branch and before the addition (:mod:`placement`).

Disout's next convolution (its noise is scaled by that kernel's weights):
``bn1``/``relu1`` -> ``conv2``; ``bn2``/``relu2`` -> ``conv3`` (bottleneck);
the branch's last sites, the shortcut and the post-addition relu -> the
next block's ``conv1``, as the reference's ``convloc`` table maps them. The
network's last block has no next convolution: Disout then uses its
reference constant 0.01, as the reference does for its last two Disouts.
"""

from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from dropgraph_jax.models import building_blocks as bb
from dropgraph_jax.models.placement import placement_policy, stage_blocks
from dropgraph_jax.models.sites import (
  Site,
  apply_site,
  check_policy,
  conv_kernel,
  residual_pattern,
)
from dropgraph_jax.patterns.policy import Policy, RegularizerSpec
from dropgraph_jax.regularizers.dropout import drop_path


def _stochastic_depth(block, y, train: bool):
  """The residual branch ``y`` dropped per example with the block's
  ``drop_path_rate`` (Huang et al. 2016), in training only."""
  if not train or block.drop_path_rate <= 0:
    return y
  return drop_path(y, key=block.make_rng("dropout"),
                   rate=block.drop_path_rate, train=True)


class BasicBlock(nn.Module):
  features: int
  strides: int = 1
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32
  dilation: int = 1  # of the 3x3 conv (dilated trunks for segmentation)
  drop_path_rate: float = 0.0  # stochastic depth of the residual branch

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None, next_kernel=None):
    """``next_kernel``: the next block's ``conv1`` kernel (Disout)."""
    site = functools.partial(apply_site, self.policy, "conv", train,
                             rate_factor)
    conv2 = conv_kernel(self, "conv2")
    y = bb.conv(self.features, 3, self.strides, dtype=self.dtype,
                name="conv1", dilation=self.dilation)(x)
    y = site("bn1", bb.batch_norm(train, dtype=self.dtype, name="norm1")(y),
             next_conv_kernel=conv2)
    y = site("relu1", nn.relu(y), next_conv_kernel=conv2)
    y = bb.conv(self.features, 3, dtype=self.dtype, name="conv2",
                dilation=self.dilation)(y)
    y = site("bn2", bb.batch_norm(train, dtype=self.dtype, name="norm2",
                                  zero_init=True)(y),
             next_conv_kernel=next_kernel)
    shortcut = bb.projected_shortcut(x, self.features, self.strides, train,
                                     dtype=self.dtype)
    shortcut = Site(self.policy, name="shortcut")(
        shortcut, train, rate_factor,
        spec_override=residual_pattern(self.policy, self.path, ("bn1", "bn2"),
                                       "shortcut"),
        next_conv_kernel=next_kernel)
    y = _stochastic_depth(self, y, train)
    return site("relu2", nn.relu(y + shortcut), next_conv_kernel=next_kernel)


class Bottleneck(BasicBlock):
  expansion: int = 4

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None, next_kernel=None):
    """``next_kernel``: the next block's ``conv1`` kernel (Disout)."""
    site = functools.partial(apply_site, self.policy, "conv", train,
                             rate_factor)
    conv2, conv3 = conv_kernel(self, "conv2"), conv_kernel(self, "conv3")
    out = self.features * self.expansion
    y = bb.conv(self.features, 1, dtype=self.dtype, name="conv1")(x)
    y = site("bn1", bb.batch_norm(train, dtype=self.dtype, name="norm1")(y),
             next_conv_kernel=conv2)
    y = site("relu1", nn.relu(y), next_conv_kernel=conv2)
    y = bb.conv(self.features, 3, self.strides, dtype=self.dtype,
                name="conv2", dilation=self.dilation)(y)
    y = site("bn2", bb.batch_norm(train, dtype=self.dtype, name="norm2")(y),
             next_conv_kernel=conv3)
    y = site("relu2", nn.relu(y), next_conv_kernel=conv3)
    y = bb.conv(out, 1, dtype=self.dtype, name="conv3")(y)
    y = site("bn3", bb.batch_norm(train, dtype=self.dtype, name="norm3",
                                  zero_init=True)(y),
             next_conv_kernel=next_kernel)
    shortcut = bb.projected_shortcut(x, out, self.strides, train,
                                     dtype=self.dtype)
    shortcut = Site(self.policy, name="shortcut")(
        shortcut, train, rate_factor,
        spec_override=residual_pattern(self.policy, self.path,
                                       ("bn1", "bn2", "bn3"), "shortcut"),
        next_conv_kernel=next_kernel)
    y = _stochastic_depth(self, y, train)
    return site("relu3", nn.relu(y + shortcut), next_conv_kernel=next_kernel)


class ResNet(nn.Module):
  """ResNet; ``__call__(x, train, rate_factor=None)`` -> float32 logits."""
  stage_sizes: Sequence[int]
  block: str = "bottleneck"
  num_classes: int = 1000
  width: int = 64
  stem: str = "imagenet"  # or 'cifar'
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  # Segmentation trunks replace the stride of the last stages by dilation
  # (DeepLabV3's output stride 8 or 16); 0 keeps every stride.
  output_stride: int = 0
  # Stochastic depth: block i of L drops its residual branch with rate
  # stochastic_depth * (i + 1) / L (the linear rule); 0 disables it.
  stochastic_depth: float = 0.0

  def trunk(self, x, train: bool, rate_factor=None):
    """The stem and every block, in this module's scope (the sites keep
    their ``stageS/blockB/...`` names in the models built on it): the last
    feature map."""
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
    names = [f"stage{s + 1}/block{b}"
             for s, size in enumerate(self.stage_sizes) for b in range(size)]
    reduction = 4 if self.stem == "imagenet" else 1
    dilation = 1
    for i, name in enumerate(names):
      s = int(name[len("stage")]) - 1
      strides = 2 if s > 0 and name.endswith("/block0") else 1
      if strides == 2 and self.output_stride and \
          reduction * 2 > self.output_stride:
        strides, dilation = 1, dilation * 2  # dilate instead of striding
      reduction *= strides
      # Disout at a block's last sites reads the next block's conv1 (the
      # last block has none: Disout then uses its 0.01 constant).
      following = (conv_kernel(self, names[i + 1], "conv1")
                   if i + 1 < len(names) else None)
      x = block_cls(self.width * 2**s, strides, self.policy, self.dtype,
                    dilation, self.stochastic_depth * (i + 1) / len(names),
                    name=name)(x, train, rate_factor, following)
    return x

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None):
    x = self.trunk(x, train, rate_factor)
    logits = bb.global_pool_logits(
        x, bb.classifier(self.num_classes, dtype=self.dtype))
    check_policy(self, self.policy)
    return logits


def paper_policy(sites: Sequence[str], spec: RegularizerSpec,
                 stages: Sequence[int] = (3, 4), placement: str = "reference",
                 labels: str = "",
                 stage_scales: Sequence[float] = ()) -> Policy:
  """``spec`` in every block of the given stages (the DropGraph, DropBlock
  and Disout setting on ResNet: the last two groups).

  ``placement``: :data:`~dropgraph_jax.models.placement.PLACEMENTS`
  (``labels`` overrides it with a regex).
  ``stage_scales``: a factor on the rate per stage (DropBlock's and Disout's
  references use a quarter of the rate in group 3: ``(0.25, 1.0)``).
  """
  scales = tuple(stage_scales) or (1.0,) * len(stages)
  if len(scales) != len(stages):
    raise ValueError(f"stage_scales {scales} must give one factor per stage "
                     f"of {tuple(stages)}.")
  out = {}
  for stage, scale in zip(stages, scales):
    scaled = RegularizerSpec(spec.kind, {**spec.options,
                                         "rate": spec.options["rate"] * scale})
    out.update(placement_policy(sites, scaled, stage_blocks(sites, (stage,)),
                                placement, labels).sites)
  return Policy(out)
