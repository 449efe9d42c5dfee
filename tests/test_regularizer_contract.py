"""The contract every regularizer transform keeps (issue: regularizer core).

identity at inference and at a static zero rate (bitwise, and no op in the
compiled program), same key -> same output, different keys -> different
masks, jit == eager, one trace across traced rates, dtype kept for
bfloat16/float16, gradients only through kept units, clear ValueErrors.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from regularizer_cases import CASES, ZEROING

from dropgraph_jax.regularizers import registry as dg_registry

NAMES = sorted(CASES)


def _input(shape, dtype=jnp.float32, seed=0):
  x = jax.random.uniform(jax.random.key(seed), shape, jnp.float32, 0.5, 1.5)
  return x.astype(dtype)


@pytest.mark.parametrize("name", NAMES)
def test_identity_in_eval_and_at_zero_rate(name):
  fn, shape = CASES[name]
  x = _input(shape)
  key = jax.random.key(1)
  assert fn(x, key=key, rate=0.3, train=False) is x
  assert fn(x, key=key, rate=0.0, train=True) is x
  # No key is needed when nothing is dropped.
  assert fn(x, key=None, rate=0.3, train=False) is x


@pytest.mark.parametrize("name", NAMES)
def test_eval_program_is_identical_to_no_regularizer(name):
  fn, shape = CASES[name]
  x = _input(shape)
  key = jax.random.key(1)

  def program(y):
    return jnp.tanh(y * 2.0)

  def with_reg(y):
    return program(fn(y * 2.0, key=key, rate=0.3, train=False) / 2.0)

  def with_zero_rate(y):
    return program(fn(y * 2.0, key=key, rate=0.0, train=True) / 2.0)

  def plain(y):
    return program(y * 2.0 / 2.0)

  ref = jax.jit(plain).lower(x).as_text().replace("plain", "f")
  for other in (with_reg, with_zero_rate):
    text = jax.jit(other).lower(x).as_text().replace(other.__name__, "f")
    assert text == ref


@pytest.mark.parametrize("name", NAMES)
def test_same_key_same_output_different_key_different_mask(name):
  fn, shape = CASES[name]
  x = _input(shape)
  a = fn(x, key=jax.random.key(3), rate=0.5, train=True)
  b = fn(x, key=jax.random.key(3), rate=0.5, train=True)
  c = fn(x, key=jax.random.key(4), rate=0.5, train=True)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.parametrize("name", NAMES)
def test_legacy_uint32_key_accepted(name):
  fn, shape = CASES[name]
  y = fn(_input(shape), key=jax.random.PRNGKey(0), rate=0.5, train=True)
  assert y.shape == shape


@pytest.mark.parametrize("name", NAMES)
def test_jit_matches_eager(name):
  fn, shape = CASES[name]
  x = _input(shape)
  key = jax.random.key(5)
  eager = fn(x, key=key, rate=0.25, train=True)
  jitted = jax.jit(lambda x, k: fn(x, key=k, rate=0.25, train=True))(x, key)
  np.testing.assert_allclose(eager, jitted, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_traced_rate_compiles_once(name):
  fn, shape = CASES[name]
  x = _input(shape)
  chex.clear_trace_counter()  # the counter is keyed by code, not by case

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(x, key, rate):
    return fn(x, key=key, rate=rate, train=True)

  outs = [step(x, jax.random.key(0), jnp.float32(r)) for r in (0.0, 0.1, 0.4)]
  np.testing.assert_array_equal(outs[0], x)  # a traced 0 is exact identity
  assert not np.array_equal(np.asarray(outs[1]), np.asarray(outs[2]))


def _activation_round_trips_through_f32(closed_jaxpr, shape):
  """True if an x-shaped value derived from x is upcast and later cast back.

  float32 copies that only feed reductions (e.g. Disout's std(x)) are
  allowed: XLA fuses them into the reduction. What is not allowed is the
  activation path itself going through float32.
  """
  jaxpr = closed_jaxpr.jaxpr
  tainted = set()  # x-shaped float32 values computed from x
  derived = {id(jaxpr.invars[0])}  # values computed from x
  for eqn in jaxpr.eqns:
    ins = [id(v) for v in eqn.invars if hasattr(v, "aval")]
    from_x = any(i in derived for i in ins)
    from_f32 = any(i in tainted for i in ins)
    for out in eqn.outvars:
      if not from_x:
        continue
      derived.add(id(out))
      full = tuple(out.aval.shape) == tuple(shape)
      if full and out.aval.dtype == jnp.float32:
        tainted.add(id(out))
      elif full and from_f32:
        return True
  return False


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_dtype_is_kept(name, dtype):
  fn, shape = CASES[name]
  x = _input(shape, dtype)
  y = fn(x, key=jax.random.key(0), rate=0.3, train=True)
  assert y.dtype == dtype
  assert np.isfinite(np.asarray(y, np.float32)).all()
  closed = jax.make_jaxpr(
      lambda x: fn(x, key=jax.random.key(0), rate=0.3, train=True))(x)
  assert not _activation_round_trips_through_f32(closed, shape)


@pytest.mark.parametrize("name", ZEROING)
def test_gradients_flow_only_through_kept_units(name):
  fn, shape = CASES[name]
  x = _input(shape)
  key = jax.random.key(7)
  y = fn(x, key=key, rate=0.4, train=True)
  g = jax.grad(lambda x: jnp.sum(fn(x, key=key, rate=0.4, train=True)))(x)
  dropped = np.asarray(y) == 0
  assert dropped.any() and (~dropped).any()
  np.testing.assert_array_equal(np.asarray(g)[dropped], 0.0)
  # Kept units get exactly the rescaling factor y / x.
  np.testing.assert_allclose(np.asarray(g)[~dropped],
                             (np.asarray(y) / np.asarray(x))[~dropped],
                             rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_rate_out_of_range_raises(name, rate):
  fn, shape = CASES[name]
  with pytest.raises(ValueError, match=r"rate must be in \[0, 1\), got"):
    fn(_input(shape), key=jax.random.key(0), rate=rate, train=True)
  with pytest.raises(ValueError, match="rate"):  # checked in eval too
    fn(_input(shape), key=jax.random.key(0), rate=rate, train=False)


@pytest.mark.parametrize("name", NAMES)
def test_integer_input_raises(name):
  fn, shape = CASES[name]
  with pytest.raises(ValueError, match="floating dtype.*int32"):
    fn(jnp.ones(shape, jnp.int32), key=jax.random.key(0), rate=0.1,
       train=True)


@pytest.mark.parametrize("name", NAMES)
def test_traced_train_flag_raises(name):
  fn, shape = CASES[name]
  with pytest.raises(ValueError, match="train must be a Python bool"):
    jax.jit(lambda t: fn(_input(shape), key=jax.random.key(0), rate=0.1,
                         train=t))(True)


@pytest.mark.parametrize("name", NAMES)
def test_missing_key_raises(name):
  fn, shape = CASES[name]
  with pytest.raises(ValueError, match="key is required"):
    fn(_input(shape), key=None, rate=0.1, train=True)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in
                                  ("dropout", "drop_path")])
def test_wrong_rank_raises(name):
  fn, _ = CASES[name]
  # (N, C) is one graph to the graph-signal transforms; they refuse rank 4.
  bad = (4, 5, 6, 7) if name.startswith("graph_") else (4, 5)
  with pytest.raises(ValueError, match="rank"):
    fn(jnp.ones(bad), key=jax.random.key(0), rate=0.1, train=True)


def test_every_registered_regularizer_has_a_contract_case():
  """Adding a regularizer to the registry without a case here fails."""
  covered = {name.split("_shared")[0] for name in CASES}
  assert set(dg_registry.names()) <= covered, (
      set(dg_registry.names()) - covered)
