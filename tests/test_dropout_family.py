"""Statistics and mask structure of the Bernoulli dropout family.

Tolerances: a fraction estimated from n independent decisions has standard
error sqrt(r (1 - r) / n); every check below allows 5 standard errors, so a
correct implementation fails with probability < 1e-6 per check (and the keys
are fixed, so the suite is deterministic).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dropgraph_jax as dg


def _tol(rate, n):
  return 5.0 * np.sqrt(rate * (1 - rate) / n)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_dropout_fraction_and_mean(rate):
  x = jnp.ones((64, 32, 32, 16))
  y = np.asarray(dg.dropout(x, key=jax.random.key(0), rate=rate, train=True))
  n = y.size
  assert abs((y == 0).mean() - rate) < _tol(rate, n)
  np.testing.assert_allclose(y[y != 0], 1.0 / (1.0 - rate), rtol=1e-6)
  # E[y] = x: the mean is 1 within the same relative tolerance.
  assert abs(y.mean() - 1.0) < _tol(rate, n) / (1 - rate)


def test_dropout_broadcast_dims_shares_decisions():
  x = jnp.ones((8, 6, 6, 32))
  y = np.asarray(dg.dropout(x, key=jax.random.key(1), rate=0.5, train=True,
                            broadcast_dims=(1, 2)))
  assert (y == y[:, :1, :1, :]).all()
  with pytest.raises(ValueError, match="broadcast_dims"):
    dg.dropout(x, key=jax.random.key(1), rate=0.5, train=True,
               broadcast_dims=(4,))


def test_spatial_dropout_drops_whole_channels_per_example():
  x = jnp.ones((128, 5, 7, 64))
  rate = 0.3
  y = np.asarray(dg.spatial_dropout(x, key=jax.random.key(2), rate=rate,
                                    train=True))
  per_channel = y.reshape(128, 35, 64)
  # Each (example, channel) is all zero or all scaled.
  assert (per_channel == per_channel[:, :1, :]).all()
  dropped = per_channel[:, 0, :] == 0
  assert abs(dropped.mean() - rate) < _tol(rate, dropped.size)
  # Examples are independent: their masks are not all equal.
  assert not (dropped == dropped[:1]).all()


def test_variational_dropout_mask_shared_over_time():
  x = jnp.ones((64, 20, 48))
  rate = 0.4
  y = np.asarray(dg.variational_dropout(x, key=jax.random.key(3), rate=rate,
                                        train=True))
  assert (y == y[:, :1, :]).all()
  dropped = y[:, 0, :] == 0
  assert abs(dropped.mean() - rate) < _tol(rate, dropped.size)
  assert not (dropped == dropped[:1]).all()


def test_word_dropout_drops_whole_tokens():
  x = jnp.ones((64, 50, 24))
  rate = 0.2
  y = np.asarray(dg.word_dropout(x, key=jax.random.key(4), rate=rate,
                                 train=True))
  assert (y == y[:, :, :1]).all()
  dropped = y[:, :, 0] == 0
  assert abs(dropped.mean() - rate) < _tol(rate, dropped.size)
  kept = y[:, :, 0][~dropped]
  np.testing.assert_allclose(kept, 1.0 / (1 - rate), rtol=1e-6)
  y_plain = dg.word_dropout(x, key=jax.random.key(4), rate=rate, train=True,
                            rescale=False)
  assert set(np.unique(np.asarray(y_plain))) == {0.0, 1.0}


def test_drop_path_rows_all_zero_or_scaled_and_mean_kept():
  # The scenic StochasticDepth checks: rows all-0-or-scaled, mean kept.
  rate = 0.25
  x = jnp.ones((4096, 3, 3, 2))
  y = np.asarray(dg.drop_path(x, key=jax.random.key(5), rate=rate,
                              train=True)).reshape(4096, -1)
  row_dropped = (y == 0).all(axis=1)
  row_scaled = np.isclose(y, 1 / (1 - rate)).all(axis=1)
  assert (row_dropped | row_scaled).all()
  assert abs(row_dropped.mean() - rate) < _tol(rate, 4096)
  assert abs(y.mean() - 1.0) < _tol(rate, 4096) / (1 - rate)


@pytest.mark.parametrize("fn,shape,decisions", [
    (dg.spatial_dropout, (256, 4, 4, 64), 256 * 64),
    (dg.variational_dropout, (256, 10, 64), 256 * 64),
    (dg.word_dropout, (256, 64, 8), 256 * 64),
])
def test_structured_dropout_keeps_the_mean(fn, shape, decisions):
  rate = 0.3
  y = np.asarray(fn(jnp.ones(shape), key=jax.random.key(6), rate=rate,
                    train=True))
  # mean(y) = kept fraction / (1 - rate): error of one fraction estimate,
  # scaled by 1 / (1 - rate), 5 standard errors.
  assert abs(y.mean() - 1.0) < _tol(rate, decisions) / (1 - rate)
