"""Convolution and batch-norm conventions shared by the ConvNet families.

Parameters are float32; ``dtype`` is the compute dtype (bfloat16 for mixed
precision). Convolutions have no bias (batch norm follows), and are
initialised He-normal (fan-out), as the reference ResNet implementations.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def conv(features: int, kernel: int, strides: int = 1, *, dtype: Any,
         name: str, groups: int = 1, dilation: int = 1) -> nn.Conv:
  pad = dilation * (kernel - 1) // 2
  return nn.Conv(features, (kernel, kernel), (strides, strides),
                 padding=((pad, pad), (pad, pad)), use_bias=False,
                 feature_group_count=groups, kernel_init=conv_init,
                 kernel_dilation=(dilation, dilation), dtype=dtype,
                 param_dtype=jnp.float32, name=name)


def batch_norm(train: bool, *, dtype: Any, name: str, momentum: float = 0.9,
               epsilon: float = 1e-5, zero_init: bool = False
               ) -> nn.BatchNorm:
  scale_init = nn.initializers.zeros if zero_init else nn.initializers.ones
  return nn.BatchNorm(use_running_average=not train, momentum=momentum,
                      epsilon=epsilon, dtype=dtype, param_dtype=jnp.float32,
                      scale_init=scale_init, name=name)


def classifier(num_classes: int, *, dtype: Any, name: str = "head"
               ) -> nn.Dense:
  return nn.Dense(num_classes, dtype=dtype, param_dtype=jnp.float32,
                  name=name)


def global_pool_logits(x, head: nn.Dense):
  """Global average pool then the classifier; logits in float32."""
  return head(jnp.mean(x, axis=(1, 2))).astype(jnp.float32)


def check_image(name: str, x, min_size: int, channels: int = None) -> None:
  """Clear errors for inputs a network cannot take."""
  if x.ndim != 4:
    raise ValueError(f"{name}: input must be NHWC images (rank 4), got "
                     f"shape {x.shape}.")
  if min(x.shape[1], x.shape[2]) < min_size:
    raise ValueError(f"{name}: image size {x.shape[1]}x{x.shape[2]} is too "
                     f"small; this network needs at least {min_size}x"
                     f"{min_size}.")
  if channels is not None and x.shape[3] != channels:
    raise ValueError(f"{name}: expected {channels} input channels, got "
                     f"{x.shape[3]}.")



def projected_shortcut(x, features: int, strides: int, train: bool, *,
                       dtype: Any):
  """Identity, or conv1x1 (stride) + BN when the shape changes (v1 ResNets)."""
  if x.shape[-1] == features and strides == 1:
    return x
  shortcut = conv(features, 1, strides, dtype=dtype, name="proj_conv")(x)
  return batch_norm(train, dtype=dtype, name="proj_norm")(shortcut)
