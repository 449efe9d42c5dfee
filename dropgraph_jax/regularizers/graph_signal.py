"""Regularizers on graph signals: node features (N, C) or (B, N, C).

For the graph experiments of "Partial Graph Reasoning for Neural Network
Regularization" (Sec. 4.3: DGCNN on ModelNet40, a regularizer after every
EdgeConv, alpha = 0.15, rho = 0.1, s = 1; Sec. 4.4: a two-layer GCN with
the regularizer before the second GCN layer, alpha = 0.15, rho = 0.1 on
Cora and 0.25 on PROTEINS), which compare DropGraph with Dropout,
SpatialDropout and Disout (Tables 4 and 5).

Every function here is the image version run on a map with the nodes as
its spatial axis: ``(B, N, C)`` is viewed as NHWC ``(B, N, 1, C)`` (H = N,
W = 1), ``(N, C)`` as the single graph ``(1, N, C)``, and blocks are one
node (s = 1). Masks, validation and tests therefore carry over. With
x_bnc the features of node n, channel c of graph b, rho = ``rate``:

  (1) graph_dropout          = dropout on (B, N, 1, C): y = x m / (1 - rho),
                               m ~ Bernoulli(1 - rho) per unit.
  (2) graph_spatial_dropout  = spatial_dropout: one m_bc per graph and
                               channel, shared by all nodes of the graph.
  (3) graph_disout           = disout with block_size 1:
                               y = (x M + alpha w_c sigma eps (1 - M)) / f,
                               sigma = std(x), eps ~ N(0, 1), f the kept
                               fraction of the batch; w_c = 0.01, or from
                               ``next_weight`` W (C, C_out) read as the 1x1
                               kernel (1, 1, C, C_out):
                               w_c = 0.1 * sign_c * max_o W_co, sign_c = +-1
                               at random (disout._kernel_scale).
  (4) graph_dropgraph        = dropgraph with block_size 1 (Algorithm 1):
                               K = round(alpha N) distinct nodes per graph
                               are the vertices V (B, K, C); A from Eq. 6
                               (``adjacency``: dissimilarity, learned,
                               similarity, identity, uniform, zero); a
                               Table 8 generator Phi(A, V); d_k its channel
                               mean; each distorted unit gets the d of a
                               random vertex times u ~ U(0, 1);
                               Y = X M + R (1 - M).

Choices the paper leaves open, and ours:

- Which graph DropGraph reasons on: not the input graph's edges (GCN's
  normalised adjacency, DGCNN's kNN graph). Algorithm 1 builds its own
  graph over the sampled vertices with Eq. 6, for graph signals as for
  images, so no edge list is taken.
- Appendix B.3 sets "the height and width of the 2D CNN feature maps of
  DropGraph and Disout to be equal to the number of points". We read this
  as a map of H * W = N positions, H = N and W = 1; with s = 1 the
  arrangement changes nothing but K = round(alpha * H * W) = round(alpha N).
- Generators that need a spatial neighbourhood ('conv', 'dilated_conv',
  'dilated_conv_avgpool': a 3x3 kernel around each vertex) have no meaning
  on nodes in arbitrary order and are refused; :data:`GRAPH_GENERATORS`
  lists the valid ones ('gcn', the paper's, is the default).
- Batches of graphs of different sizes (PROTEINS, 39 nodes on average):
  every node of ``(B, N, C)`` counts, padding included (it can be sampled
  as a vertex and enters std(x)). Pass graphs of one size, or the
  disjoint union of a batch as one ``(N, C)`` graph.
- Disout's normalisation is over the whole batch (its reference's
  default) and DropGraph does not rescale (Algorithm 1), as for images.
"""

from __future__ import annotations

import contextlib
from typing import Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp

from dropgraph_jax.regularizers import _validate as v
from dropgraph_jax.regularizers import dropgraph as dropgraph_lib
from dropgraph_jax.regularizers import random_bits
from dropgraph_jax.regularizers.disout import disout
from dropgraph_jax.regularizers.dropout import dropout, spatial_dropout

# Table 8's generators that need no spatial neighbourhood.
GRAPH_GENERATORS = ("gcn", "gcn_avgpool", "noise", "avg_pool")
LAYOUT = "(N, C) or (B, N, C)"
Params = dropgraph_lib.Params


def nhwc_shape(x_shape: Sequence[int]) -> Tuple[int, int, int, int]:
  """(N, C) -> (1, N, 1, C) and (B, N, C) -> (B, N, 1, C)."""
  shape = tuple(x_shape)
  if len(shape) == 2:
    shape = (1,) + shape
  return (shape[0], shape[1], 1, shape[2])


def _to_nhwc(x: jax.Array) -> jax.Array:
  if x.ndim == 2:
    x = jnp.expand_dims(x, 0)
  return jnp.expand_dims(x, 2)


