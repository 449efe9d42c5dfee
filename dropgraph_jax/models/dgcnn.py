"""DGCNN (Wang et al. 2019, "Dynamic Graph CNN for Learning on Point
Clouds") with named regularization sites, for DropGraph's Table 4.

EdgeConv (their Eq. 7-8 with the asymmetric edge function of Eq. 8):
for every point ``i`` and its ``k`` nearest neighbours ``j`` in the
*current* feature space, ``e_ij = MLP([x_i, x_j - x_i])``, and
``x_i' = max_j e_ij``; the graph is recomputed at every layer (dynamic).
The classification network of the reference (WangYueFt/dgcnn, PyTorch):
EdgeConv 64, 64, 128, 256 (each a 1x1 conv without bias, batch norm,
LeakyReLU 0.2), concatenation (512) -> 1x1 conv to ``emb`` (1024), global
max and mean pooling, then 512 -> 256 -> classes with batch norm, LeakyReLU
and dropout 0.5. ``k = 20``.

Sites ``edgeconv{i}`` after every EdgeConv (the DropGraph paper's
placement: "after every EdgeConv"), on ``(B, N, C)`` point features.
k-NN is dense per cloud (``(B, N, N)`` distances, as the reference);
clouds are small (1,024 points), so that is what the reference does too.
"""

from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dropgraph_jax.models.sites import apply_site, check_policy
from dropgraph_jax.patterns.policy import Policy


def knn(x: jax.Array, k: int) -> jax.Array:
  """Indices ``(B, N, k)`` of each point's ``k`` nearest points (itself
  included, as the reference's ``topk`` of negative distances)."""
  sq = jnp.sum(x * x, axis=-1)
  dist = sq[:, :, None] - 2 * jnp.einsum("bnc,bmc->bnm", x, x) + \
      sq[:, None, :]
  return jax.lax.top_k(-dist, k)[1]


def edge_features(x: jax.Array, k: int) -> jax.Array:
  """``[x_i, x_j - x_i]`` for the k nearest ``j``: ``(B, N, k, 2C)``."""
  idx = knn(jax.lax.stop_gradient(x).astype(jnp.float32), k)
  neighbours = jax.vmap(lambda pts, i: pts[i])(x, idx)
  centre = jnp.broadcast_to(x[:, :, None, :], neighbours.shape)
  return jnp.concatenate([centre, neighbours - centre], axis=-1)


def _norm_act(train: bool, dtype, name: str):
  norm = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                      dtype=dtype, param_dtype=jnp.float32, name=name)
  return lambda h: nn.leaky_relu(norm(h), 0.2)


class DGCNN(nn.Module):
  """``(B, N, 3)`` points -> ``(B, classes)`` logits."""
  num_classes: int = 40
  k: int = 20
  widths: Sequence[int] = (64, 64, 128, 256)
  emb: int = 1024
  head: Sequence[int] = (512, 256)
  head_dropout: float = 0.5
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None):
    if x.ndim != 3:
      raise ValueError(f"DGCNN: points must be (B, N, 3), got shape "
                       f"{x.shape}.")
    site = functools.partial(apply_site, self.policy, "graph", train,
                             rate_factor)
    dense = functools.partial(nn.Dense, use_bias=False, dtype=self.dtype,
                              param_dtype=jnp.float32)
    h, outs = x.astype(self.dtype), []
    for i, width in enumerate(self.widths):
      e = dense(width, name=f"edge{i}")(edge_features(h, self.k))
      e = _norm_act(train, self.dtype, f"edge_norm{i}")(e)
      h = site(f"edgeconv{i}", jnp.max(e, axis=2))
      outs.append(h)
    h = dense(self.emb, name="emb")(jnp.concatenate(outs, axis=-1))
    h = _norm_act(train, self.dtype, "emb_norm")(h)
    h = jnp.concatenate([jnp.max(h, axis=1), jnp.mean(h, axis=1)], axis=-1)
    for j, width in enumerate(self.head):
      h = _norm_act(train, self.dtype, f"head_norm{j}")(
          dense(width, name=f"head{j}")(h))
      h = nn.Dropout(self.head_dropout, deterministic=not train)(h)
    out = nn.Dense(self.num_classes, dtype=self.dtype,
                   param_dtype=jnp.float32, name="logits")(h)
    check_policy(self, self.policy)
    return out.astype(jnp.float32)
