"""Partial graph reasoning, Eq. 4 of the DropGraph paper (its Table 1).

The paper's preliminary study, before DropGraph proper: for an NHWC map X,

  1. V: K = round(alpha * H * W) feature vectors of each example, chosen
     by ``sampling``: 'random' (K distinct uniform positions, as DropGraph)
     or 'top' (the K positions with the largest mean absolute activation
     over channels, "the top absolute activations");
  2. A: the dissimilarity adjacency of Eq. 6 over V (as DropGraph's
     default, :func:`dropgraph.adjacency_matrix`);
  3. Eq. 3-4: f(X) = (X \\ V) U (A V W): the sampled vectors are replaced
     by one graph-convolution layer's output A V W (W a (C, C) weight),
     every other position kept. There is no block mask and no rescaling.

Table 1 compares running this in training and inference ("Train&Inf.",
``at_inference=True``) with training only (``at_inference=False``, the
default: inference returns X, as DropGraph). With 'top' sampling the
vertices are a deterministic function of X, so at inference the module is
a deterministic layer; with 'random' it draws from ``key`` in both modes.
The paper does not say how V enters W's gradient; as DropGraph's default,
V is read with ``stop_gradient`` from the backbone and W is trained by the
gradient of A V W.
"""

from __future__ import annotations

from typing import Dict, Optional

import jax
import jax.numpy as jnp

from dropgraph_jax.regularizers import _validate as v
from dropgraph_jax.regularizers import dropgraph as dropgraph_lib

SAMPLINGS = ("random", "top")
Params = Dict[str, jax.Array]


def init_params(key: jax.Array, channels: int, dtype=jnp.float32) -> Params:
  """W (C, C), LeCun-normal."""
  return {"reasoning_w": jax.nn.initializers.lecun_normal()(
      key, (channels, channels), dtype)}


def _top_positions(x: jax.Array, k: int) -> jax.Array:
  n, h, w, c = x.shape
  score = jnp.mean(jnp.abs(x.astype(jnp.float32)), axis=-1).reshape(n, h * w)
  return jax.lax.top_k(score, k)[1]


def partial_graph_reasoning(x: jax.Array, params: Params, *,
                            key: Optional[jax.Array], train: bool,
                            alpha: float = 0.25, sampling: str = "random",
                            at_inference: bool = False,
                            temperature: Optional[float] = None) -> jax.Array:
  """Eq. 4 on an NHWC ``x``; see the module docstring.

  Args:
    x: ``(N, H, W, C)`` floating array.
    params: ``{'reasoning_w': (C, C)}`` (:func:`init_params`).
    key: PRNG key; read for 'random' sampling.
    train: static; with ``at_inference=False`` the eval pass returns ``x``.
    alpha: vertex sampling rate in (0, 1].
    sampling: 'random' or 'top'.
    at_inference: also reason in eval mode (Table 1's "Train&Inf.").
    temperature: of the adjacency's similarity; ``None`` is sqrt(C).
  """
  fn = "partial_graph_reasoning"
  train = v.check_train(fn, train)
  v.check_floating(fn, x)
  v.check_rank(fn, x, (4,), "NHWC")
  v.check_choice(fn, "sampling", sampling, SAMPLINGS)
  v.check_flag(fn, "at_inference", at_inference)
  n, h, w, c = x.shape
  k = dropgraph_lib.num_vertices(fn, alpha, h, w)
  temperature = float(c) ** 0.5 if temperature is None else v.check_number(
      fn, "temperature", temperature, 0, low_open=True)
  if not (train or at_inference):
    return x
  if tuple(params["reasoning_w"].shape) != (c, c):
    raise ValueError(f"{fn}: params['reasoning_w'] must be ({c}, {c}), got "
                     f"{params['reasoning_w'].shape}.")
  source = jax.lax.stop_gradient(x)
  if sampling == "top":
    positions = _top_positions(source, k)
  else:
    v.check_key(fn, key)
    positions = dropgraph_lib.sample_vertices(key, source, k)[1]
  flat = x.reshape(n, h * w, c)
  vertices = jnp.take_along_axis(source.reshape(n, h * w, c),
                                 positions[..., None], axis=1)
  a = dropgraph_lib.adjacency_matrix(vertices, "dissimilarity", temperature)
  out = a @ vertices.astype(jnp.float32) @ params["reasoning_w"].astype(
      jnp.float32)
  rows = jnp.arange(n)[:, None]
  return flat.at[rows, positions].set(out.astype(x.dtype)).reshape(x.shape)
