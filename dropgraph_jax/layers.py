"""Thin Flax Linen wrappers around the pure regularizer functions.

They follow ``flax.linen.Dropout``: a ``deterministic`` flag set at
construction or per call (merged with ``nn.merge_param``), keys drawn from
the ``'dropout'`` rng collection (``rng_collection`` to change it), and an
optional per-call ``rate`` so that a traced schedule value overrides the
constructed rate without recompiling::

    y = layers.DropBlock(rate=0.1, block_size=7)(x, deterministic=not train)
    y = layers.DropBlock(rate=0.1, block_size=3)(x, False, rate=sched(step))
    model.apply(variables, x, rngs={'dropout': key})

No key is drawn when the layer is deterministic or its rate is a static 0,
so such a layer needs no ``'dropout'`` rng at all. As with
``flax.linen.Dropout``, a key may also be passed at the call
(``layer(x, False, rng=key)``); the generator (the fused hash or
``jax.random``) is the field ``rng_impl`` ('hash' or 'jax'). The field
``rng`` meant the generator before 0.2 and is deprecated. ``rate=1.0`` is
refused with a ValueError (flax returns zeros): a regularizer that drops
everything has no kept fraction to rescale by.
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from dropgraph_jax.regularizers import _validate as v
from dropgraph_jax.regularizers import dropgraph as dropgraph_lib
from dropgraph_jax.regularizers import partial_reasoning
from dropgraph_jax.regularizers.disout import disout
from dropgraph_jax.regularizers.drop_block import drop_block
from dropgraph_jax.regularizers.dropout import (
  drop_path,
  dropout,
  spatial_dropout,
  variational_dropout,
  word_dropout,
)


def generator(layer) -> str:
  """The layer's mask generator, honouring the deprecated ``rng`` field."""
  if layer.rng is not None:
    warnings.warn(f"{type(layer).__name__}: the field 'rng' (the mask "
                  "generator) is deprecated; use rng_impl='hash' or 'jax'. "
                  "rng= at the call now takes a key, as flax's Dropout.",
                  DeprecationWarning, stacklevel=3)
    return layer.rng
  return layer.rng_impl


class _Regularizer(nn.Module):
  """Shared plumbing: merge ``deterministic``, draw a key, call ``_fn``."""

  rate: float = 0.0
  deterministic: Optional[bool] = None
  rng_collection: str = "dropout"
  rng_impl: str = "hash"
  rng: Optional[str] = None  # deprecated name of rng_impl

  # The pure function each subclass wraps: a plain class attribute (no
  # annotation), so it is not a module field / constructor argument.
  _fn = None

  def _options(self) -> Dict[str, Any]:
    return {}

  def _apply(self, x, deterministic, rate, key=None, **extra):
    deterministic = nn.merge_param("deterministic", self.deterministic,
                                   deterministic)
    rate = self.rate if rate is None else rate
    train = not deterministic
    if train and key is None and v.static_value(rate) != 0.0:
      key = self.make_rng(self.rng_collection)
    return type(self)._fn(x, key=key if train else None, rate=rate,
                          train=train, rng=generator(self), **self._options(),
                          **extra)

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: Optional[bool] = None,
               rate=None, rng: Optional[jax.Array] = None) -> jax.Array:
    return self._apply(x, deterministic, rate, key=rng)


class Dropout(_Regularizer):
  """:func:`dropgraph_jax.dropout`; ``broadcast_dims`` as in ``nn.Dropout``."""
  broadcast_dims: Sequence[int] = ()
  _fn = staticmethod(dropout)

  def _options(self):
    return {"broadcast_dims": tuple(self.broadcast_dims)}


class SpatialDropout(_Regularizer):
  """:func:`dropgraph_jax.spatial_dropout` on NHWC input."""
  _fn = staticmethod(spatial_dropout)


class VariationalDropout(_Regularizer):
  """:func:`dropgraph_jax.variational_dropout` on ``(N, T, C)`` input."""
  _fn = staticmethod(variational_dropout)


class WordDropout(_Regularizer):
  """:func:`dropgraph_jax.word_dropout` on ``(N, T, C)`` input."""
  rescale: bool = True
  _fn = staticmethod(word_dropout)

  def _options(self):
    return {"rescale": self.rescale}


class DropPath(_Regularizer):
  """:func:`dropgraph_jax.drop_path` (stochastic depth) on a residual branch."""
  _fn = staticmethod(drop_path)


class DropBlock(_Regularizer):
  """:func:`dropgraph_jax.drop_block` on NHWC input."""
  block_size: Union[int, Tuple[int, int]] = 7
  share_channels: bool = False
  normalize: str = "batch"
  clip_block_size: bool = False
  _fn = staticmethod(drop_block)

  def _options(self):
    return {"block_size": self.block_size,
            "share_channels": self.share_channels,
            "normalize": self.normalize,
            "clip_block_size": self.clip_block_size}


class Disout(DropBlock):
  """:func:`dropgraph_jax.disout` on NHWC input.

  Pass the kernel of the convolution that follows as ``next_conv_kernel``
  at call time to use the reference's weight-dependent distortion scale.
  """
  block_size: Union[int, Tuple[int, int]] = 6
  alpha: float = 1.0
  _fn = staticmethod(disout)

  def _options(self):
    return dict(super()._options(), alpha=self.alpha)

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: Optional[bool] = None,
               rate=None, next_conv_kernel: Optional[jax.Array] = None,
               rng: Optional[jax.Array] = None) -> jax.Array:
    return self._apply(x, deterministic, rate, key=rng,
                       next_conv_kernel=next_conv_kernel)