def _from_nhwc(y: jax.Array, ndim: int) -> jax.Array:
  y = jnp.squeeze(y, 2)
  return jnp.squeeze(y, 0) if ndim == 2 else y


@contextlib.contextmanager
def _named(fn: str, image_fn: str):
  """Re-raises the image version's ValueErrors under the graph name."""
  try:
    yield
  except ValueError as err:
    msg = str(err)
    if not msg.startswith(image_fn + ":"):
      raise
    raise ValueError(fn + msg[len(image_fn):]) from err


def _check_call(fn: str, x, key, rate, train, rng) -> bool:
  """Validation shared by all four; True when the call is active."""
  train = v.check_train(fn, train)
  v.check_floating(fn, x)
  v.check_rank(fn, x, (2, 3), LAYOUT)
  static_rate = v.check_rate(fn, rate)
  v.check_choice(fn, "rng", rng, random_bits.RNG_IMPLS)
  active = train and static_rate != 0.0
  if active:
    v.check_key(fn, key)
  return active


def graph_dropout(x: jax.Array, *, key: Optional[jax.Array], rate,
                  train: bool, rng: str = "hash") -> jax.Array:
  """Dropout of single node features, Eq. (1); :func:`dropout.dropout`.

  Args:
    x: ``(N, C)`` or ``(B, N, C)`` floating array.
    key: PRNG key; only read when ``train`` and ``rate > 0``.
    rate: drop probability in [0, 1); may be traced.
    train: static bool; ``False`` (or a static rate 0) returns ``x``.
    rng: ``'hash'`` (default) or ``'jax'``.
  """
  fn = "graph_dropout"
  if not _check_call(fn, x, key, rate, train, rng):
    return x
  with _named(fn, "dropout"):
    y = dropout(_to_nhwc(x), key=key, rate=rate, train=True, rng=rng)
  return _from_nhwc(y, x.ndim)


def graph_spatial_dropout(x: jax.Array, *, key: Optional[jax.Array], rate,
                          train: bool, rng: str = "hash") -> jax.Array:
  """Drops whole feature channels of each graph, Eq. (2).

  :func:`dropout.spatial_dropout` on ``(B, N, 1, C)``: every node of a
  dropped (graph, channel) pair is zero. Arguments as :func:`graph_dropout`.
  """
  fn = "graph_spatial_dropout"
  if not _check_call(fn, x, key, rate, train, rng):
    return x
  with _named(fn, "spatial_dropout"):
    y = spatial_dropout(_to_nhwc(x), key=key, rate=rate, train=True, rng=rng)
  return _from_nhwc(y, x.ndim)


def _check_next_weight(fn: str, next_weight, channels: int) -> None:
  if next_weight is None:
    return
  if jnp.ndim(next_weight) != 2 or jnp.shape(next_weight)[0] != channels:
    raise ValueError(
        f"{fn}: next_weight must be the weight (C, C_out) of the linear or "
        f"GCN layer that follows, with C = {channels} (the channels of x), "
        f"got shape {jnp.shape(next_weight)}; pass e.g. "
        "params['Dense_0']['kernel'].")


def _as_conv_kernel(next_weight):
  """A dense / GCN weight (C, C_out) as the 1x1 conv kernel (1, 1, C, C_out)."""
  if next_weight is None:
    return None
  return jnp.reshape(next_weight, (1, 1) + tuple(jnp.shape(next_weight)))


def graph_disout(x: jax.Array, *, key: Optional[jax.Array], rate,
                 train: bool, alpha: float = 1.0,
                 next_weight: Optional[jax.Array] = None,
                 rng: str = "hash") -> jax.Array:
  """Disout on node features with s = 1, Eq. (3); :func:`disout.disout`.

  Args:
    x, key, rate, train, rng: as in :func:`graph_dropout` (``rate`` is the
      fraction of distorted units).
    alpha: distortion intensity (Disout's class default 1.0).
    next_weight: optional weight ``(C, C_out)`` of the linear or GCN layer
      applied next; w_c is computed from it as for a 1x1 conv kernel (no
      gradient flows into it). ``None``: w = 0.01.
  """
  fn = "graph_disout"
  active = _check_call(fn, x, key, rate, train, rng)
  _check_next_weight(fn, next_weight, x.shape[-1])
  if not active:
    return x
  with _named(fn, "disout"):
    y = disout(_to_nhwc(x), key=key, rate=rate, train=True, block_size=1,
               alpha=alpha, next_conv_kernel=_as_conv_kernel(next_weight),
               rng=rng)
  return _from_nhwc(y, x.ndim)


