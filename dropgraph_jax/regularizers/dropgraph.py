"""DropGraph: partial graph reasoning as a regularizer (pure functions).

Implements Sec. 3.2, Algorithm 1, Eq. 5-6 and the ablations of Tables 6 and
8 of "Partial Graph Reasoning for Neural Network Regularization". During
training, for an NHWC feature map X:

  1. Mask branch (Algorithm 1 line 5): a DropBlock keep mask M with
     distortion probability ``rate`` (rho) and block size s
     (:mod:`block_mask`).
  2. Graph branch (line 4): K = round(alpha * H * W) vertices V (N, K, C),
     feature vectors at K distinct random positions of each example.
  3. Adjacency (line 6, Eq. 6), per example, from sim(v_i, v_j) =
     <v_i, v_j> / temperature:
       'dissimilarity'  A = (1 - softmax_j(sim)) / max(K - 1, 1)  (default)
       'learned'        A = softmax_j(L), L a free (K, K) parameter (6a)
       'similarity'     A = softmax_j(sim)                        (6b)
       'identity'       A = I                                     (6c)
       'uniform'        A = 1 / K                                 (6d)
       'zero'           A = 0: the distortion is exactly zero, DropGraph
                        reduces to block dropping (Sec. 3.2)
  4. Distortion generator Phi (line 7), giving per-vertex distortion vectors
     D (N, K, C) (computed pooled, see step 5). 'gcn' (default): two GCN
     bottleneck layers with channel reduction r at its ends and a residual
     GCN inside, all sharing A, no biases (so A = 0 gives D = 0):
       H1 = relu(A V W_in)          (C -> C/r)
       H2 = H1 + relu(A H1 W_mid)   (C/r -> C/r)
       D  = A H2 W_out              (C/r -> C)
     Table 8's alternatives: 'noise' (D = std(X) N(0, 1)), 'avg_pool'
     (every vertex gets the mean vertex), 'conv' (3x3 bottleneck conv
     C -> C/r -> C at the vertex positions), 'dilated_conv' (the same with
     dilation 3), and the '*_avgpool' forms of 'gcn' and 'dilated_conv'
     (below).
  5. average(.) (line 7): channel-wise average pooling, d_k = mean_c D_kc,
     one distortion value per vertex. Pooling is linear, so it is folded
     into the generator's last layer (d = A H2 mean_c(W_out)), which is
     exact and avoids the two largest products. The '*_avgpool' generators also
     average over the vertices: one value per example that "overrides all"
     masked positions (Table 8's "& avg pooling" rows).
  6. expand(R, M) (line 8): every position receives the value of a vertex
     drawn uniformly at random (so different masked positions carry
     different vertices' distortions), broadcast over channels, times an
     independent random factor u ~ U(0, 1) per unit (following Disout).
  7. Apply (line 9): Y = X * M + R * (1 - M). With ``rescale=True`` the
     result is also divided by the kept fraction, as Disout does.

The paper leaves open how pooled distortions are "expanded" to the masked
positions and which axis the "channel-wise" pooling runs over; the choices
above are ours, made so that Algorithm 1, Fig. 1 and Table 8 all read
consistently (the default 'gcn' is Table 8's "GCN (ours)" row, the setting
of Table 2).

Inference (Algorithm 1 lines 1-3): X is returned untouched; the graph
weights are not read, so they can be stripped from an exported parameter
tree (:func:`strip_graph_params`).
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from dropgraph_jax.regularizers import _validate as v
from dropgraph_jax.regularizers import block_mask, random_bits
from dropgraph_jax.regularizers.dropgraph_generators import (  # noqa: F401
    adjacency_matrix,  # steps 3-5 (Eq. 6, Table 8), re-exported here
    vertex_distortions,
)

ADJACENCIES = ("dissimilarity", "learned", "similarity", "identity",
               "uniform", "zero")
GENERATORS = ("gcn", "gcn_avgpool", "noise", "avg_pool", "conv",
              "dilated_conv", "dilated_conv_avgpool")
# The rows of Table 8 ("Comparisons on different distortion generation
# methods"), in the paper's order, mapped to generator names.
TABLE8_GENERATORS = {
    "random noise": "noise",
    "avg pooling": "avg_pool",
    "standard conv": "conv",
    "dilated conv (r=3)": "dilated_conv",
    "dilated conv (r=3) & avg pooling": "dilated_conv_avgpool",
    "GCN & avg pooling": "gcn_avgpool",
    "GCN": "gcn",
}
# Parameter names all start with this prefix (see strip_graph_params).
PARAM_PREFIX = "graph_"
Params = Dict[str, jax.Array]


def num_vertices(fn: str, alpha: float, height: int, width: int) -> int:
  """K = round(alpha * H * W), at least 1, else a ValueError."""
  alpha = v.check_number(fn, "alpha (the vertex sampling rate)", alpha, 0,
                         1, low_open=True)
  k = int(round(alpha * height * width))
  if k < 1:
    raise ValueError(
        f"{fn}: alpha={alpha} samples no vertex from a {height}x{width} map "
        f"(alpha * H * W = {alpha * height * width:.3g} rounds to 0); use a "
        "larger alpha or apply DropGraph to a larger feature map.")
  return k


def _dims(fn: str, channels: int, reduction: int) -> int:
  reduction = v.check_number(fn, "reduction", reduction, 1, integer=True)
  if channels // reduction < 1:
    raise ValueError(f"{fn}: reduction={reduction} leaves no channel of "
                     f"C={channels}.")
  return channels // reduction


def param_shapes(x_shape: Tuple[int, int, int, int], *, alpha: float = 0.2,
                 adjacency: str = "dissimilarity", generator: str = "gcn",
                 reduction: int = 4) -> Dict[str, Tuple[int, ...]]:
  """Shapes of the graph parameters for an NHWC input of ``x_shape``."""
  fn = "dropgraph"
  v.check_choice(fn, "adjacency", adjacency, ADJACENCIES)
  v.check_choice(fn, "generator", generator, GENERATORS)
  if len(x_shape) != 4:
    raise ValueError(f"{fn}: x must be NHWC (rank 4), got shape "
                     f"{tuple(x_shape)} of rank {len(x_shape)}.")
  _, h, w, c = x_shape
  k = num_vertices(fn, alpha, h, w)
  cr = _dims(fn, c, reduction)
  shapes = {}
  if generator.startswith("gcn"):
    shapes.update(graph_w_in=(c, cr), graph_w_mid=(cr, cr),
                  graph_w_out=(cr, c))
  elif "conv" in generator:
    shapes.update(graph_conv_w1=(3, 3, c, cr), graph_conv_w2=(cr, c))
  if adjacency == "learned":
    shapes["graph_adjacency_logits"] = (k, k)
  return shapes


def graph_cost(x_shape: Tuple[int, int, int, int], *, alpha: float = 0.2,
               adjacency: str = "dissimilarity", generator: str = "gcn",
               reduction: int = 4) -> Dict[str, int]:
  """Parameter count and multiply-accumulates per example of the graph branch.

  Counts the matrix products of steps 3-5 (similarity, the three GCN layers
  with the pooling folded into the last one, or the conv taps); elementwise
  work (softmax, masks, factors) is not
  counted, as MAC counts usually do not. Training only: at inference the
  branch costs nothing.
  """
  shapes = param_shapes(x_shape, alpha=alpha, adjacency=adjacency,
                        generator=generator, reduction=reduction)
  _, h, w, c = x_shape
  k = num_vertices("graph_cost", alpha, h, w)
  cr = c // reduction
  macs = 0
  if generator.startswith("gcn"):
    if adjacency in ("dissimilarity", "similarity"):
      macs += k * k * c
    macs += k * k * c + k * c * cr      # A V W_in
    macs += k * k * cr + k * cr * cr    # A H1 W_mid
    macs += k * cr + k * k              # A (H2 mean_c(W_out)), pooled
  elif "conv" in generator:
    macs += k * 9 * c * cr + k * cr     # taps W1, then pooled W2
  return {"params": int(sum(np.prod(s) for s in shapes.values())),
          "macs": int(macs), "vertices": k}


def param_initializer(name: str):
  """Flax-style ``init(key, shape, dtype)`` for the graph parameter ``name``.

  LeCun-normal weight matrices (fan-in 9C for the 3x3 conv kernel); zero
  adjacency logits, i.e. uniform rows after the softmax.
  """
  if name == "graph_adjacency_logits":
    return jax.nn.initializers.zeros
  matrix_init = jax.nn.initializers.lecun_normal(in_axis=-2, out_axis=-1)

  def init(key, shape, dtype=jnp.float32):
    if len(shape) == 4:  # conv kernel (3, 3, C, C/r)
      flat = (shape[0] * shape[1] * shape[2], shape[3])
      return matrix_init(key, flat, dtype).reshape(shape)
    return matrix_init(key, shape, dtype)

  return init


def init_params(key: jax.Array, x_shape: Tuple[int, int, int, int], *,
                alpha: float = 0.2, adjacency: str = "dissimilarity",
                generator: str = "gcn", reduction: int = 4,
                dtype=jnp.float32) -> Params:
  """Initial graph weights for the functional API (see param_initializer)."""
  shapes = param_shapes(x_shape, alpha=alpha, adjacency=adjacency,
                        generator=generator, reduction=reduction)
  return {name: param_initializer(name)(jax.random.fold_in(key, i), shape,
                                        dtype)
          for i, (name, shape) in enumerate(sorted(shapes.items()))}


def sample_vertices(key: jax.Array, x: jax.Array, k: int, rng: str = "hash"
                    ) -> Tuple[jax.Array, jax.Array]:
  """K distinct random positions per example and their feature vectors.

  Returns ``(vertices (N, K, C), positions (N, K) flat int32 indices)``.
  Sampling without replacement is the top-K of i.i.d. uniform scores.
  """
  n, h, w, c = x.shape
  scores = random_bits.uniform(key, (n, h * w), jnp.float32, rng)
  _, positions = jax.lax.top_k(scores, k)
  vertices = jnp.take_along_axis(x.reshape(n, h * w, c), positions[..., None],
                                 axis=1)
  return vertices, positions


def dropgraph(x: jax.Array, params: Optional[Params], *,
              key: Optional[jax.Array], rate, train: bool, alpha: float = 0.2,
              block_size=7, adjacency: str = "dissimilarity",
              generator: str = "gcn", temperature: Optional[float] = None,
              reduction: int = 4, share_channels: bool = False,
              rescale: bool = False, clip_block_size: bool = False,
              vertex_gradient: bool = False, rng: str = "hash") -> jax.Array:
  """DropGraph (Algorithm 1) on an NHWC feature map.

  Args:
    x: ``(N, H, W, C)`` floating array (float32, bfloat16, float16).
    params: graph weights from :func:`init_params` (or the Linen module);
      not read, and may be ``None``, when the call is inactive.
    key: PRNG key; only read when ``train`` and ``rate > 0``.
    rate: rho, the distortion probability, in [0, 1); may be traced (a
      schedule). A static 0 or ``train=False`` returns ``x``.
    train: static bool.
    alpha: vertex sampling rate in (0, 1] (paper default 0.2).
    block_size: s, int or ``(bh, bw)`` (paper: 3 on CIFAR, 7 on ImageNet).
    adjacency: one of :data:`ADJACENCIES` (module docstring).
    generator: one of :data:`GENERATORS`; see :data:`TABLE8_GENERATORS`.
    temperature: divides the dot-product similarity; ``None`` means
      ``sqrt(C)`` (the paper states only "dot product with temperature").
    reduction: r, the GCN bottleneck channel reduction (paper: 4).
    share_channels: one block mask for all channels (default: per channel,
      as DropBlock's better setting).
    rescale: divide by the kept fraction as Disout does (default ``False``:
      Algorithm 1 line 9 does not rescale).
    clip_block_size: clip the block to the map instead of raising.
    vertex_gradient: let the loss gradient also flow from the distortions
      back into the backbone through the sampled vertices V. Default
      ``False``: V is read with ``stop_gradient`` (as Disout reads std(x)),
      so the backbone's gradient is that of ``X * M`` and the graph weights
      W are trained by the gradient of the distortions. ``True`` is fully
      differentiable but costs about two extra passes over the activation
      in the backward (a scatter into the full map; see
      ``experiments/bench_regularizers.py``).
    rng: ``'hash'`` (default) or ``'jax'`` for the random draws.

  Returns:
    ``X * M + R * (1 - M)`` in training, ``x`` itself otherwise; same shape
    and dtype as ``x``.
  """
  fn = "dropgraph"
  active, bs = block_mask.check_block_args(
      fn, x, key, rate, train, block_size, None, clip_block_size, rng,
      share_channels)
  _, h, w, c = x.shape
  k = num_vertices(fn, alpha, h, w)
  v.check_choice(fn, "adjacency", adjacency, ADJACENCIES)
  v.check_choice(fn, "generator", generator, GENERATORS)
  _dims(fn, c, reduction)
  if temperature is None:
    temperature = float(np.sqrt(c))
  temperature = v.check_number(fn, "temperature", temperature, 0,
                               low_open=True)
  for name, flag in (("rescale", rescale),
                     ("vertex_gradient", vertex_gradient)):
    v.check_flag(fn, name, flag)
  if not active:
    return x
  expected = param_shapes(x.shape, alpha=alpha, adjacency=adjacency,
                          generator=generator, reduction=reduction)
  got = {name: tuple(p.shape) for name, p in (params or {}).items()}
  if got != expected:
    raise ValueError(f"{fn}: params must have shapes {expected} for input "
                     f"{x.shape} with these options, got {got}.")

  mask_key, vertex_key, assign_key, factor_key, noise_key = jax.random.split(
      key, 5)
  mask = block_mask.sample_block_keep(mask_key, x.shape, rate, bs,
                                      share_channels, rng, like=x)
  source = x if vertex_gradient else jax.lax.stop_gradient(x)
  vertices, positions = sample_vertices(vertex_key, source, k, rng)
  d = vertex_distortions(source, vertices, positions, params, noise_key,
                         adjacency=adjacency, generator=generator,
                         temperature=temperature, rng=rng)
  # expand: each position takes a uniformly drawn vertex's distortion.
  n = x.shape[0]
  if d.shape[1] == 1:
    per_position = jnp.broadcast_to(d[:, :, None], (n, h, w))
  else:
    which = random_bits.bits(assign_key, (n, h * w), rng) % jnp.uint32(k)
    per_position = jnp.take_along_axis(d, which.astype(jnp.int32),
                                       axis=1).reshape(n, h, w)
  factors = random_bits.uniform(factor_key, x.shape, x.dtype, rng, like=x)
  distortion = per_position[..., None].astype(x.dtype) * factors
  y = jnp.where(mask.keep, x, distortion)
  if rescale:
    y = y * block_mask.kept_fraction_scale(mask, "batch",
                                           x.shape).astype(x.dtype)
  return y


@functools.lru_cache(maxsize=None)
def _all_param_names() -> frozenset:
  """Every parameter name a DropGraph module can have (any options)."""
  return frozenset(name for adjacency in ADJACENCIES
                   for generator in GENERATORS
                   for name in param_shapes((1, 8, 8, 16), adjacency=adjacency,
                                            generator=generator))


def _is_graph_module(node: Any) -> bool:
  """A DropGraph module's own parameter dict: only its weights, as leaves."""
  return (hasattr(node, "items") and bool(node) and
          all(isinstance(k, str) and k in _all_param_names() and
              not hasattr(val, "items") for k, val in node.items()))


def strip_graph_params(tree: Any) -> Any:
  """Removes every DropGraph module's weights from a parameter dict.

  DropGraph is skipped at inference, so an exported model needs none of its
  weights: ``model.apply({'params': strip_graph_params(params)}, x,
  train=False)`` gives the same output as with the full tree. A module's
  weights are found by their place, a dict that holds DropGraph's weights
  and nothing else, not by a name prefix: a user's module named
  ``graph_encoder`` is kept. Dicts left empty are removed.
  """
  if not hasattr(tree, "items"):
    return tree
  out = {}
  for name, sub in tree.items():
    if _is_graph_module(sub):
      continue
    sub = strip_graph_params(sub)
    if hasattr(sub, "items") and not sub:
      continue
    out[name] = sub
  return out


def graph_param_labels(tree: Any, graph: str = "graph",
                       other: str = "backbone") -> Any:
  """The same tree with every leaf replaced by ``graph`` (a DropGraph
  weight) or ``other``: the labels ``optax.multi_transform`` takes to give
  the graph weights their own optimizer::

      tx = optax.multi_transform({"backbone": optax.sgd(0.1),
                                  "graph": optax.adam(1e-3)},
                                 dropgraph_lib.graph_param_labels(params))
  """
  if _is_graph_module(tree):
    return {name: graph for name in tree}
  if not hasattr(tree, "items"):
    return other
  return {name: graph_param_labels(sub, graph, other)
          for name, sub in tree.items()}
