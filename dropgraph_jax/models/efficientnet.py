"""EfficientNet-B0..B7 (Tan & Le 2019) with named regularization sites.

The standard compound scaling: (width, depth, resolution, dropout) =
B0 (1.0, 1.0, 224, 0.2), B1 (1.0, 1.1, 240, 0.2), B2 (1.1, 1.2, 260, 0.3),
B3 (1.2, 1.4, 300, 0.3), B4 (1.4, 1.8, 380, 0.4), B5 (1.6, 2.2, 456, 0.4),
B6 (1.8, 2.6, 528, 0.5), B7 (2.0, 3.1, 600, 0.5); channels rounded to
multiples of 8, repeats rounded up. MBConv blocks with squeeze-excitation
(ratio 0.25 of the block input) and swish, batch norm (momentum 0.99,
epsilon 1e-3). Stochastic depth, the family's default regularizer, drops
the residual branch with a rate that grows linearly with the block index
up to ``stochastic_depth`` (0.2).

Sites of ``block{i}`` (AutoDropout's placement, after every batch norm):
``bn_expand`` (absent when the expansion ratio is 1), ``bn_dw``,
``bn_project``, and ``residual`` (the identity path, before the addition,
as ResNet's ``shortcut``; a pattern with ``residual=True`` at any bn site of
the block also applies there).

Disout's next convolution (its noise is scaled by that kernel's weights,
huawei-noah/Disout ``weight_behind``): ``bn_expand`` -> ``dw_conv`` (a
depthwise kernel: channel c is read by its own filter only, so its weight
is that filter's, see :func:`~dropgraph_jax.regularizers.disout.disout`);
``bn_dw`` -> ``project_conv`` (the squeeze-excitation gate sits between);
``bn_project`` and ``residual`` -> the next block's first convolution
(``expand_conv``, or ``dw_conv`` where the expansion ratio is 1), and after
the last block the network's ``head_conv``: every site has a next
convolution, so Disout's 0.01 constant is never used here.
"""

from __future__ import annotations

import functools
import math
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

# (expand ratio, kernel, stride, input filters, output filters, repeats)
BASE_BLOCKS = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2),
               (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
               (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
               (6, 3, 1, 192, 320, 1))
# name -> (width coefficient, depth coefficient, resolution, head dropout)
VARIANTS = {
    "b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3), "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4), "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5), "b7": (2.0, 3.1, 600, 0.5),
}


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
  filters *= width
  new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
  if new < 0.9 * filters:
    new += divisor
  return int(new)


def round_repeats(repeats: int, depth: float) -> int:
  return int(math.ceil(depth * repeats))


def _bn(train, dtype, name):
  return bb.batch_norm(train, dtype=dtype, name=name, momentum=0.99,
                       epsilon=1e-3)


class MBConv(nn.Module):
  expand: int
  kernel: int
  strides: int
  features: int
  drop_path_rate: float
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None, next_kernel=None):
    """``next_kernel``: the next block's first conv kernel (Disout)."""
    site = functools.partial(apply_site, self.policy, "conv", train,
                             rate_factor)
    dw, project = conv_kernel(self, "dw_conv"), conv_kernel(self,
                                                            "project_conv")
    cin = x.shape[-1]
    hidden = cin * self.expand
    y = x
    labels = ["bn_dw", "bn_project"]
    if self.expand != 1:
      labels.insert(0, "bn_expand")
      y = bb.conv(hidden, 1, dtype=self.dtype, name="expand_conv")(y)
      y = nn.swish(site("bn_expand", _bn(train, self.dtype, "expand_norm")(y),
                        next_conv_kernel=dw))
    y = bb.conv(hidden, self.kernel, self.strides, dtype=self.dtype,
                name="dw_conv", groups=hidden)(y)
    y = nn.swish(site("bn_dw", _bn(train, self.dtype, "dw_norm")(y),
                      next_conv_kernel=project))
    squeezed = max(1, int(cin * 0.25))
    se = jnp.mean(y, axis=(1, 2), keepdims=True)
    se = nn.swish(nn.Conv(squeezed, (1, 1), dtype=self.dtype,
                          param_dtype=jnp.float32, name="se_reduce")(se))
    se = nn.sigmoid(nn.Conv(hidden, (1, 1), dtype=self.dtype,
                            param_dtype=jnp.float32, name="se_expand")(se))
    y = y * se
    y = bb.conv(self.features, 1, dtype=self.dtype, name="project_conv")(y)
    y = site("bn_project", _bn(train, self.dtype, "project_norm")(y),
             next_conv_kernel=next_kernel)
    if self.strides == 1 and cin == self.features:
      # The residual site (and a pattern's ``residual`` token) acts on the
      # identity path, as ResNet's and WRN's ``shortcut`` sites do.
      skip = Site(self.policy, name="residual")(
          x, train, rate_factor,
          spec_override=residual_pattern(self.policy, self.path, labels,
                                         "residual"),
          next_conv_kernel=next_kernel)
      if train and self.drop_path_rate > 0:
        y = dg.drop_path(y, key=self.make_rng("dropout"),
                         rate=self.drop_path_rate, train=True)
      y = y + skip
    return y


def _first_conv(expand: int) -> str:
  return "expand_conv" if expand != 1 else "dw_conv"


class EfficientNet(nn.Module):
  """EfficientNet; ``variant`` 'b0'..'b7'. ``__call__(x, train, ...)``."""
  variant: str = "b0"
  num_classes: int = 1000
  stochastic_depth: float = 0.2
  head_dropout: Optional[float] = None  # None: the variant's rate
  width_override: Optional[float] = None  # tiny test variants
  depth_override: Optional[float] = None
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  def _following(self, blocks, i):
    """The kernel of the first convolution after block ``i`` (Disout)."""
    if i + 1 < len(blocks):
      return conv_kernel(self, f"block{i + 1}", _first_conv(blocks[i + 1][0]))
    return conv_kernel(self, "head_conv")

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None):
    if self.variant not in VARIANTS:
      raise ValueError(f"EfficientNet: variant must be one of "
                       f"{sorted(VARIANTS)}, got {self.variant!r}.")
    width, depth, _, dropout = VARIANTS[self.variant]
    width = self.width_override or width
    depth = self.depth_override or depth
    bb.check_image("EfficientNet", x, 32)
    x = bb.conv(round_filters(32, width), 3, 2, dtype=self.dtype,
                name="stem_conv")(x.astype(self.dtype))
    x = nn.swish(_bn(train, self.dtype, "stem_norm")(x))
    blocks = [(expand, kernel, stride if r == 0 else 1, cout)
              for expand, kernel, stride, _, cout, repeats in BASE_BLOCKS
              for r in range(round_repeats(repeats, depth))]
    for i, (expand, kernel, stride, cout) in enumerate(blocks):
      x = MBConv(expand, kernel, stride, round_filters(cout, width),
                 self.stochastic_depth * i / len(blocks), self.policy,
                 self.dtype, name=f"block{i}")(
                     x, train, rate_factor, self._following(blocks, i))
    x = bb.conv(round_filters(1280, width), 1, dtype=self.dtype,
                name="head_conv")(x)
    x = nn.swish(_bn(train, self.dtype, "head_norm")(x))
    x = jnp.mean(x, axis=(1, 2))
    rate = dropout if self.head_dropout is None else self.head_dropout
    if train and rate > 0:
      x = dg.dropout(x, key=self.make_rng("dropout"), rate=rate, train=True)
    logits = bb.classifier(self.num_classes, dtype=self.dtype)(x)
    check_policy(self, self.policy)
    return logits.astype(jnp.float32)
