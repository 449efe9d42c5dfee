"""DropGraph's graph branch, steps 3-5 of :mod:`dropgraph` (pure functions).

Step 3, the adjacency A of Eq. 6 and Table 6's alternatives
(:func:`adjacency_matrix`); steps 4-5, the distortion generator Phi of
Algorithm 1 line 7 and Table 8's alternatives, with the channel-wise
average pooling folded into each generator's last linear layer
(:func:`vertex_distortions`). The module docstring of :mod:`dropgraph`
states the equations and the choices the paper leaves open; this module
holds their arithmetic so that the regularizer itself stays short.
"""

from __future__ import annotations

from typing import Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np

from dropgraph_jax.regularizers import random_bits

Params = Dict[str, jax.Array]


def adjacency_matrix(vertices: jax.Array, adjacency: str, temperature: float,
                     params: Optional[Params] = None) -> jax.Array:
  """A (N, K, K) for vertices (N, K, C), float32 (module docstring, step 3)."""
  n, k, _ = vertices.shape
  if adjacency in ("dissimilarity", "similarity"):
    vf = vertices.astype(jnp.float32)
    sim = jnp.einsum("nkc,njc->nkj", vf, vf) / temperature
    soft = jax.nn.softmax(sim, axis=-1)
    if adjacency == "similarity":
      return soft
    return (1.0 - soft) / max(k - 1, 1)
  if adjacency == "learned":
    a = jax.nn.softmax(params["graph_adjacency_logits"].astype(jnp.float32),
                       axis=-1)
    return jnp.broadcast_to(a, (n, k, k))
  if adjacency == "identity":
    return jnp.broadcast_to(jnp.eye(k, dtype=jnp.float32), (n, k, k))
  if adjacency == "uniform":
    return jnp.full((n, k, k), 1.0 / k, jnp.float32)
  return jnp.zeros((n, k, k), jnp.float32)  # 'zero'


def _pooled_output(h: jax.Array, w_out: jax.Array) -> jax.Array:
  """mean_c(h @ w_out) computed as h @ mean_c(w_out): exact, C times cheaper.

  Channel-wise average pooling (step 5) is linear, so it commutes with the
  last linear layer of every generator; the pooled distortion never needs
  the (N, K, C) tensor.
  """
  return h @ jnp.mean(w_out.astype(jnp.float32), axis=-1)


def _gcn(a: jax.Array, vertices: jax.Array, params: Params) -> jax.Array:
  """Pooled Phi(A, V): bottleneck GCN, residual GCN inside, shared A; (N, K)."""
  def layer(h, w):
    return jnp.einsum("nkj,njc,cd->nkd", a, h, w.astype(jnp.float32))
  h1 = jax.nn.relu(layer(vertices, params["graph_w_in"]))
  h2 = h1 + jax.nn.relu(layer(h1, params["graph_w_mid"]))
  # D = A H2 W_out, then its channel mean: A (H2 mean_c(W_out)).
  return jnp.einsum("nkj,nj->nk", a, _pooled_output(h2, params["graph_w_out"]))


def _conv_at_vertices(x: jax.Array, positions: jax.Array, params: Params,
                      dilation: int) -> jax.Array:
  """Pooled 3x3 (dilated) bottleneck conv C -> C/r -> C at the vertices.

  Gathers the 9 taps around each vertex (zero padding) instead of running
  the conv over the whole map: K positions cost K/(HW) of a full conv.
  Returns the channel-pooled distortion (N, K).
  """
  n, h, w, c = x.shape
  r = dilation
  wp = w + 2 * r
  padded = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0))).reshape(n, -1, c)
  row, col = positions // w, positions % w  # (N, K)
  offsets = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
  taps = ((row[..., None] + r + r * offsets[:, 0]) * wp +
          (col[..., None] + r + r * offsets[:, 1]))  # (N, K, 9)
  k = positions.shape[1]
  patches = jnp.take_along_axis(padded, taps.reshape(n, k * 9, 1), axis=1)
  patches = patches.reshape(n, k, 9 * c).astype(jnp.float32)
  w1 = params["graph_conv_w1"].reshape(9 * c, -1).astype(jnp.float32)
  hidden = jax.nn.relu(patches @ w1)
  return _pooled_output(hidden, params["graph_conv_w2"])


def vertex_distortions(x: jax.Array, vertices: jax.Array,
                       positions: jax.Array, params: Params, key: jax.Array,
                       *, adjacency: str, generator: str, temperature: float,
                       rng: str = "hash") -> jax.Array:
  """Channel-pooled per-vertex distortions d (N, K), or (N, 1) for the
  ``*_avgpool`` generators (module docstring, steps 3-5)."""
  if generator.startswith("gcn"):
    a = adjacency_matrix(vertices, adjacency, temperature, params)
    d = _gcn(a, vertices.astype(jnp.float32), params)
  elif generator == "noise":
    sigma = jnp.std(jax.lax.stop_gradient(x), dtype=jnp.float32)
    noise = random_bits.normal(key, vertices.shape, jnp.float32, rng)
    d = sigma * jnp.mean(noise, axis=-1)
  elif generator == "avg_pool":
    d = jnp.mean(vertices.astype(jnp.float32), axis=(1, 2))[:, None]
  else:  # conv, dilated_conv, dilated_conv_avgpool
    dilation = 1 if generator == "conv" else 3
    d = _conv_at_vertices(x, positions, params, dilation)
  if generator.endswith("_avgpool"):
    d = jnp.mean(d, axis=1, keepdims=True)  # one distortion overrides all
  return d
