"""Regularizers on graph signals (DropGraph paper, Sec. 4.3-4.4).

The generic contract (identity, HLO, keys, jit, dtypes, gradients) runs on
them through regularizer_cases.py; here: the mapping onto the image
versions, what each one drops, and their Linen and registry entries.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dropgraph_jax as dg
from dropgraph_jax import graph_layers
from dropgraph_jax.patterns.policy import RegularizerSpec, apply_spec
from dropgraph_jax.regularizers import dropgraph as dropgraph_lib
from dropgraph_jax.regularizers import graph_signal as gs
from dropgraph_jax.regularizers import registry

SHAPE = (3, 20, 8)
GRAPH_NAMES = ("graph_dropout", "graph_spatial_dropout", "graph_disout",
               "graph_dropgraph")


def _x(shape=SHAPE, seed=0):
  return jax.random.uniform(jax.random.key(seed), shape, jnp.float32, 0.5,
                            1.5)


def _params(shape=SHAPE, **kw):
  return gs.init_graph_params(jax.random.key(1), shape, **kw)


def _jit(fn, x, **kw):
  """``fn(x, **kw)`` as one compiled program (eager op-by-op is slower)."""
  return jax.jit(lambda x: fn(x, **kw))(x)


# name -> (graph function, its image version on (B, N, 1, C) with s = 1)
PAIRS = {
    "graph_dropout": (dg.graph_dropout, dg.dropout),
    "graph_spatial_dropout": (dg.graph_spatial_dropout, dg.spatial_dropout),
    "graph_disout": (dg.graph_disout,
                     functools.partial(dg.disout, block_size=1)),
    "graph_dropgraph": (
        lambda x, **kw: dg.graph_dropgraph(x, _params(x.shape), **kw),
        lambda x, **kw: dg.dropgraph(
            x, dropgraph_lib.init_params(jax.random.key(1), x.shape), **kw,
            block_size=1)),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_nc_and_bnc_agree_with_reshaping(name):
  graph_fn, image_fn = PAIRS[name]
  x = _x()
  kw = dict(key=jax.random.key(2), rate=0.4, train=True)
  y = _jit(graph_fn, x, **kw)
  assert y.shape == x.shape and y.dtype == x.dtype
  image = _jit(image_fn, x[:, :, None, :], **kw)
  np.testing.assert_array_equal(y, image[:, :, 0])
  assert not np.array_equal(y, x)
  # (N, C) is the single graph (1, N, C).
  np.testing.assert_array_equal(_jit(graph_fn, x[0], **kw),
                                _jit(graph_fn, x[:1], **kw)[0])


@pytest.mark.parametrize("alpha,nodes,expected", [(0.15, 20, 3),
                                                  (0.15, 39, 6), (0.2, 20, 4),
                                                  (0.15, 2708, 406),
                                                  (1.0, 7, 7)])
def test_vertex_count_is_round_alpha_n(alpha, nodes, expected):
  assert gs.num_vertices("t", alpha, nodes) == expected
  shapes = gs.graph_param_shapes((2, nodes, 8), alpha=alpha,
                                 adjacency="learned")
  assert shapes["graph_adjacency_logits"] == (expected, expected)


def test_distortions_are_read_from_round_alpha_n_nodes():
  """With vertex_gradient the loss reaches exactly K = round(alpha N) nodes
  per graph beyond the kept units' own gradient."""
  x = _x((2, 20, 8))

  def grad(vertex_gradient):
    def total(x):
      return jnp.sum(dg.graph_dropgraph(
          x, None, key=jax.random.key(3), rate=0.5, train=True, alpha=0.15,
          generator="avg_pool", vertex_gradient=vertex_gradient))
    return np.asarray(jax.jit(jax.grad(total))(x))

  read = np.abs(grad(True) - grad(False)).sum(-1) > 0
  np.testing.assert_array_equal(read.sum(-1), [3, 3])


def test_too_small_alpha_names_the_nodes():
  with pytest.raises(ValueError, match=r"graph_dropgraph: alpha=0.01 .* 20 "
                                       "nodes"):
    dg.graph_dropgraph(_x(), None, key=None, rate=0.1, train=False,
                       alpha=0.01)


