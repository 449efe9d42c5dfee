"""Flax Linen wrappers around the graph-signal regularizers.

The same calling convention as :mod:`dropgraph_jax.layers`: a
``deterministic`` flag set at construction or per call, keys from the
``'dropout'`` rng collection (``rng_collection`` to change it), an optional
per-call traced ``rate``; node features ``(N, C)`` or ``(B, N, C)``::

    h = graph_layers.GraphDropGraph(rate=0.1, alpha=0.15)(
        h, deterministic=not train)
    model.apply(variables, x, rngs={'dropout': key})

A deterministic layer (or a static rate 0) returns its input and draws no
key. See :mod:`dropgraph_jax.regularizers.graph_signal` for what each one
does and how it maps onto the image version.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from dropgraph_jax.layers import _Regularizer, generator
from dropgraph_jax.regularizers import _validate as v
from dropgraph_jax.regularizers import dropgraph as dropgraph_lib
from dropgraph_jax.regularizers import graph_signal


class GraphDropout(_Regularizer):
  """:func:`graph_signal.graph_dropout`: single node features."""
  _fn = staticmethod(graph_signal.graph_dropout)


class GraphSpatialDropout(_Regularizer):
  """:func:`graph_signal.graph_spatial_dropout`: whole channels per graph."""
  _fn = staticmethod(graph_signal.graph_spatial_dropout)


class GraphDisout(_Regularizer):
  """:func:`graph_signal.graph_disout` (s = 1).

  Pass the weight ``(C, C_out)`` of the linear or GCN layer that follows as
  ``next_weight`` at call time to scale the distortion by it.
  """
  alpha: float = 1.0
  _fn = staticmethod(graph_signal.graph_disout)

  def _options(self):
    return {"alpha": self.alpha}

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: Optional[bool] = None,
               rate=None, next_weight: Optional[jax.Array] = None,
               rng: Optional[jax.Array] = None) -> jax.Array:
    return self._apply(x, deterministic, rate, key=rng,
                       next_weight=next_weight)


class GraphDropGraph(nn.Module):
  """:func:`graph_signal.graph_dropgraph` with its graph weights as params.

  As :class:`dropgraph_jax.layers.DropGraph`: the weights (``graph_w_in``
  etc.) are created at ``init`` whatever the mode, trained with the model,
  never read when deterministic (``dg.strip_graph_params`` removes them
  from an export). ``rate`` is rho; the paper uses alpha = 0.15 on graphs.
  """
  rate: float = 0.1
  alpha: float = 0.2
  adjacency: str = "dissimilarity"
  generator: str = "gcn"
  temperature: Optional[float] = None
  reduction: int = 4
  share_channels: bool = False
  rescale: bool = False
  vertex_gradient: bool = False
  deterministic: Optional[bool] = None
  rng_collection: str = "dropout"
  rng_impl: str = "hash"
  rng: Optional[str] = None  # deprecated name of rng_impl
  param_dtype: Any = jnp.float32

  def _params(self, x_shape):
    shapes = graph_signal.graph_param_shapes(
        x_shape, alpha=self.alpha, adjacency=self.adjacency,
        generator=self.generator, reduction=self.reduction,
        fn="GraphDropGraph")
    return {name: self.param(name, dropgraph_lib.param_initializer(name),
                             shape, self.param_dtype)
            for name, shape in sorted(shapes.items())}

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: Optional[bool] = None,
               rate=None, rng: Optional[jax.Array] = None) -> jax.Array:
    deterministic = nn.merge_param("deterministic", self.deterministic,
                                   deterministic)
    rate = self.rate if rate is None else rate
    train = not deterministic
    params = None
    if train or self.is_initializing():
      params = self._params(x.shape)
    key = rng if train else None
    if train and key is None and v.static_value(rate) != 0.0:
      key = self.make_rng(self.rng_collection)
    return graph_signal.graph_dropgraph(
        x, params, key=key, rate=rate, train=train, alpha=self.alpha,
        adjacency=self.adjacency, generator=self.generator,
        temperature=self.temperature, reduction=self.reduction,
        share_channels=self.share_channels, rescale=self.rescale,
        vertex_gradient=self.vertex_gradient, rng=generator(self))
