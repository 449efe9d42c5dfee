"""Partial graph reasoning, Eq. 4 of the DropGraph paper (its Table 1).

The paper's preliminary study, before DropGraph proper: for an NHWC map X,

  1. V: K = round(alpha * H * W) feature vectors of each example, chosen
     by ``sampling``: 'random' (K distinct uniform positions, as DropGraph)
     or 'top' (the K positions with the largest mean absolute activation
     over channels, "the top absolute activations");
  2. A: the dissimilarity adjacency of Eq. 6 over V (as DropGraph's
     default, :func:`dropgraph_generators.adjacency_matrix`);
  3. Eq. 3-4: f(X) = (X \\ V) U (A V W): the sampled vectors are replaced
     by one graph-convolution layer's output A V W (W a (C, C) weight),
     every other position kept. There is no block mask and no rescaling.

:func:`partial_reasoning` is the same transform in the registry's form
(name ``'partial_reasoning'``, so a policy can place it at a model's
sites): ``rate`` is the fraction alpha of positions replaced, in [0, 1),
and may be traced (a schedule's ramp). The vertices are then the first
``round(rate * H * W)`` of the ``K_max`` a static ``max_rate`` (or a
static ``rate``; else all ``H * W``) ranks, and the graph is masked to
them: with a static rate it is exactly :func:`partial_graph_reasoning`.

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
  train, temperature = _check(fn, x, train, sampling, at_inference,
                              temperature)
  k = dropgraph_lib.num_vertices(fn, alpha, x.shape[1], x.shape[2])
  if not (train or at_inference):
    return x
  return _reason(fn, x, params, key, sampling, temperature, k, k)


def partial_reasoning(x: jax.Array, params: Params, *,
                      key: Optional[jax.Array], rate, train: bool,
                      max_rate: Optional[float] = None,
                      sampling: str = "random", at_inference: bool = False,
                      temperature: Optional[float] = None) -> jax.Array:
  """Eq. 4 in the registry's form: ``rate`` (alpha, in [0, 1), may be
  traced) of the positions replaced; ``max_rate`` (static) bounds a
  traced rate, so only ``round(max_rate * H * W)`` vertices are ranked.
  The other arguments as :func:`partial_graph_reasoning`."""
  fn = "partial_reasoning"
  train, temperature = _check(fn, x, train, sampling, at_inference,
                              temperature)
  static = v.check_rate(fn, rate)
  hw = x.shape[1] * x.shape[2]
  if max_rate is not None:
    max_rate = v.check_rate(fn, max_rate, "max_rate", upper_inclusive=True)
  if not (train or at_inference) or static == 0.0:
    return x
  bound = max_rate if max_rate is not None else static
  k_max = hw if bound is None else max(int(round(bound * hw)), 1)
  m = int(round(static * hw)) if static is not None else jnp.round(
      rate * hw).astype(jnp.int32)
  return x if static is not None and m == 0 else _reason(
      fn, x, params, key, sampling, temperature, k_max, jnp.minimum(m, k_max))


def _check(fn, x, train, sampling, at_inference, temperature):
  train = v.check_train(fn, train)
  v.check_floating(fn, x)
  v.check_rank(fn, x, (4,), "NHWC")
  v.check_choice(fn, "sampling", sampling, SAMPLINGS)
  v.check_flag(fn, "at_inference", at_inference)
  c = x.shape[-1]
  return train, (float(c) ** 0.5 if temperature is None else v.check_number(
      fn, "temperature", temperature, 0, low_open=True))


def _masked_dissimilarity(vertices, valid, temperature) -> jax.Array:
  """Eq. 6's adjacency over the ``valid`` vertices only (N, K, K)."""
  vf = vertices.astype(jnp.float32)
  sim = jnp.einsum("nkc,njc->nkj", vf, vf) / temperature
  # An added large negative, not a where: a where broadcasts the (K,) mask
  # to an unsharded (N, K, K) and a batch-sharded sim would lose its
  # layout. Finite, not -inf: with no valid vertex (a ramp's first steps)
  # an all -inf row would make NaNs that reach W's gradient.
  soft = jax.nn.softmax(sim + jnp.where(valid, 0.0, -1e30), axis=-1)
  count = jnp.sum(valid.astype(jnp.float32))
  return (1.0 - soft) * valid / jnp.maximum(count - 1.0, 1.0)


def _reason(fn, x, params, key, sampling, temperature, k_max: int, m):
  """The first ``m`` of ``k_max`` ranked positions become A V W."""
  n, h, w, c = x.shape
  if tuple(params["reasoning_w"].shape) != (c, c):
    raise ValueError(f"{fn}: params['reasoning_w'] must be ({c}, {c}), got "
                     f"{params['reasoning_w'].shape}.")
  source = jax.lax.stop_gradient(x)
  if sampling == "top":
    positions = _top_positions(source, k_max)
  else:
    v.check_key(fn, key)
    positions = dropgraph_lib.sample_vertices(key, source, k_max)[1]
  # A zero column of x's batch adopts x's batch layout (the sampler's
  # scores are drawn unsharded), so the per-example scatter below maps a
  # sharded axis.
  positions = positions + jnp.zeros_like(source[:, :1, 0, 0],
                                         dtype=positions.dtype)
  flat = x.reshape(n, h * w, c)
  vertices = jnp.take_along_axis(source.reshape(n, h * w, c),
                                 positions[..., None], axis=1)
  valid = jnp.arange(k_max) < m
  a = _masked_dissimilarity(vertices, valid, temperature)
  out = a @ vertices.astype(jnp.float32) @ params["reasoning_w"].astype(
      jnp.float32)
  # Ranked positions past m point out of range and are dropped by the
  # scatter (an offset, not a where: it keeps a batch-sharded layout).
  targets = positions + (h * w) * (~valid).astype(positions.dtype)
  # One scatter per example (vmapped: the batch axis stays a batch axis of
  # the scatter, so a batch-sharded x stays sharded).
  written = jax.vmap(lambda f, t, o: f.at[t].set(o, mode="drop"))(
      flat, targets, out.astype(x.dtype))
  return written.reshape(x.shape)
