"""NNX modules: nnx.Dropout's conventions, DropGraph's GraphParam weights
with their own optimizer and an inference export without them."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import dropgraph_jax as dg
from dropgraph_jax import nnx_layers as dnn

X = jax.random.uniform(jax.random.key(0), (4, 8, 8, 16), minval=0.5,
                       maxval=1.5)
CASES = {
    "Dropout": (dnn.Dropout, {}, X),
    "SpatialDropout": (dnn.SpatialDropout, {}, X),
    "DropPath": (dnn.DropPath, {}, X),
    "DropBlock": (dnn.DropBlock, {"block_size": 3}, X),
    "Disout": (dnn.Disout, {"block_size": 3}, X),
    "VariationalDropout": (dnn.VariationalDropout, {}, X[:, 0]),
    "WordDropout": (dnn.WordDropout, {}, X[:, 0]),
    "GraphDropout": (dnn.GraphDropout, {}, X[:, 0]),
    "GraphSpatialDropout": (dnn.GraphSpatialDropout, {}, X[:, 0]),
    "GraphDisout": (dnn.GraphDisout, {}, X[:, 0]),
    "PartialReasoning": (dnn.PartialReasoning, {"channels": 16}, X),
}


class Net(nnx.Module):
  def __init__(self, rngs):
    self.conv = nnx.Conv(16, 16, (3, 3), rngs=rngs)
    self.block = dnn.DropBlock(0.2, block_size=3, rngs=rngs)
    self.graph = dnn.DropGraph((8, 8, 16), 0.2, block_size=3, rngs=rngs)
    self.head = nnx.Linear(16, 10, rngs=rngs)

  def __call__(self, x):
    h = self.graph(self.block(nnx.relu(self.conv(x))))
    return self.head(h.mean(axis=(1, 2)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_train_eval_and_call_time_overrides(name):
  cls, options, x = CASES[name]
  layer = cls(0.5, rngs=nnx.Rngs(dropout=3), **options)
  a, b = layer(x), layer(x)  # the forked stream: a new key every call
  assert a.shape == x.shape and not np.array_equal(a, b)
  layer.eval()
  assert layer.deterministic and layer(x) is x
  assert not np.array_equal(layer(x, deterministic=False), x)
  key = jax.random.key(9)
  np.testing.assert_array_equal(layer(x, deterministic=False, rngs=key),
                                layer(x, deterministic=False, rngs=key))
  layer.train()
  assert layer(x, rate=0.0) is x
  traced = jax.jit(lambda r: layer(x, rate=r, rngs=key))
  assert traced(0.3).shape == x.shape


def test_missing_rngs_and_a_rngs_passed_as_key_get_clear_errors():
  with pytest.raises(ValueError, match="training mode needs a key"):
    dnn.Dropout(0.5)(X)
  with pytest.raises(ValueError, match="got an nnx Rngs; pass key=rngs"):
    dg.dropout(X, key=nnx.Rngs(0), rate=0.5, train=True)
  with pytest.raises(ValueError, match="rate must be"):
    dnn.Dropout(1.5)


@pytest.mark.slow
def test_model_eval_flips_every_regularizer_and_matches_no_regularizer():
  model = Net(nnx.Rngs(params=0, dropout=1))
  model.eval()
  plain = model.head(nnx.relu(model.conv(X)).mean(axis=(1, 2)))
  np.testing.assert_array_equal(model(X), plain)
  model.train()
  assert not np.array_equal(model(X), plain)


@pytest.mark.slow
def test_graph_weights_get_their_own_optimizer_and_are_stripped_for_export():
  model = Net(nnx.Rngs(params=0, dropout=1))
  backbone = nnx.All(nnx.Param, nnx.Not(dnn.GraphParam))
  main_opt = nnx.Optimizer(model, optax.sgd(0.1), wrt=backbone)
  graph_opt = nnx.Optimizer(model, optax.sgd(1.0), wrt=dnn.GraphParam)
  graph_before = jax.tree.map(jnp.copy, nnx.state(model, dnn.GraphParam))
  conv_before = jnp.copy(model.conv.kernel[...])
  y = jnp.arange(4) % 10

  @nnx.jit
  def step(model, main_opt, graph_opt):
    def loss_fn(m):
      return optax.softmax_cross_entropy_with_integer_labels(m(X), y).mean()
    grads = nnx.grad(loss_fn, argnums=nnx.DiffState(0, nnx.Param))(model)
    main_opt.update(model, nnx.filter_state(grads, backbone))
    graph_opt.update(model, nnx.filter_state(grads, dnn.GraphParam))

  step(model, main_opt, graph_opt)
  graph_after = nnx.state(model, dnn.GraphParam)
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), graph_before,
                         graph_after)
  assert any(jax.tree.leaves(changed))
  assert bool(jnp.any(model.conv.kernel[...] != conv_before))
  model.eval()
  exported = dnn.strip_graph_weights(model)
  assert not jax.tree.leaves(nnx.state(exported, dnn.GraphParam))
  np.testing.assert_array_equal(exported(X), model(X))
  with pytest.raises(ValueError, match="stripped"):
    exported.graph(X, deterministic=False)


@pytest.mark.slow
def test_the_resnet_family_trains_and_evaluates_from_nnx_through_the_bridge():
  """Linen models with a policy run under ``nnx.bridge.ToNNX``: a step
  with ``nnx.Optimizer`` (batch statistics updated through
  ``mutable=['batch_stats']``) and eval calls with ``train=False``."""
  from flax.nnx import bridge

  from dropgraph_jax.models import get_model, list_sites
  from dropgraph_jax.patterns import Policy, RegularizerSpec
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  sites = list_sites(get_model("resnet_tiny"), x.shape)
  policy = Policy({s: RegularizerSpec("drop_block", {"rate": 0.2,
                                                     "block_size": 3})
                   for s in sites if s.startswith("stage3")})
  model = bridge.ToNNX(get_model("resnet_tiny", policy=policy),
                       rngs=nnx.Rngs(params=0, dropout=1))
  bridge.lazy_init(model, x, train=False)
  opt = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
  before = model(x, train=False)

  @nnx.jit
  def step(model, opt):
    def loss_fn(m):
      logits = m(x, train=True, mutable=["batch_stats"])
      return optax.softmax_cross_entropy_with_integer_labels(
          logits, jnp.array([1, 2])).mean()
    grads = nnx.grad(loss_fn, argnums=nnx.DiffState(0, nnx.Param))(model)
    opt.update(model, grads)

  step(model, opt)
  after = model(x, train=False)
  assert not np.array_equal(before, after)
  np.testing.assert_array_equal(after, model(x, train=False))