def test_shared_channels_drop_whole_nodes():
  x = _x((2, 40, 8))
  kw = dict(key=jax.random.key(4), rate=0.4, train=True)
  y = _jit(dg.graph_dropgraph, x, params=_params(x.shape),
           share_channels=True, **kw)
  same = np.asarray(y) == np.asarray(x)
  whole = same.all(-1) | (~same).all(-1)
  assert whole.all()
  assert same.all(-1).any() and (~same).all(-1).any()
  per_unit = _jit(dg.graph_dropgraph, x, params=_params(x.shape), **kw)
  same = np.asarray(per_unit) == np.asarray(x)
  assert not (same.all(-1) | (~same).all(-1)).all()


def test_spatial_dropout_drops_whole_channels_per_graph():
  x = _x((4, 20, 16))
  y = np.asarray(dg.graph_spatial_dropout(x, key=jax.random.key(5), rate=0.5,
                                          train=True))
  zero = y == 0
  assert (zero.all(1) | (~zero).all(1)).all()  # all nodes of (graph, c)
  dropped = zero.all(1)
  assert dropped.any() and (~dropped).any()
  assert not (dropped == dropped[:1]).all()  # masks differ between graphs
  np.testing.assert_allclose(y[~zero], 2 * np.asarray(x)[~zero], rtol=1e-6)


@pytest.mark.parametrize("with_weight", [True, False])
def test_disout_noise_std_is_alpha_w_std_x(with_weight):
  x = _x((2, 1000, 4))
  w = np.array([[0.5, -1.0, 0.1], [1.0, 0.2, 0.0], [-3.0, 2.0, 1.0],
                [4.0, 0.0, -4.0]], np.float32)  # max_o: 0.5, 1, 2, 4
  alpha = 3.0
  y = np.asarray(_jit(
      dg.graph_disout, x, key=jax.random.key(6), rate=0.3, train=True,
      alpha=alpha, next_weight=jnp.asarray(w) if with_weight else None))
  ratio = y / np.asarray(x)
  scale = np.median(ratio)  # 70% of the units are kept, scaled alike
  distorted = ~np.isclose(ratio, scale, rtol=1e-5)
  assert abs(distorted.mean() - 0.3) < 0.03
  w_c = 0.1 * w.max(1) if with_weight else np.full(4, 0.01)
  expected = alpha * w_c * np.std(np.asarray(x))
  noise = np.where(distorted, y / scale, np.nan)
  np.testing.assert_allclose(np.nanstd(noise, axis=(0, 1)), expected,
                             rtol=0.1)


def test_disout_next_weight_must_be_dense_c_by_cout():
  with pytest.raises(ValueError, match=r"graph_disout: next_weight .* C = 8"):
    dg.graph_disout(_x(), key=jax.random.key(0), rate=0.1, train=True,
                    next_weight=jnp.ones((1, 1, 8, 4)))
  with pytest.raises(ValueError, match="next_weight"):
    dg.graph_disout(_x(), key=jax.random.key(0), rate=0.1, train=True,
                    next_weight=jnp.ones((5, 4)))


@pytest.mark.parametrize("generator", ["conv", "dilated_conv",
                                       "dilated_conv_avgpool", "bogus"])
def test_spatial_generators_are_refused(generator):
  valid = r"\['gcn', 'gcn_avgpool', 'noise', 'avg_pool'\]"
  with pytest.raises(ValueError, match=f"graph_dropgraph: generator.*{valid}"):
    dg.graph_dropgraph(_x(), None, key=None, rate=0.1, train=False,
                       generator=generator)
  with pytest.raises(ValueError, match=f"init_graph_params: .*{valid}"):
    _params(generator=generator)
  with pytest.raises(ValueError, match=valid):
    graph_layers.GraphDropGraph(generator=generator).init(
        jax.random.key(0), _x(), True)


@pytest.mark.parametrize("generator", gs.GRAPH_GENERATORS)
def test_graph_generators_run(generator):
  x = _x()
  y = _jit(dg.graph_dropgraph, x, params=_params(generator=generator),
           key=jax.random.key(0), rate=0.3, train=True, generator=generator)
  assert np.isfinite(np.asarray(y)).all() and not np.array_equal(y, x)


