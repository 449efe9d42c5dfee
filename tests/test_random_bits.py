"""Statistical quality of the fused counter-hash generator (rng='hash')."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dropgraph_jax.regularizers import random_bits


@pytest.fixture(scope="module")
def sample():
  return np.asarray(random_bits.bits(jax.random.key(0), (1 << 20,)))


def test_byte_histogram_is_uniform(sample):
  # Chi-square over the top byte, 255 dof: mean 255, sd ~22.6; 400 is > 6 sd.
  counts = np.bincount(sample >> 24, minlength=256)
  expected = sample.size / 256
  chi2 = ((counts - expected) ** 2 / expected).sum()
  assert chi2 < 400


def test_every_bit_is_balanced(sample):
  ones = np.array([((sample >> b) & 1).mean() for b in range(32)])
  assert np.abs(ones - 0.5).max() < 5 * 0.5 / np.sqrt(sample.size)


def test_neighbours_are_uncorrelated(sample):
  u = sample.astype(np.float64) / 2**32
  for lag in (1, 2, 512, 4096):
    r = np.corrcoef(u[:-lag], u[lag:])[0, 1]
    assert abs(r) < 5 / np.sqrt(u.size)


def test_nearby_keys_give_unrelated_streams():
  a = np.asarray(random_bits.bits(jax.random.key(1), (1 << 16,)))
  b = np.asarray(random_bits.bits(jax.random.key(2), (1 << 16,)))
  # Each bit differs with probability 1/2.
  diff = np.unpackbits((a ^ b).view(np.uint8)).mean()
  assert abs(diff - 0.5) < 0.01
  streams = [np.asarray(random_bits.bits(jax.random.key(1), (1 << 16,),
                                         stream=s)) for s in (1, 2)]
  assert abs(np.unpackbits((streams[0] ^ streams[1]).view(np.uint8)).mean()
             - 0.5) < 0.01


def test_keep_mask_rate_is_exact_to_resolution():
  mask = np.asarray(random_bits.keep_mask(jax.random.key(3), (1 << 22,), 0.3))
  assert abs((~mask).mean() - 0.3) < 5 * np.sqrt(0.21 / mask.size)


def test_normal_and_uniform_moments():
  z = np.asarray(random_bits.normal(jax.random.key(4), (1 << 20,)))
  assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
  assert abs(np.mean(z**4) - 3) < 0.05  # Gaussian kurtosis
  u = np.asarray(random_bits.uniform(jax.random.key(5), (1 << 20,)))
  assert 0 < u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.002


def test_jax_backend_and_bad_impl():
  out = random_bits.bits(jax.random.key(6), (4, 5), rng="jax")
  assert out.shape == (4, 5) and out.dtype == jnp.uint32
  with pytest.raises(ValueError, match="rng must be one of"):
    random_bits.bits(jax.random.key(6), (4,), rng="philox")


def test_too_many_elements_for_hash_raises():
  with pytest.raises(ValueError, match="at most 2\\*\\*32 elements"):
    jax.eval_shape(lambda k: random_bits.bits(k, (1 << 16, 1 << 17)),
                   jax.random.key(0))


def test_a_broadcast_mask_is_drawn_once_by_jax_and_a_full_one_is_hashed():
  key = jax.random.key(3)
  big = jnp.zeros((4, 8, 8, 16))
  small = random_bits.keep_mask(key, (4, 1, 1, 16), 0.3, "hash", like=big)
  np.testing.assert_array_equal(
      small, random_bits.keep_mask(key, (4, 1, 1, 16), 0.3, "jax"))
  full = random_bits.keep_mask(key, big.shape, 0.3, "hash", like=big)
  np.testing.assert_array_equal(
      full, random_bits.keep_mask(key, big.shape, 0.3, "hash"))
  assert not np.array_equal(
      full, random_bits.keep_mask(key, big.shape, 0.3, "jax"))


@pytest.mark.parametrize("rng", ["hash", "jax"])
@pytest.mark.parametrize("word_bits", [8, 16, 32])
def test_packed_keep_mask_is_keep_mask_bit_for_bit(rng, word_bits):
  key = jax.random.key(7)
  shape = (3, 5, 4, 64)
  keep = np.asarray(random_bits.keep_mask(key, shape, 0.3, rng))
  words = random_bits.packed_keep_mask(key, shape, 0.3, word_bits, rng)
  assert words.shape == (3, 5, 4, 64 // word_bits)
  assert words.dtype == jnp.uint32
  np.testing.assert_array_equal(random_bits.unpack_words(words, word_bits),
                                keep)
  w = np.asarray(words)  # bit j of word k is element k * word_bits + j
  np.testing.assert_array_equal((w[..., 1] >> 2) & 1,
                                keep[..., word_bits + 2])
  assert (w >> np.uint32(word_bits) == 0).all() or word_bits == 32
  with pytest.raises(ValueError, match="word_bits must be 8, 16 or 32"):
    random_bits.packed_keep_mask(key, (2, 12), 0.3, 8, rng)
