"""Eq. 4 of the DropGraph paper (its Table 1): partial graph reasoning."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dropgraph_jax as dg
from dropgraph_jax.regularizers import dropgraph as dropgraph_lib
from dropgraph_jax.regularizers import partial_reasoning as pr

X = jax.random.normal(jax.random.key(0), (2, 8, 8, 4))
PARAMS = pr.init_params(jax.random.key(1), 4)


@pytest.mark.parametrize("sampling", ["random", "top"])
def test_exactly_the_sampled_vectors_become_a_v_w(sampling):
  y = pr.partial_graph_reasoning(X, PARAMS, key=jax.random.key(2),
                                 train=True, alpha=0.25, sampling=sampling)
  changed = np.asarray(jnp.any(y != X, axis=-1)).reshape(2, 64)
  assert changed.sum(axis=1).tolist() == [16, 16]  # K = 0.25 * 64
  # Recompute Eq. 4 by hand at the changed positions.
  for i in range(2):
    pos = np.flatnonzero(changed[i])
    vert = np.asarray(X[i]).reshape(64, 4)[pos]
    a = dropgraph_lib.adjacency_matrix(jnp.asarray(vert)[None],
                                       "dissimilarity", 2.0)[0]
    expected = np.asarray(a @ vert @ PARAMS["reasoning_w"])
    np.testing.assert_allclose(np.asarray(y[i]).reshape(64, 4)[pos],
                               expected, rtol=1e-5, atol=1e-5)
  if sampling == "top":  # the largest mean |activation| positions
    score = np.abs(np.asarray(X)).mean(-1).reshape(2, 64)
    top = np.argsort(-score, axis=1)[:, :16]
    assert all(set(np.flatnonzero(changed[i])) == set(top[i])
               for i in range(2))


def test_training_only_or_training_and_inference():
  assert pr.partial_graph_reasoning(X, PARAMS, key=None, train=False) is X
  y = pr.partial_graph_reasoning(X, PARAMS, key=None, train=False,
                                 sampling="top", at_inference=True)
  assert bool(jnp.any(y != X))
  # 'top' is deterministic: the same output without a key, every call.
  np.testing.assert_array_equal(y, pr.partial_graph_reasoning(
      X, PARAMS, key=None, train=True, sampling="top"))


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="sampling must be one of"):
    pr.partial_graph_reasoning(X, PARAMS, key=None, train=True,
                               sampling="max")
  with pytest.raises(ValueError, match="alpha"):
    pr.partial_graph_reasoning(X, PARAMS, key=None, train=True, alpha=0.0)
  with pytest.raises(ValueError, match="reasoning_w.. must be"):
    pr.partial_graph_reasoning(X, pr.init_params(jax.random.key(0), 3),
                               key=jax.random.key(0), train=True)
  with pytest.raises(ValueError, match="key"):
    pr.partial_graph_reasoning(X, PARAMS, key=None, train=True)


def test_linen_module_trains_w_and_follows_deterministic():
  layer = dg.layers.PartialGraphReasoning(alpha=0.25)
  variables = layer.init({"params": jax.random.key(0),
                          "dropout": jax.random.key(1)}, X,
                         deterministic=False)
  assert variables["params"]["reasoning_w"].shape == (4, 4)
  assert layer.apply(variables, X, deterministic=True) is X

  def loss(params):
    y = layer.apply({"params": params}, X, deterministic=False,
                    rngs={"dropout": jax.random.key(3)})
    return jnp.sum(y ** 2)
  grad = jax.grad(loss)(variables["params"])["reasoning_w"]
  assert float(jnp.abs(grad).sum()) > 0
  assert isinstance(layer, nn.Module)


def test_the_registry_form_ramps_and_equals_eq4_at_a_static_rate():
  x = jax.random.normal(jax.random.key(5), (2, 8, 8, 4))
  key = jax.random.key(2)
  paper = pr.partial_graph_reasoning(x, PARAMS, key=key, train=True,
                                     alpha=0.25)
  np.testing.assert_array_equal(pr.partial_reasoning(
      x, PARAMS, key=key, rate=0.25, train=True), paper)
  # A traced rate (a ramp) replaces the first round(rate * HW) of the
  # vertices the static max_rate ranks: half the ramp, half of them.
  half = jax.jit(lambda r: pr.partial_reasoning(
      x, PARAMS, key=key, rate=r, train=True, max_rate=0.25))(
          jnp.float32(0.125))
  changed = np.asarray(jnp.any(half != x, axis=-1)).reshape(2, 64)
  assert changed.sum(axis=1).tolist() == [8, 8]
  assert set(np.flatnonzero(changed[0])) < set(np.flatnonzero(
      np.asarray(jnp.any(paper != x, axis=-1)).reshape(2, 64)[0]))


@pytest.mark.slow
def test_a_policy_places_it_at_model_sites_kept_at_inference_if_asked():
  from dropgraph_jax.models import get_model
  from dropgraph_jax.patterns import Policy, RegularizerSpec
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))

  def model(at_inference):
    spec = RegularizerSpec("partial_reasoning", {
        "rate": 0.25, "sampling": "top",
        "at_inference": at_inference}).validate()
    return get_model("resnet_tiny", num_classes=10, policy=Policy(
        {"stage4/block0/relu2": spec}))

  variables = model(False).init({"params": jax.random.key(1),
                                 "dropout": jax.random.key(1)}, x,
                                train=False)
  site = variables["params"]["stage4/block0"]["relu2"]
  assert site["partial_reasoning"]["reasoning_w"].shape[0] == site[
      "partial_reasoning"]["reasoning_w"].shape[1] > 0
  step = jax.jit(lambda v, f: model(False).apply(
      v, x, train=True, rate_factor=f, rngs={"dropout": jax.random.key(2)},
      mutable=["batch_stats"])[0])
  assert not np.array_equal(step(variables, 0.5), step(variables, 1.0))
  plain = model(False).apply(variables, x, train=False)
  kept = model(True).apply(variables, x, train=False)
  assert not np.allclose(plain, kept)


def test_a_traced_rate_that_rounds_to_no_vertex_is_finite():
  x = jax.random.normal(jax.random.key(5), (2, 4, 4, 4))

  def loss(w, r):
    y = pr.partial_reasoning(x, {"reasoning_w": w}, key=jax.random.key(0),
                             rate=r, train=True, max_rate=0.5)
    return jnp.sum(y ** 2)
  value, grad = jax.jit(jax.value_and_grad(loss))(PARAMS["reasoning_w"],
                                                 jnp.float32(0.01))
  assert np.isfinite(float(value)) and np.isfinite(np.asarray(grad)).all()
  np.testing.assert_allclose(value, jnp.sum(x ** 2), rtol=1e-6)
