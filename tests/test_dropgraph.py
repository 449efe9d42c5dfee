"""DropGraph (issue: DropGraph): Algorithm 1, Eq. 6, Tables 6 and 8."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import dropgraph_jax as dg
from dropgraph_jax import layers
from dropgraph_jax.regularizers import block_mask
from dropgraph_jax.regularizers import dropgraph as pg
from dropgraph_jax.regularizers import dropgraph_generators as generators

SHAPE = (4, 12, 12, 16)


def _x(shape=SHAPE, dtype=jnp.float32, seed=0):
  return jax.random.normal(jax.random.key(seed), shape).astype(dtype)


def _params(shape=SHAPE, **kw):
  return pg.init_params(jax.random.key(1), shape, **kw)


def _call(x, params, key=jax.random.key(2), rate=0.3, **kw):
  kw.setdefault("block_size", 3)
  return dg.dropgraph(x, params, key=key, rate=rate, train=True, **kw)


def test_identity_at_inference_needs_no_params_or_key():
  x = _x()
  assert dg.dropgraph(x, None, key=None, rate=0.3, train=False,
                      block_size=3) is x
  assert dg.dropgraph(x, None, key=None, rate=0.0, train=True,
                      block_size=3) is x


def test_masked_fraction_matches_rho():
  shape = (32, 14, 14, 32)
  x = _x(shape) + 10.0  # keeps x away from the (small) distortions
  rate = 0.1
  y = np.asarray(_call(x, _params(shape), rate=rate))
  changed = (y != np.asarray(x)).mean()
  gamma = block_mask.seed_rate(rate, 14, 14, 3, 3)
  cover = np.minimum(np.arange(14), 11) - np.maximum(0, np.arange(14) - 2) + 1
  expected = np.mean(1 - (1 - gamma) ** np.outer(cover, cover))
  assert abs(changed - expected) < 0.01
  assert abs(changed - rate) < 0.3 * rate


@pytest.mark.parametrize("alpha,expected_k", [(0.2, 29), (0.05, 7), (1.0, 144)])
def test_vertex_count_matches_alpha(alpha, expected_k):
  x = _x()
  assert pg.num_vertices("t", alpha, 12, 12) == expected_k
  vertices, positions = pg.sample_vertices(jax.random.key(0), x, expected_k)
  assert vertices.shape == (4, expected_k, 16)
  pos = np.asarray(positions)
  for n in range(4):  # distinct positions, and V are X's vectors there
    assert len(set(pos[n])) == expected_k
    np.testing.assert_array_equal(
        np.asarray(vertices[n]), np.asarray(x[n]).reshape(144, 16)[pos[n]])
  assert not (pos == pos[:1]).all()  # per-example positions


def test_adjacency_options_have_their_defining_property():
  v = _x((3, 9, 16))
  k = 9
  params = {"graph_adjacency_logits": jax.random.normal(jax.random.key(3),
                                                        (k, k))}
  mats = {name: np.asarray(pg.adjacency_matrix(v, name, 4.0, params))
          for name in pg.ADJACENCIES}
  for name, a in mats.items():
    assert a.shape == (3, k, k)
    assert (a >= 0).all(), name
  vf = np.asarray(v, np.float64)
  sim = np.einsum("nkc,njc->nkj", vf, vf) / 4.0
  soft = np.exp(sim - sim.max(-1, keepdims=True))
  soft /= soft.sum(-1, keepdims=True)
  np.testing.assert_allclose(mats["similarity"], soft, rtol=1e-4, atol=1e-6)
  # Eq. 6: (1 - softmax) / (K - 1); its rows sum to 1, and the most similar
  # pair gets the lowest weight.
  np.testing.assert_allclose(mats["dissimilarity"], (1 - soft) / (k - 1),
                             rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(mats["dissimilarity"].sum(-1), 1.0, rtol=1e-5)
  assert (mats["dissimilarity"].argmin(-1) == soft.argmax(-1)).all()
  np.testing.assert_array_equal(mats["identity"], np.broadcast_to(np.eye(k),
                                                                  (3, k, k)))
  np.testing.assert_allclose(mats["uniform"], 1.0 / k)
  np.testing.assert_array_equal(mats["zero"], 0.0)
  # Learned: independent of V, rows are a softmax of the free parameter.
  other = np.asarray(pg.adjacency_matrix(v * 3.0 + 1.0, "learned", 4.0,
                                         params))
  np.testing.assert_array_equal(mats["learned"], other)
  np.testing.assert_allclose(mats["learned"].sum(-1), 1.0, rtol=1e-5)


def test_single_vertex_uses_max_cardinality_guard():
  v = _x((2, 1, 8))
  a = np.asarray(pg.adjacency_matrix(v, "dissimilarity", 1.0))
  np.testing.assert_array_equal(a, 0.0)  # (1 - 1) / max(0, 1)


def test_zero_adjacency_reduces_to_block_dropping():
  x = _x()
  key = jax.random.key(4)
  y = np.asarray(_call(x, _params(adjacency="zero"), key=key,
                       adjacency="zero"))
  keep = np.asarray(block_mask.sample_keep_mask(
      jax.random.split(key, 5)[0], SHAPE, 0.3, (3, 3)))
  # The distortion term is exactly zero: y = X * M.
  np.testing.assert_array_equal(y, np.where(keep, np.asarray(x), 0.0))
  d = pg.vertex_distortions(x, *pg.sample_vertices(key, x, 29),
                            _params(adjacency="zero"), key,
                            adjacency="zero", generator="gcn",
                            temperature=4.0)
  np.testing.assert_array_equal(d, 0.0)


def test_distortions_follow_algorithm_1_expand_and_factors():
  x = _x() + 10.0
  key = jax.random.key(5)
  params = _params()
  y = np.asarray(_call(x, params, key=key))
  keep = np.asarray(block_mask.sample_keep_mask(
      jax.random.split(key, 5)[0], SHAPE, 0.3, (3, 3)))
  np.testing.assert_array_equal(y[keep], np.asarray(x)[keep])
  vertices, positions = pg.sample_vertices(jax.random.split(key, 5)[1], x, 29)
  d = np.asarray(pg.vertex_distortions(
      x, vertices, positions, params, key, adjacency="dissimilarity",
      generator="gcn", temperature=4.0))
  assert d.shape == (4, 29) and np.abs(d).max() > 0
  # Every distorted unit is (a vertex's value) x (a factor in (0, 1)).
  for n in range(4):
    vals = y[n][~keep[n]]
    bound = np.abs(d[n]).max()
    assert (np.abs(vals) < bound + 1e-6).all()
  # Pooled generators give one value per example.
  d_pool = pg.vertex_distortions(x, vertices, positions, params, key,
                                 adjacency="dissimilarity",
                                 generator="gcn_avgpool", temperature=4.0)
  np.testing.assert_allclose(np.asarray(d_pool)[:, 0], d.mean(1), rtol=1e-5)


@pytest.mark.parametrize("generator", pg.GENERATORS)
def test_every_table8_generator_runs_and_is_deterministic(generator):
  x = _x()
  params = _params(generator=generator)
  a = _call(x, params, generator=generator)
  b = _call(x, params, generator=generator)
  c = _call(x, params, generator=generator, key=jax.random.key(9))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(np.asarray(a), np.asarray(c))
  assert set(pg.TABLE8_GENERATORS.values()) == set(pg.GENERATORS)


def test_conv_generator_matches_lax_conv_at_vertices():
  x = _x((2, 10, 11, 8))
  params = _params((2, 10, 11, 8), generator="dilated_conv")
  _, positions = pg.sample_vertices(jax.random.key(0), x, 22)
  got = generators._conv_at_vertices(x, positions, params, dilation=3)
  hidden = jax.nn.relu(jax.lax.conv_general_dilated(
      x, params["graph_conv_w1"], (1, 1), "SAME", rhs_dilation=(3, 3),
      dimension_numbers=("NHWC", "HWIO", "NHWC")))
  full = hidden @ params["graph_conv_w2"]  # D over the whole map
  want = jnp.take_along_axis(full.reshape(2, 110, 8), positions[..., None],
                             axis=1).mean(-1)  # channel-pooled at vertices
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_pooling_folded_into_gcn_equals_pooling_its_output():
  v = _x((2, 9, 16))
  params = _params((2, 3, 3, 16), alpha=1.0)
  a = pg.adjacency_matrix(v, "dissimilarity", 4.0)
  h1 = jax.nn.relu(a @ v @ params["graph_w_in"])
  h2 = h1 + jax.nn.relu(a @ h1 @ params["graph_w_mid"])
  d_full = a @ h2 @ params["graph_w_out"]  # (N, K, C) as the paper writes it
  np.testing.assert_allclose(generators._gcn(a, v, params), d_full.mean(-1),
                             rtol=1e-4, atol=1e-6)


def test_vertex_gradient_option():
  x = _x()
  params = _params()
  key = jax.random.key(6)
  keep = np.asarray(block_mask.sample_keep_mask(
      jax.random.split(key, 5)[0], SHAPE, 0.3, (3, 3)))

  def grad_x(vertex_gradient):
    return np.asarray(jax.grad(lambda x: jnp.sum(_call(
        x, params, key=key, vertex_gradient=vertex_gradient)))(x))

  detached = grad_x(False)
  # Default: the backbone gradient is exactly that of X * M.
  np.testing.assert_array_equal(detached, keep.astype(np.float32))
  # Fully differentiable: vertices also receive gradient through the graph.
  full = grad_x(True)
  assert np.abs(full - detached).max() > 0


@pytest.mark.parametrize("adjacency", ["dissimilarity", "learned"])
def test_gradients_reach_the_graph_weights(adjacency):
  x = _x()
  params = _params(adjacency=adjacency)
  grads = jax.grad(lambda p: jnp.sum(_call(x, p, adjacency=adjacency) ** 2))(
      params)
  for name, g in grads.items():
    assert np.abs(np.asarray(g)).sum() > 0, name


def test_same_key_same_output_and_jit_agrees():
  x = _x()
  params = _params()
  a = _call(x, params)
  b = jax.jit(lambda x, p, k: dg.dropgraph(x, p, key=k, rate=0.3, train=True,
                                           block_size=3))(
                                               x, params, jax.random.key(2))
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_input(dtype):
  x = _x(dtype=dtype)
  y = _call(x, _params())
  assert y.dtype == dtype and np.isfinite(np.asarray(y, np.float32)).all()


def test_bad_input_raises_at_trace_time():
  x = _x()
  p = _params()
  for alpha in (0.0, -0.1, 1.5):
    with pytest.raises(ValueError, match=f"alpha.*got {alpha}"):
      _call(x, p, alpha=alpha)
  with pytest.raises(ValueError, match=r"rate must be in \[0, 1\), got 1.2"):
    _call(x, p, rate=1.2)
  with pytest.raises(ValueError, match="block_size 13 is larger"):
    _call(x, p, block_size=13)
  with pytest.raises(ValueError, match="samples no vertex from a 2x2 map"):
    _call(_x((1, 2, 2, 4)), None, alpha=0.1, block_size=1)
  with pytest.raises(ValueError, match="adjacency must be one of"):
    _call(x, p, adjacency="cosine")
  with pytest.raises(ValueError, match="generator must be one of"):
    _call(x, p, generator="gat")
  with pytest.raises(ValueError, match="params must have shapes"):
    _call(x, _params(generator="conv"))
  with pytest.raises(ValueError, match="temperature"):
    _call(x, p, temperature=0.0)


def test_data_parallel_mesh_and_traced_rate():
  mesh = jax.make_mesh((8,), ("data",),
                       axis_types=(jax.sharding.AxisType.Explicit,))
  shape = (16, 8, 8, 8)
  one = _x((1,) + shape[1:]) + 5.0
  x = jnp.repeat(one, 16, axis=0)
  params = _params(shape)
  step = jax.jit(lambda x, p, k, r: dg.dropgraph(
      x, p, key=k, rate=r, train=True, block_size=3))
  with jax.set_mesh(mesh):
    y = step(jax.device_put(x, NamedSharding(mesh, P("data"))), params,
             jax.random.key(0), jnp.float32(0.3))
  assert y.sharding.spec[0] == "data"
  changed = np.asarray(y) != np.asarray(x)
  per_device = changed.reshape((8, 2) + shape[1:])
  assert len({per_device[d].tobytes() for d in range(8)}) == 8
  np.testing.assert_allclose(
      np.asarray(y), np.asarray(step(x, params, jax.random.key(0),
                                     jnp.float32(0.3))), rtol=1e-5, atol=1e-6)


class _Block(nn.Module):
  """A conv block with DropGraph after each activation and on the shortcut,
  the placement of the DropGraph appendix (Fig. 5)."""
  use_dropgraph: bool

  @nn.compact
  def __call__(self, x, train):
    def reg(h, name):
      if not self.use_dropgraph:
        return h
      return layers.DropGraph(rate=0.1, block_size=3, name=name)(
          h, deterministic=not train)
    shortcut = reg(x, "dg_shortcut")
    h = reg(nn.relu(nn.Conv(8, (3, 3), name="conv1")(x)), "dg1")
    h = nn.Conv(8, (3, 3), name="conv2")(h)
    return jnp.mean(nn.relu(h + shortcut), axis=(1, 2))


def test_inference_program_identical_to_model_without_dropgraph():
  x = _x((2, 8, 8, 8))
  with_dg, plain = _Block(True), _Block(False)
  variables = with_dg.init(jax.random.key(0), x, False)
  assert any(k.startswith("graph_") for k in variables["params"]["dg1"])
  stripped = {"params": dg.strip_graph_params(variables["params"])}
  assert set(stripped["params"]) == {"conv1", "conv2"}
  ref_vars = plain.init(jax.random.key(0), x, False)
  np.testing.assert_array_equal(with_dg.apply(variables, x, False),
                                with_dg.apply(stripped, x, False))
  np.testing.assert_array_equal(with_dg.apply(stripped, x, False),
                                plain.apply(stripped, x, False))

  def hlo(model, variables):
    def forward(v, x):
      return model.apply(v, x, False)
    return jax.jit(forward).lower(variables, x).as_text()

  assert hlo(with_dg, stripped) == hlo(plain, ref_vars)
  # With the full tree the graph weights are unused inputs: the compiled
  # computation has the same instructions apart from those parameters.
  def ops(model, variables):
    text = jax.jit(lambda v, x: model.apply(v, x, False)).lower(
        variables, x).compile().as_text()
    return sorted(line.split("=", 1)[1].split("(")[0].strip()
                  for line in text.splitlines()
                  if "=" in line and " parameter(" not in line
                  and line.strip().startswith("%"))
  assert ops(with_dg, variables) == ops(plain, ref_vars)


@pytest.mark.slow
def test_linen_module_trains_its_weights_in_a_model():
  x = _x((2, 8, 8, 8))
  model = _Block(True)
  variables = model.init(jax.random.key(0), x, False)

  def loss(params):
    out = model.apply({"params": params}, x, True,
                      rngs={"dropout": jax.random.key(1)})
    return jnp.sum(out ** 2)

  grads = jax.grad(loss)(variables["params"])
  for name in ("graph_w_in", "graph_w_mid", "graph_w_out"):
    assert np.abs(np.asarray(grads["dg1"][name])).sum() > 0


def test_rescale_divides_by_the_kept_fraction():
  """``rescale=True`` (count-based, as DropBlock and Disout) multiplies the
  paper's output by numel / kept; the default leaves it as Algorithm 1."""
  x, params = _x(), _params()
  plain = np.asarray(_call(x, params, rate=0.3))
  scaled = np.asarray(_call(x, params, rate=0.3, rescale=True))
  kept = np.asarray(_call(jnp.ones_like(x), params, rate=0.3,
                          adjacency="zero"))  # 1 kept, 0 distorted
  factor = kept.size / kept.sum()
  assert factor > 1.05
  np.testing.assert_allclose(scaled, plain * factor, rtol=1e-5, atol=1e-6)


def test_strip_and_labels_find_graph_weights_by_place_not_prefix():
  """A user's module named ``graph_encoder`` survives stripping; the
  labels give exactly DropGraph's weights to their own optimizer."""

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train):
      x = nn.Dense(8, name="graph_encoder")(x)
      x = layers.DropGraph(rate=0.2, block_size=1)(
          x, deterministic=not train)
      return nn.Dense(3, name="head")(x)

  x = jnp.ones((2, 4, 4, 8))
  net = Net()
  params = net.init({"params": jax.random.key(0),
                     "dropout": jax.random.key(1)}, x, True)["params"]
  stripped = dg.strip_graph_params(params)
  assert set(stripped) == {"graph_encoder", "head"}
  np.testing.assert_array_equal(net.apply({"params": stripped}, x, False),
                                net.apply({"params": params}, x, False))
  labels = pg.graph_param_labels(params)
  assert labels["graph_encoder"] == {"kernel": "backbone", "bias": "backbone"}
  assert set(labels["DropGraph_0"].values()) == {"graph"}
  tx = optax.multi_transform({"backbone": optax.sgd(0.1),
                              "graph": optax.adam(1e-3)}, labels)
  assert jax.tree.leaves(tx.init(params))
