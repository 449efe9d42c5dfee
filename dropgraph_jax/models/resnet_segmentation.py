"""FCN-32s (Long et al. 2015) and DeepLabV3 (Chen et al. 2017) on the
project's ResNet-50, for DropGraph Table 3 (PASCAL VOC).

Both subclass :class:`~dropgraph_jax.models.resnet.ResNet` and build its
trunk in their own scope, so the sites keep the classifier's names
(``stage3/block0/relu1`` ...) and :func:`dropgraph_jax.models.resnet.
paper_policy` places a regularizer in the last two groups, as the paper
does ("regularizers were applied at the last two building groups of the
ResNet-50 backbone", alpha 0.2, rho 0.1, s 7). The paper trains both from
random initialisation.

* FCN-32s: the trunk at output stride 32, a 1x1 convolution to the class
  scores, bilinear upsampling by 32 to the input size (the original
  learns a 64x64 deconvolution initialised to bilinear; a fixed bilinear
  resize is the common ResNet port).
* DeepLabV3: the trunk at output stride 8 by default (``output_stride``,
  the last two stages dilated 2 and 4 instead of strided; 16 dilates only
  the last), ASPP (a 1x1 branch, three 3x3 branches with rates 12, 24, 36
  at stride 8 or 6, 12, 18 at 16, image pooling; 256 features each, BN +
  ReLU), a 1x1 projection, a 3x3 conv, the class scores, bilinear
  upsampling. The paper names its framework but not the output stride;
  8 is the setting torchvision's DeepLabV3 uses.

Output: per-pixel logits ``(N, H, W, num_classes)``, float32.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from dropgraph_jax.models import building_blocks as bb
from dropgraph_jax.models.resnet import ResNet
from dropgraph_jax.models.sites import check_policy


def _upsample(logits, shape):
  return jax.image.resize(logits, shape[:3] + logits.shape[3:],
                          "bilinear").astype(jnp.float32)


class FCN32s(ResNet):
  """``__call__(x, train, rate_factor=None)`` -> per-pixel logits."""

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None):
    features = self.trunk(x, train, rate_factor)
    scores = nn.Conv(self.num_classes, (1, 1), dtype=self.dtype,
                     name="score")(features)
    check_policy(self, self.policy)
    return _upsample(scores, x.shape)


class ASPP(nn.Module):
  rates: tuple
  features: int = 256
  dtype: object = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    def branch(y, name):
      y = bb.batch_norm(train, dtype=self.dtype, name=f"{name}_norm")(y)
      return nn.relu(y)
    outs = [branch(bb.conv(self.features, 1, dtype=self.dtype,
                           name="conv1x1")(x), "conv1x1")]
    for rate in self.rates:
      outs.append(branch(bb.conv(self.features, 3, dtype=self.dtype,
                                 name=f"atrous{rate}", dilation=rate)(x),
                         f"atrous{rate}"))
    pooled = jnp.mean(x, axis=(1, 2), keepdims=True)
    pooled = branch(bb.conv(self.features, 1, dtype=self.dtype,
                            name="pool_conv")(pooled), "pool_conv")
    outs.append(jnp.broadcast_to(pooled, x.shape[:3] + (self.features,)))
    y = bb.conv(self.features, 1, dtype=self.dtype,
                name="project")(jnp.concatenate(outs, axis=-1))
    return branch(y, "project")


class DeepLabV3(ResNet):
  """``__call__(x, train, rate_factor=None)`` -> per-pixel logits."""
  output_stride: int = 8

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None):
    if self.output_stride not in (8, 16):
      raise ValueError(f"DeepLabV3: output_stride must be 8 or 16, got "
                       f"{self.output_stride}.")
    features = self.trunk(x, train, rate_factor)
    rates = (12, 24, 36) if self.output_stride == 8 else (6, 12, 18)
    y = ASPP(rates, dtype=self.dtype, name="aspp")(features, train)
    y = bb.conv(256, 3, dtype=self.dtype, name="head_conv")(y)
    y = nn.relu(bb.batch_norm(train, dtype=self.dtype, name="head_norm")(y))
    scores = nn.Conv(self.num_classes, (1, 1), dtype=self.dtype,
                     name="score")(y)
    check_policy(self, self.policy)
    return _upsample(scores, x.shape)
