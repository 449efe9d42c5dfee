"""NNX modules for every regularizer, shaped like ``flax.nnx.Dropout``.

    from flax import nnx
    from dropgraph_jax import nnx_layers as dnn

    class Block(nnx.Module):
      def __init__(self, rngs):
        self.conv = nnx.Conv(16, 16, (3, 3), rngs=rngs)
        self.drop = dnn.DropBlock(0.1, block_size=3, rngs=rngs)
        self.graph = dnn.DropGraph((8, 8, 16), 0.1, block_size=3, rngs=rngs)

      def __call__(self, x):
        return self.graph(self.drop(self.conv(x)))

    model = Block(nnx.Rngs(params=0, dropout=1))
    model.train()   # regularizers active
    model.eval()    # identity: the output is the input, nothing computed

As ``nnx.Dropout``: ``rngs`` at construction (its ``dropout`` stream is
forked, so the module draws a fresh key every call), a ``deterministic``
attribute that ``model.train()`` / ``model.eval()`` set, and call-time
``deterministic=`` and ``rngs=`` (an ``nnx.Rngs``, a stream or a key) that
take precedence. Unlike ``nnx.Dropout`` the rate may also be given per call
(``rate=``, e.g. a traced schedule value: one compilation for the ramp).
Modules start in training mode (``deterministic=False``), as ``nnx.Dropout``.

DropGraph's graph weights are :class:`GraphParam` variables, a subclass of
``nnx.Param``: they train with the model under ``nnx.Param`` filters, and
are selected or excluded by type::

    backbone = nnx.All(nnx.Param, nnx.Not(dnn.GraphParam))
    main_opt = nnx.Optimizer(model, optax.sgd(0.1), wrt=backbone)
    graph_opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=dnn.GraphParam)
    # in a step: grads of nnx.Param; main_opt.update(model, grads_backbone),
    # graph_opt.update(model, grads_graph) (tests/test_nnx_layers.py)
    exported = dnn.strip_graph_weights(model)   # for inference

Since the weights depend on the feature map (K = round(alpha H W) vertices
for the learned adjacency, C channels), :class:`DropGraph` takes the
``(H, W, C)`` shape of its input at construction.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from dropgraph_jax.regularizers import _validate as v
from dropgraph_jax.regularizers import dropgraph as dropgraph_lib
from dropgraph_jax.regularizers import graph_signal, partial_reasoning
from dropgraph_jax.regularizers.disout import disout
from dropgraph_jax.regularizers.drop_block import drop_block
from dropgraph_jax.regularizers.dropout import (
  drop_path,
  dropout,
  spatial_dropout,
  variational_dropout,
  word_dropout,
)


def _stream(rngs, collection: str, where: str):
  """The module's own forked stream from a constructor ``rngs``."""
  if isinstance(rngs, nnx.Rngs):
    return rngs[collection].fork()
  if isinstance(rngs, nnx.RngStream):
    return rngs.fork()
  if rngs is None:
    return nnx.data(None)
  raise ValueError(f"{where}: rngs must be an nnx.Rngs, an nnx.RngStream or "
                   f"None, got {type(rngs).__name__}.")


def _key(rngs, own, collection: str, where: str) -> jax.Array:
  """A key from the call's ``rngs`` if given, else the module's stream."""
  source = own if rngs is None else rngs
  if isinstance(source, nnx.Rngs):
    return source[collection]()
  if isinstance(source, nnx.RngStream):
    return source()
  if source is None:
    raise ValueError(f"{where}: training mode needs a key: pass rngs="
                     f"nnx.Rngs({collection}=seed) at construction or rngs= "
                     "at the call (or call model.eval()).")
  return source  # a key; the function validates it