def test_errors_name_the_graph_function():
  with pytest.raises(ValueError, match=r"graph_dropout: x must be \(N, C\) "
                                       r"or \(B, N, C\) \(rank 2 or 3\)"):
    dg.graph_dropout(jnp.ones((8,)), key=None, rate=0.1, train=False)
  with pytest.raises(ValueError, match="graph_dropgraph: params must have"):
    dg.graph_dropgraph(_x(), {}, key=jax.random.key(0), rate=0.1,
                       train=True)
  with pytest.raises(ValueError, match="graph_dropgraph: temperature"):
    dg.graph_dropgraph(_x(), None, key=None, rate=0.1, train=False,
                       temperature=0.0)


MODULES = {
    "GraphDropout": graph_layers.GraphDropout(rate=0.3),
    "GraphSpatialDropout": graph_layers.GraphSpatialDropout(rate=0.3),
    "GraphDisout": graph_layers.GraphDisout(rate=0.3, alpha=2.0),
    "GraphDropGraph": graph_layers.GraphDropGraph(rate=0.3, alpha=0.15),
}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_linen_identity_when_deterministic(name):
  module, x = MODULES[name], _x()
  variables = module.init(jax.random.key(0), x, True)
  assert module.apply(variables, x, True) is x  # no rng needed
  y = jax.jit(lambda v, x: module.apply(
      v, x, False, rngs={"dropout": jax.random.key(1)}))(variables, x)
  assert y.shape == x.shape and not np.array_equal(y, x)


def test_linen_graph_weights_train():
  module, x = MODULES["GraphDropGraph"], _x()
  params = module.init(jax.random.key(0), x, True)["params"]
  assert sorted(params) == ["graph_w_in", "graph_w_mid", "graph_w_out"]
  assert params["graph_w_in"].shape == (8, 2)
  assert dg.strip_graph_params({"dg": params}) == {}

  def loss(p):
    y = module.apply({"params": p}, x, False,
                     rngs={"dropout": jax.random.key(1)})
    return jnp.sum(y ** 2)

  grads = jax.jit(jax.grad(loss))(params)
  for name in params:
    assert np.abs(np.asarray(grads[name])).sum() > 0, name


def test_linen_disout_reads_next_weight_and_traced_rate():
  module, x = MODULES["GraphDisout"], _x()
  rngs = {"dropout": jax.random.key(1)}
  w = jnp.full((8, 4), 5.0)
  step = jax.jit(lambda r, w: module.apply({}, x, False, r, rngs=rngs,
                                           next_weight=w))
  small = step(jnp.float32(0.3), jnp.zeros((8, 4)))
  big = step(jnp.float32(0.3), w)
  assert (np.asarray(small) != np.asarray(big)).any()
  np.testing.assert_array_equal(step(jnp.float32(0.0), w), x)


def test_registry_lists_them_and_policies_apply_them():
  for name in GRAPH_NAMES:
    entry = registry.get(name)
    assert entry.layout == "NC" and entry.fn is getattr(dg, name)
    assert entry.needs_params == (name == "graph_dropgraph")
    # What classifier.IMAGE_REGULARIZERS selects on: not graph ones.
    assert entry.layout not in ("NHWC", "N...", "any")
  assert registry.get("graph_disout").config_options == ("rate",)
  assert "next_weight" in registry.option_names("graph_disout")
  x, key = _x(), jax.random.key(0)
  for name in GRAPH_NAMES:
    options = {"rate": 0.2, **({"alpha": 0.15} if name == "graph_dropgraph"
                               else {})}
    spec = RegularizerSpec(name, options).validate()
    params = _params(alpha=0.15) if name == "graph_dropgraph" else None
    y = apply_spec(spec, x, key=key, train=True, params=params)
    assert y.shape == x.shape and not np.array_equal(y, x)
    assert apply_spec(spec, x, key=None, train=False, params=None) is x


def test_eval_with_next_weight_adds_nothing_to_the_program():
  x, w = _x(), jnp.ones((8, 4))

  def with_reg(x, w):
    return jnp.tanh(dg.graph_disout(x, key=None, rate=0.3, train=False,
                                    next_weight=w))

  def plain(x, w):
    return jnp.tanh(x)

  def text(f):
    return jax.jit(f).lower(x, w).as_text().replace(f.__name__, "f")

  assert text(with_reg) == text(plain)