def num_vertices(fn: str, alpha: float, num_nodes: int) -> int:
  """K = round(alpha * N) vertices per graph, at least 1, else ValueError."""
  alpha = v.check_number(fn, "alpha (the vertex sampling rate)", alpha, 0,
                         1, low_open=True)
  k = int(round(alpha * num_nodes))
  if k < 1:
    raise ValueError(
        f"{fn}: alpha={alpha} samples no vertex from a graph of {num_nodes} "
        f"nodes (alpha * N = {alpha * num_nodes:.3g} rounds to 0); use a "
        "larger alpha.")
  return k


def _check_generator(fn: str, generator: str) -> None:
  if generator in GRAPH_GENERATORS:
    return
  why = ""
  if generator in dropgraph_lib.GENERATORS:
    why = (" needs a 3x3 spatial neighbourhood around each vertex, which "
           "the nodes of a graph signal do not have;")
  raise ValueError(f"{fn}: generator {generator!r}{why} must be one of "
                   f"{list(GRAPH_GENERATORS)} on graphs.")


def graph_param_shapes(x_shape: Sequence[int], *, alpha: float = 0.2,
                       adjacency: str = "dissimilarity",
                       generator: str = "gcn", reduction: int = 4,
                       fn: str = "graph_param_shapes"
                       ) -> Dict[str, Tuple[int, ...]]:
  """Shapes of the graph weights for node features of ``x_shape``."""
  if len(x_shape) not in (2, 3):
    raise ValueError(f"{fn}: x must be {LAYOUT} (rank 2 or 3), got shape "
                     f"{tuple(x_shape)} of rank {len(x_shape)}.")
  _check_generator(fn, generator)
  num_vertices(fn, alpha, x_shape[-2])
  with _named(fn, "dropgraph"):
    return dropgraph_lib.param_shapes(
        nhwc_shape(x_shape), alpha=alpha, adjacency=adjacency,
        generator=generator, reduction=reduction)


def init_graph_params(key: jax.Array, x_shape: Sequence[int], *,
                      alpha: float = 0.2, adjacency: str = "dissimilarity",
                      generator: str = "gcn", reduction: int = 4,
                      dtype=jnp.float32) -> Params:
  """Initial graph weights for :func:`graph_dropgraph` (one set for every
  graph size B; see :func:`dropgraph.param_initializer`)."""
  graph_param_shapes(x_shape, alpha=alpha, adjacency=adjacency,
                     generator=generator, reduction=reduction,
                     fn="init_graph_params")
  return dropgraph_lib.init_params(
      key, nhwc_shape(x_shape), alpha=alpha, adjacency=adjacency,
      generator=generator, reduction=reduction, dtype=dtype)


def _check_temperature(fn: str, temperature) -> None:
  if temperature is None:
    return
  v.check_number(fn, "temperature (None: sqrt(C))", temperature, 0,
                 low_open=True)


def graph_dropgraph(x: jax.Array, params: Optional[Params], *,
                    key: Optional[jax.Array], rate, train: bool,
                    alpha: float = 0.2, adjacency: str = "dissimilarity",
                    generator: str = "gcn",
                    temperature: Optional[float] = None, reduction: int = 4,
                    share_channels: bool = False, rescale: bool = False,
                    vertex_gradient: bool = False, rng: str = "hash"
                    ) -> jax.Array:
  """DropGraph on node features with s = 1, Eq. (4); :func:`dropgraph.dropgraph`.

  Args:
    x: ``(N, C)`` or ``(B, N, C)`` floating array.
    params: graph weights from :func:`init_graph_params` (or
      :class:`dropgraph_jax.graph_layers.GraphDropGraph`); not read, and may
      be ``None``, when the call is inactive.
    key, rate, train, rng: as in :func:`graph_dropout`; ``rate`` is rho.
    alpha: vertex sampling rate, K = round(alpha N) (paper: 0.15 on graphs).
    adjacency, temperature, reduction, rescale, vertex_gradient: as in
      :func:`dropgraph.dropgraph`.
    generator: one of :data:`GRAPH_GENERATORS`.
    share_channels: one decision per node for all its channels (default:
      per unit).
  """
  fn = "graph_dropgraph"
  active = _check_call(fn, x, key, rate, train, rng)
  graph_param_shapes(x.shape, alpha=alpha, adjacency=adjacency,
                     generator=generator, reduction=reduction, fn=fn)
  _check_temperature(fn, temperature)
  if not active:
    return x
  with _named(fn, "dropgraph"):
    y = dropgraph_lib.dropgraph(
        _to_nhwc(x), params, key=key, rate=rate, train=True, alpha=alpha,
        block_size=1, adjacency=adjacency, generator=generator,
        temperature=temperature, reduction=reduction,
        share_channels=share_channels, rescale=rescale,
        vertex_gradient=vertex_gradient, rng=rng)
  return _from_nhwc(y, x.ndim)