class _Regularizer(nnx.Module):
  """Shared plumbing of the mask-only regularizers."""

  fn: Callable = None  # the pure function (a class attribute)

  def __init__(self, rate: float = 0.1, *, deterministic: bool = False,
               rng_collection: str = "dropout", rngs=None, rng: str = "hash",
               **options):
    name = type(self).__name__
    v.check_rate(name, rate)
    self.rate, self.options, self.rng = rate, dict(options), rng
    self.deterministic = deterministic
    self.rng_collection = rng_collection
    self.rngs = _stream(rngs, rng_collection, name)

  def __call__(self, x: jax.Array, *, deterministic: Optional[bool] = None,
               rngs=None, rate=None, **call_options) -> jax.Array:
    deterministic = (self.deterministic if deterministic is None
                     else deterministic)
    rate = self.rate if rate is None else rate
    if deterministic or v.static_value(rate) == 0.0:
      return x
    key = _key(rngs, self.rngs, self.rng_collection, type(self).__name__)
    return type(self).fn(x, key=key, rate=rate, train=True, rng=self.rng,
                         **self.options, **call_options)


class Dropout(_Regularizer):
  """:func:`dropgraph_jax.dropout` (options: ``broadcast_dims``)."""
  fn = staticmethod(dropout)


class SpatialDropout(_Regularizer):
  """:func:`dropgraph_jax.spatial_dropout`: whole channels (NHWC)."""
  fn = staticmethod(spatial_dropout)


class VariationalDropout(_Regularizer):
  """:func:`dropgraph_jax.variational_dropout`: one mask per sequence."""
  fn = staticmethod(variational_dropout)


class WordDropout(_Regularizer):
  """:func:`dropgraph_jax.word_dropout`: whole token vectors."""
  fn = staticmethod(word_dropout)


class DropPath(_Regularizer):
  """:func:`dropgraph_jax.drop_path`: whole examples of a branch."""
  fn = staticmethod(drop_path)


class DropBlock(_Regularizer):
  """:func:`dropgraph_jax.drop_block` (options: ``block_size``, ...)."""
  fn = staticmethod(drop_block)


class Disout(_Regularizer):
  """:func:`dropgraph_jax.disout`; pass the following convolution's kernel
  at the call (``next_conv_kernel=conv.kernel.value``), as its reference."""
  fn = staticmethod(disout)


class GraphDropout(_Regularizer):
  """:func:`graph_signal.graph_dropout` on ``(N, C)`` / ``(B, N, C)``."""
  fn = staticmethod(graph_signal.graph_dropout)


class GraphSpatialDropout(_Regularizer):
  """:func:`graph_signal.graph_spatial_dropout`: whole channels."""
  fn = staticmethod(graph_signal.graph_spatial_dropout)


class GraphDisout(_Regularizer):
  """:func:`graph_signal.graph_disout` (``next_weight=`` at the call)."""
  fn = staticmethod(graph_signal.graph_disout)


class GraphParam(nnx.Param):
  """DropGraph's graph weights: an ``nnx.Param`` of their own type, so a
  filter can give them their own optimizer or leave them out of an export
  (they are never read at inference)."""


