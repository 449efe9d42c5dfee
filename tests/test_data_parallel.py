"""Data-parallel use: a batch sharded over a ``data`` axis of 8 CPU devices.

The classic bug is every device drawing the same mask for its shard. Here
the batch holds identical examples, the same number on each device: the
mask patterns of the devices must all differ, and the sharded result must
equal the single-device result. (drop_path has only two outcomes per
example, so it gets 16 examples per device.)
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from regularizer_cases import CASES


@pytest.fixture(scope="module")
def mesh():
  assert jax.device_count() == 8, "conftest sets 8 simulated CPU devices"
  return jax.make_mesh((8,), ("data",),
                       axis_types=(jax.sharding.AxisType.Explicit,))


@pytest.mark.parametrize("name", sorted(CASES))
def test_examples_on_different_devices_get_independent_masks(name, mesh):
  fn, shape = CASES[name]
  one = jax.random.uniform(jax.random.key(0), (1,) + shape[1:], minval=0.5,
                           maxval=1.5)
  per_device = 16 if name == "drop_path" else 2
  x = jnp.repeat(one, 8 * per_device, axis=0)
  key = jax.random.key(42)
  sharded_x = jax.device_put(x, NamedSharding(mesh, P("data")))

  @jax.jit
  def apply(x, key):
    return fn(x, key=key, rate=0.5, train=True)

  with jax.set_mesh(mesh):
    y_sharded = apply(sharded_x, key)
  assert y_sharded.sharding.spec[0] == "data"
  y = np.asarray(y_sharded)
  # The per-unit factor y / x shows which units were kept, dropped, distorted.
  factor = np.round(y / np.asarray(x), 4)
  blocks = factor.reshape((8, per_device) + factor.shape[1:])
  patterns = {blocks[d].tobytes() for d in range(8)}
  assert len(patterns) == 8, "examples on different devices share a mask"
  np.testing.assert_allclose(y, np.asarray(apply(x, key)), rtol=1e-6)


@pytest.mark.parametrize("name", ["drop_block", "disout"])
def test_channel_sharded_block_masks_match_unsharded(name, mesh):
  """A feature map sharded over channels (model parallel) cannot carry the
  packed mask's words axis; the bytewise path draws the same mask."""
  fn, _ = CASES[name]
  x = jax.random.uniform(jax.random.key(1), (4, 9, 11, 16), minval=0.5,
                         maxval=1.5)
  key = jax.random.key(7)

  @jax.jit
  def apply(x, key):
    return fn(x, key=key, rate=0.3, train=True)

  sharded_x = jax.device_put(x, NamedSharding(mesh, P(None, None, None,
                                                      "data")))
  with jax.set_mesh(mesh):
    y_sharded = apply(sharded_x, key)
  assert y_sharded.sharding.spec[3] == "data"
  np.testing.assert_allclose(np.asarray(y_sharded), np.asarray(apply(x, key)),
                             rtol=1e-6)


def test_shard_map_users_get_distinct_masks_per_shard(mesh):
  """With one key inside shard_map every shard draws the same mask;
  per_shard_key folds the shard index in, and the 8 masks differ."""
  import dropgraph_jax as dg
  x = jax.device_put(jnp.ones((8 * 4, 64)), NamedSharding(mesh, P("data")))

  def body(x, key, fold):
    key = dg.per_shard_key(key, "data") if fold else key
    return dg.dropout(x, key=key, rate=0.5, train=True)

  def masks(fold):
    fn = jax.shard_map(lambda x, k: body(x, k, fold), mesh=mesh,
                       in_specs=(P("data"), P()), out_specs=P("data"))
    out = np.asarray(jax.jit(fn)(x, jax.random.key(0))) != 0
    return [tuple(m.ravel()) for m in out.reshape(8, -1)]

  assert len(set(masks(False))) == 1
  assert len(set(masks(True))) == 8
  with pytest.raises(ValueError, match="axis_names must name"):
    dg.per_shard_key(jax.random.key(0), ())
