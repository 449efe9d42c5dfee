"""U-Net (Ronneberger et al. 2015) and Attention U-Net (Oktay et al. 2018)
with named regularization sites, for DropGraph Table 3 (MoNuSeg).

Layout (``levels`` encoder levels, ``width`` features at the first, doubled
per level): each level is a block ``conv3x3 - BN - ReLU - conv3x3 - BN -
ReLU``; the encoder levels ``enc1..encL`` are each followed by a 2x2
max-pool, then a ``bridge`` block at the lowest resolution, then decoder
levels ``decL..dec1``: a 2x2 transposed convolution up, the encoder
level's features concatenated (in Attention U-Net first weighted by an
additive attention gate, Oktay et al. Eq. 1-2, driven by the coarser
decoder features), and a block. A 1x1 convolution gives the per-pixel
logits ``(N, H, W, num_classes)``, float32.

Sites of a block (names are module paths, e.g. ``enc4/relu2``):
``bn1, relu1, bn2, relu2``. :func:`paper_policy` is the DropGraph paper's
placement (Sec. 4.2: "at the last encoder level only"; its Figure 5(b):
after each activation of the block): ``relu1`` and ``relu2`` of the
deepest encoder level ``encL``. The paper's figure does not say whether
the ``bridge`` counts as an encoder level; we take ``encL``, the last
level with a skip connection, and ``level=`` selects another (``'bridge'``
included). Disout's next convolution: ``relu1`` -> the block's ``conv2``,
``relu2`` -> the next block's ``conv1``.

The paper used BiO-Net's implementation (Xiang et al. 2020); ours follows
the original U-Net with batch norm and same-padded convolutions, so the
output has the input's size (which must be divisible by ``2**levels``).
"""

from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dropgraph_jax.models import building_blocks as bb
from dropgraph_jax.models.sites import apply_site, check_policy, conv_kernel
from dropgraph_jax.patterns.policy import Policy, RegularizerSpec


class ConvBlock(nn.Module):
  features: int
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None, next_kernel=None):
    """``next_kernel``: the next block's ``conv1`` kernel (Disout)."""
    site = functools.partial(apply_site, self.policy, "conv", train,
                             rate_factor)
    conv2 = conv_kernel(self, "conv2")
    y = bb.conv(self.features, 3, dtype=self.dtype, name="conv1")(x)
    y = site("bn1", bb.batch_norm(train, dtype=self.dtype, name="norm1")(y),
             next_conv_kernel=conv2)
    y = site("relu1", nn.relu(y), next_conv_kernel=conv2)
    y = bb.conv(self.features, 3, dtype=self.dtype, name="conv2")(y)
    y = site("bn2", bb.batch_norm(train, dtype=self.dtype, name="norm2")(y),
             next_conv_kernel=next_kernel)
    return site("relu2", nn.relu(y), next_conv_kernel=next_kernel)


class AttentionGate(nn.Module):
  """Oktay et al.'s additive gate: ``skip * sigmoid(psi(relu(Wx skip +
  Wg up(gate))))``, one coefficient per pixel."""
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, skip, gate):
    g = jax.image.resize(gate, skip.shape[:3] + gate.shape[3:], "nearest")
    a = (bb.conv(self.features, 1, dtype=self.dtype, name="theta_x")(skip) +
         nn.Conv(self.features, (1, 1), dtype=self.dtype, name="phi_g")(g))
    psi = nn.Conv(1, (1, 1), dtype=self.dtype, name="psi")(nn.relu(a))
    return skip * nn.sigmoid(psi)


class UNet(nn.Module):
  """``__call__(x, train, rate_factor=None)`` -> ``(N, H, W, classes)``."""
  num_classes: int = 2
  width: int = 64
  levels: int = 4
  attention: bool = False
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  def _names(self):
    return ([f"enc{i + 1}" for i in range(self.levels)] + ["bridge"] +
            [f"dec{i}" for i in range(self.levels, 0, -1)])

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None):
    name = type(self).__name__
    bb.check_image(name, x, 2**self.levels)
    if x.shape[1] % 2**self.levels or x.shape[2] % 2**self.levels:
      raise ValueError(f"{name}: image size {x.shape[1]}x{x.shape[2]} must "
                       f"be divisible by 2**levels = {2**self.levels}.")
    names = self._names()
    following = {n: conv_kernel(self, names[i + 1], "conv1")
                 for i, n in enumerate(names[:-1])}

    def block(block_name, features, h):
      return ConvBlock(features, self.policy, self.dtype, name=block_name)(
          h, train, rate_factor, following.get(block_name))

    h, skips = x.astype(self.dtype), []
    for i in range(self.levels):
      h = block(f"enc{i + 1}", self.width * 2**i, h)
      skips.append(h)
      h = nn.max_pool(h, (2, 2), (2, 2))
    h = block("bridge", self.width * 2**self.levels, h)
    for i in range(self.levels, 0, -1):
      features = self.width * 2**(i - 1)
      skip = skips[i - 1]
      if self.attention:
        skip = AttentionGate(max(1, features // 2), self.dtype,
                             name=f"gate{i}")(skip, h)
      h = nn.ConvTranspose(features, (2, 2), (2, 2), dtype=self.dtype,
                           name=f"up{i}")(h)
      h = block(f"dec{i}", features, jnp.concatenate([h, skip], axis=-1))
    logits = nn.Conv(self.num_classes, (1, 1), dtype=self.dtype,
                     name="head")(h).astype(jnp.float32)
    check_policy(self, self.policy)
    return logits


def paper_policy(sites: Sequence[str], spec: RegularizerSpec,
                 level: Optional[str] = None) -> Policy:
  """``spec`` after both activations of one block: by default the deepest
  encoder level (the paper's placement, see the module docstring)."""
  encoders = sorted({s.split("/")[0] for s in sites
                     if s.split("/")[0].startswith("enc")},
                    key=lambda n: int(n[3:]))
  chosen = level or (encoders[-1] if encoders else "")
  picked = {s: spec for s in sites if s in (f"{chosen}/relu1",
                                            f"{chosen}/relu2")}
  if not picked:
    raise ValueError(f"paper_policy: level {chosen!r} has no relu sites; "
                     f"levels: {encoders + ['bridge']}.")
  return Policy(picked)