class DropGraph(nn.Module):
  """:func:`dropgraph_lib.dropgraph` with its graph weights as Linen params.

  The weights (``graph_w_in`` etc.) live in the ``'params'`` collection and
  are trained with the backbone. They are created at ``init`` whatever the
  mode, and never read when deterministic, so
  ``dropgraph_lib.strip_graph_params`` can drop them from an inference export.
  ``rate`` is rho, the distortion probability.
  """
  rate: float = 0.1
  alpha: float = 0.2
  block_size: Union[int, Tuple[int, int]] = 7
  adjacency: str = "dissimilarity"
  generator: str = "gcn"
  temperature: Optional[float] = None
  reduction: int = 4
  share_channels: bool = False
  rescale: bool = False
  clip_block_size: bool = False
  vertex_gradient: bool = False
  deterministic: Optional[bool] = None
  rng_collection: str = "dropout"
  rng_impl: str = "hash"
  rng: Optional[str] = None  # deprecated name of rng_impl
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: Optional[bool] = None,
               rate=None, rng: Optional[jax.Array] = None) -> jax.Array:
    deterministic = nn.merge_param("deterministic", self.deterministic,
                                   deterministic)
    rate = self.rate if rate is None else rate
    train = not deterministic
    params = None
    if train or self.is_initializing():
      shapes = dropgraph_lib.param_shapes(
          x.shape, alpha=self.alpha, adjacency=self.adjacency,
          generator=self.generator, reduction=self.reduction)
      params = {name: self.param(name, dropgraph_lib.param_initializer(name),
                                 shape, self.param_dtype)
                for name, shape in sorted(shapes.items())}
    key = rng if train else None
    if train and key is None and v.static_value(rate) != 0.0:
      key = self.make_rng(self.rng_collection)
    return dropgraph_lib.dropgraph(
        x, params, key=key, rate=rate, train=train, alpha=self.alpha,
        block_size=self.block_size, adjacency=self.adjacency,
        generator=self.generator, temperature=self.temperature,
        reduction=self.reduction, share_channels=self.share_channels,
        rescale=self.rescale, clip_block_size=self.clip_block_size,
        vertex_gradient=self.vertex_gradient, rng=generator(self))


def _reasoning_weight_and_key(module, x, deterministic: bool, rng):
  """Eq. 4's W (the param ``reasoning_w``, (C, C)) and the key of a pass
  that samples at random: ``rng``, else one from ``rng_collection``, else
  (an eval pass kept at inference without that collection) a fixed key."""
  c = x.shape[-1]
  w = module.param("reasoning_w", nn.initializers.lecun_normal(), (c, c),
                   module.param_dtype)
  if rng is not None or module.sampling != "random" or (
      deterministic and not module.at_inference):
    return w, rng
  if module.has_rng(module.rng_collection):
    return w, module.make_rng(module.rng_collection)
  return w, jax.random.key(0)


class _ReasoningFields(nn.Module):
  """The fields both forms of Eq. 4's module share."""
  sampling: str = "random"
  at_inference: bool = False
  temperature: Optional[float] = None
  deterministic: Optional[bool] = None
  rng_collection: str = "dropout"
  param_dtype: Any = jnp.float32


class PartialGraphReasoning(_ReasoningFields):
  """:func:`~dropgraph_jax.regularizers.partial_reasoning.
  partial_graph_reasoning` (Eq. 4, DropGraph Table 1) with W as a Linen
  param ``reasoning_w``; keys from ``rng_collection`` for 'random'
  sampling (see :func:`_reasoning_weight_and_key`)."""
  alpha: float = 0.25

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: Optional[bool] = None,
               rng: Optional[jax.Array] = None) -> jax.Array:
    deterministic = nn.merge_param("deterministic", self.deterministic,
                                   deterministic)
    w, key = _reasoning_weight_and_key(self, x, deterministic, rng)
    return partial_reasoning.partial_graph_reasoning(
        x, {"reasoning_w": w}, key=key, train=not deterministic,
        alpha=self.alpha, sampling=self.sampling,
        at_inference=self.at_inference, temperature=self.temperature)


class PartialReasoning(_ReasoningFields):
  """:func:`~dropgraph_jax.regularizers.partial_reasoning.
  partial_reasoning`, the registry's form of Eq. 4 (what a policy places
  at a model's site): ``rate`` (alpha) is also the static bound of a
  traced call-time ``rate`` (a ramp). W is the Linen param
  ``reasoning_w``. With ``at_inference`` and 'random' sampling, an eval
  pass without a ``rng_collection`` key draws from a fixed key (the same
  vertices every eval)."""
  rate: float = 0.25

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: Optional[bool] = None,
               rate=None, rng: Optional[jax.Array] = None) -> jax.Array:
    deterministic = nn.merge_param("deterministic", self.deterministic,
                                   deterministic)
    w, key = _reasoning_weight_and_key(self, x, deterministic, rng)
    return partial_reasoning.partial_reasoning(
        x, {"reasoning_w": w}, key=key,
        rate=self.rate if rate is None else rate, train=not deterministic,
        max_rate=self.rate, sampling=self.sampling,
        at_inference=self.at_inference, temperature=self.temperature)

