"""Rate schedules and the Linen wrappers."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dropgraph_jax as dg
from dropgraph_jax import layers
from dropgraph_jax.regularizers import schedules


@pytest.mark.parametrize("shape", ["linear", "f1", "f2", "f3", "f4", "f5"])
def test_ramps_go_from_zero_to_target_monotonically(shape):
  sched = schedules.ramp(0.1, 100, shape)
  steps = jnp.arange(0, 151)
  values = np.asarray(jax.vmap(sched)(steps))
  assert values[0] == 0.0
  np.testing.assert_allclose(values[100:], 0.1, rtol=1e-6)
  assert (np.diff(values) >= -1e-9).all()


def test_ramp_shapes_are_as_documented():
  t = np.linspace(0, 1, 101)
  got = {s: np.asarray(jax.vmap(schedules.ramp(1e-9 + 0.5, 100, s))(
      jnp.arange(101))) / (0.5 + 1e-9) for s in ("f1", "f2", "f3", "f4", "f5")}
  np.testing.assert_allclose(got["f1"], t, atol=1e-6)
  np.testing.assert_allclose(got["f2"], t**2, atol=1e-6)
  np.testing.assert_allclose(got["f3"], np.sin(np.pi * t / 2)**2, atol=1e-6)
  np.testing.assert_allclose(got["f4"], np.sin(np.pi * t / 2), atol=1e-6)
  np.testing.assert_allclose(got["f5"], np.sqrt(t), atol=1e-6)
  # The paper: f2 is the lowest of the five at every step.
  for other in ("f1", "f3", "f4", "f5"):
    assert (got["f2"] <= got[other] + 1e-7).all()


def test_constant_and_by_name():
  assert float(schedules.constant(0.2)(1000)) == pytest.approx(0.2)
  assert float(schedules.get_schedule("linear", 0.2, 10)(5)) == pytest.approx(
      0.1)
  with pytest.raises(ValueError, match="target must be in"):
    schedules.linear(1.2, 10)
  with pytest.raises(ValueError, match="ramp_steps"):
    schedules.linear(0.1, 0)
  with pytest.raises(ValueError, match="shape must be one of"):
    schedules.ramp(0.1, 10, "f9")


def test_scheduled_rate_is_traced_inside_jit():
  sched = schedules.linear(0.3, 10)

  @jax.jit
  def step(x, key, i):
    return dg.drop_block(x, key=key, rate=sched(i), block_size=3, train=True)

  x = jnp.ones((2, 8, 8, 4))
  np.testing.assert_array_equal(step(x, jax.random.key(0), 0), x)
  assert (step(x, jax.random.key(0), 10) == 0).any()
  assert step._cache_size() == 1


LAYERS = [
    (layers.Dropout(rate=0.3), (2, 6, 6, 4)),
    (layers.SpatialDropout(rate=0.3), (2, 6, 6, 4)),
    (layers.DropBlock(rate=0.3, block_size=3), (2, 6, 6, 4)),
    (layers.Disout(rate=0.3, block_size=3), (2, 6, 6, 4)),
    (layers.DropPath(rate=0.3), (4, 6, 6, 4)),
    (layers.VariationalDropout(rate=0.3), (2, 6, 4)),
    (layers.WordDropout(rate=0.3), (2, 6, 4)),
]


@pytest.mark.parametrize("layer,shape", LAYERS,
                         ids=[type(layer).__name__ for layer, _ in LAYERS])
def test_layer_matches_function_and_is_identity_when_deterministic(layer,
                                                                   shape):
  x = jax.random.uniform(jax.random.key(0), shape, minval=0.5, maxval=1.5)
  assert layer.apply({}, x, deterministic=True) is x  # needs no rng
  key = jax.random.key(1)
  y = layer.apply({}, x, False, rngs={"dropout": key})
  assert y.shape == x.shape and not np.array_equal(y, x)
  # The same draw as the pure function with the key Linen derives.
  y2 = layer.apply({}, x, False, rngs={"dropout": key})
  np.testing.assert_array_equal(y, y2)
  y_rate = layer.apply({}, x, False, rate=0.0, rngs={"dropout": key})
  assert y_rate is x


def test_layer_inside_a_model_and_deterministic_attribute():

  class Net(nn.Module):

    @nn.compact
    def __call__(self, x, train):
      x = nn.Conv(8, (3, 3))(x)
      x = layers.DropBlock(rate=0.2, block_size=3, deterministic=not train)(x)
      return jnp.mean(x)

  x = jnp.ones((2, 8, 8, 3))
  params = Net().init(jax.random.key(0), x, False)
  eval_out = Net().apply(params, x, False)
  train_out = Net().apply(params, x, True, rngs={"dropout": jax.random.key(1)})
  assert eval_out.shape == train_out.shape == ()
  with pytest.raises(Exception, match="dropout"):
    Net().apply(params, x, True)  # no rng given for the dropout collection


def test_linen_layers_take_a_key_at_the_call_like_flax_dropout():
  x = jnp.ones((2, 8, 8, 16))
  layer = layers.DropBlock(rate=0.3, block_size=3)
  key = jax.random.key(5)
  a = layer.apply({}, x, False, rng=key)  # no 'dropout' rng collection
  np.testing.assert_array_equal(a, layer.apply({}, x, False, rng=key))
  assert not np.array_equal(a, layer.apply({}, x, False,
                                           rng=jax.random.key(6)))
  assert layer.apply({}, x, True, rng=key) is not None
  with pytest.warns(DeprecationWarning, match="use rng_impl"):
    layers.Dropout(rate=0.3, rng="jax").apply({}, x, False, rng=key)
  with pytest.raises(ValueError, match="rate of 1 would drop every unit"):
    layers.Dropout(rate=1.0).apply({}, x, False, rng=key)