class DropGraph(nnx.Module):
  """:func:`dropgraph_jax.dropgraph` with its weights as :class:`GraphParam`.

  ``in_shape``: the ``(H, W, C)`` of the feature map it regularizes
  (``(N, C)`` with ``graph=True`` for node features). Options as the
  function (``alpha``, ``block_size``, ``adjacency``, ``generator``, ...).
  """

  def __init__(self, in_shape: Sequence[int], rate: float = 0.1, *,
               graph: bool = False, deterministic: bool = False,
               rng_collection: str = "dropout", rngs=None,
               param_dtype: Any = jnp.float32, **options):
    v.check_rate("DropGraph", rate)
    self.rate, self.graph, self.options = rate, graph, dict(options)
    self.deterministic = deterministic
    self.rng_collection = rng_collection
    shape = ((1,) + tuple(in_shape))
    init = dict(alpha=options.get("alpha", 0.2),
                adjacency=options.get("adjacency", "dissimilarity"),
                generator=options.get("generator", "gcn"),
                reduction=options.get("reduction", 4))
    params_key = (rngs.params() if isinstance(rngs, nnx.Rngs)
                  else jax.random.key(0))
    weights = (graph_signal.init_graph_params if graph else
               dropgraph_lib.init_params)(params_key, shape, **init)
    self.weights = nnx.data({name: GraphParam(w.astype(param_dtype))
                             for name, w in sorted(weights.items())})
    self.rngs = _stream(rngs, rng_collection, "DropGraph")

  def __call__(self, x: jax.Array, *, deterministic: Optional[bool] = None,
               rngs=None, rate=None) -> jax.Array:
    deterministic = (self.deterministic if deterministic is None
                     else deterministic)
    rate = self.rate if rate is None else rate
    if deterministic or v.static_value(rate) == 0.0:
      return x
    if not self.weights:
      raise ValueError("DropGraph: this copy's graph weights were stripped "
                       "(strip_graph_weights); it is for inference only.")
    key = _key(rngs, self.rngs, self.rng_collection, "DropGraph")
    params = {name: w[...] for name, w in self.weights.items()}
    fn = graph_signal.graph_dropgraph if self.graph else dropgraph_lib.dropgraph
    return fn(x, params, key=key, rate=rate, train=True, **self.options)


class PartialReasoning(nnx.Module):
  """:func:`~dropgraph_jax.regularizers.partial_reasoning.
  partial_reasoning` (Eq. 4, DropGraph Table 1, the registry's form:
  ``rate`` is alpha) with W ``(channels, channels)`` an ``nnx.Param``.
  With ``at_inference`` the eval pass reasons too: 'top' sampling needs
  no key; 'random' draws from the module's stream, or from a fixed key
  when it has none."""

  def __init__(self, rate: float = 0.25, *, channels: int,
               sampling: str = "random", at_inference: bool = False,
               temperature: Optional[float] = None,
               deterministic: bool = False, rng_collection: str = "dropout",
               rngs=None, param_dtype: Any = jnp.float32):
    v.check_rate("PartialReasoning", rate)
    key = (rngs.params() if isinstance(rngs, nnx.Rngs) and
           "params" in rngs else jax.random.key(0))
    self.reasoning_w = nnx.Param(partial_reasoning.init_params(
        key, channels, param_dtype)["reasoning_w"])
    self.rate, self.sampling, self.at_inference = rate, sampling, at_inference
    self.temperature, self.deterministic = temperature, deterministic
    self.rng_collection = rng_collection
    self.rngs = _stream(rngs, rng_collection, "PartialReasoning")

  def __call__(self, x: jax.Array, *, deterministic: Optional[bool] = None,
               rngs=None, rate=None) -> jax.Array:
    deterministic = (self.deterministic if deterministic is None
                     else deterministic)
    rate = self.rate if rate is None else rate
    if (deterministic and not self.at_inference) or \
        v.static_value(rate) == 0.0:
      return x
    key = None
    if self.sampling == "random":
      key = (jax.random.key(0) if deterministic and rngs is None and
             self.rngs is None else
             _key(rngs, self.rngs, self.rng_collection, "PartialReasoning"))
    return partial_reasoning.partial_reasoning(
        x, {"reasoning_w": self.reasoning_w[...]}, key=key, rate=rate,
        train=not deterministic, max_rate=self.rate, sampling=self.sampling,
        at_inference=self.at_inference, temperature=self.temperature)


def strip_graph_weights(model: nnx.Module) -> nnx.Module:
  """A copy of ``model`` without DropGraph's graph weights, for inference:
  every :class:`DropGraph` is left deterministic with no weights, so its
  eval output is the model's, bit for bit; training the copy is refused."""
  model = nnx.clone(model)
  for _, module in nnx.iter_modules(model):
    if isinstance(module, DropGraph):
      module.weights = nnx.data({})
      module.deterministic = True
  return model
