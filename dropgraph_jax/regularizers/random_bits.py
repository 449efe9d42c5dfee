"""Random bits for masks: a keyed counter hash fused into the elementwise op.

Why this exists (written by hand, on purpose): on CPU, XLA's ``threefry``,
``rbg`` and ``unsafe_rbg`` generators cost 5-7x one elementwise pass over an
activation (``experiments/bench_regularizers.py`` prints the comparison), so
a dropout built on ``jax.random.bits`` cannot come near the cost of the
multiply it guards. A counter-based hash has no state and no sequential
dependence: every element's bits are ``h(index, key)``, computed inside the
same fused loop that applies the mask, so the mask never touches memory.

Construction (``rng='hash'``, the default of every regularizer):

    s0, s1 = jax.random.bits(key, (2,), uint32)          # 2 words from the key
    bits[i] = lowbias32(lowbias32(i ^ s0) + s1)           # i = flat global index

``lowbias32`` is the 32-bit integer mixer found by C. Wellons' hash
prospector (xorshift-multiply, bias ~0.17 on its avalanche metric); two
rounds keyed by two independent words decorrelate neighbouring indices and
nearby keys. Because ``i`` is the index in the *global* array, a batch that
is sharded over devices under ``jax.jit`` gets independent masks per example
with no per-device key handling. ``tests/test_random_bits.py`` checks
uniformity (chi-square), bit balance, neighbour correlation and key
sensitivity.

``rng='jax'`` uses ``jax.random.bits`` with the key as given (threefry by
default), for users who want JAX's generator at its cost.

Broadcast masks are the exception: when :func:`keep_mask` is given the
activation (``like``) and the mask is at least 8x smaller (spatial dropout,
drop path, variational dropout), ``'hash'`` draws the mask with
``jax.random.bits``. Fused, the hash would be recomputed for every element
of the activation the mask is broadcast over; JAX's generator runs as its
own loop, so the small mask is made once and the big loop only reads it
(``experiments/bench_vs_pytorch.py``: spatial dropout and drop path).

Limits: the flat index is a uint32, so one call covers at most 2**32
elements; larger tensors raise ``ValueError`` (use ``rng='jax'``).
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

RNG_IMPLS = ("hash", "jax")
_MAX_ELEMENTS = 2**32
# keep_mask materialises masks at least this many times smaller than ``like``.
_MATERIALIZE_BELOW = 8


def _lowbias32(h: jax.Array) -> jax.Array:
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x7FEB352D)
  h = h ^ (h >> 15)
  h = h * jnp.uint32(0x846CA68B)
  return h ^ (h >> 16)


def sharding_like(like: Optional[jax.Array], shape: Sequence[int]):
  """The sharding a mask of ``shape`` should have to line up with ``like``.

  Under a mesh with Explicit axes, sharding is part of an array's type and a
  mask must be sharded like the activation it multiplies (e.g. over the
  ``data`` axis). Axes of ``shape`` whose extent differs from ``like``'s
  (broadcast or block-seed axes) are replicated. Returns ``None`` when
  ``like`` carries no explicit sharding (XLA then propagates one itself).
  """
  if like is None:
    return None
  sharding = getattr(jax.typeof(like), "sharding", None)
  spec = getattr(sharding, "spec", None)
  if sharding is None or sharding.mesh.empty or spec is None or all(
      s is None for s in spec):
    return None
  spec = tuple(spec) + (None,) * (len(shape) - len(spec))
  mask_spec = [spec[i] if i < jnp.ndim(like) and shape[i] == like.shape[i]
               else None for i in range(len(shape))]
  return jax.sharding.NamedSharding(sharding.mesh,
                                    jax.sharding.PartitionSpec(*mask_spec))


def _flat_index(shape: Sequence[int], out_sharding=None) -> jax.Array:
  """uint32 row-major index of every element of ``shape`` (fusible iotas)."""
  idx = None
  stride = 1
  for axis in reversed(range(len(shape))):
    if shape[axis] > 1 or idx is None:
      term = lax.broadcasted_iota(jnp.uint32, shape, axis,
                                  out_sharding=out_sharding)
      if stride != 1:
        term = term * jnp.uint32(stride)
      idx = term if idx is None else idx + term
    stride *= shape[axis]
  return idx


def bits(key: jax.Array, shape: Sequence[int], rng: str = "hash",
         stream: int = 0, like: Optional[jax.Array] = None) -> jax.Array:
  """Uniform uint32 random bits of ``shape``.

  Args:
    key: a PRNG key (typed or legacy uint32[2]).
    shape: output shape.
    rng: ``'hash'`` (fused keyed counter hash) or ``'jax'`` (jax.random.bits).
    stream: selects an independent stream for the same key (e.g. the two
      uniforms of a Box-Muller normal) without splitting the key.
    like: the activation the bits will mask; its explicit sharding (if any)
      is given to the bits, see :func:`sharding_like`.

  Returns:
    uint32 array of ``shape``.
  """
  shape = tuple(int(d) for d in shape)
  out_sharding = sharding_like(like, shape)
  if rng == "jax":
    if stream:
      key = jax.random.fold_in(key, stream)
    return jax.random.bits(key, shape, jnp.uint32, out_sharding=out_sharding)
  if rng != "hash":
    raise ValueError(f"rng must be one of {list(RNG_IMPLS)}, got {rng!r}.")
  size = int(np.prod(shape, dtype=np.int64))
  if size > _MAX_ELEMENTS:
    raise ValueError(f"rng='hash' covers at most 2**32 elements per call, got "
                     f"shape {shape} ({size} elements); use rng='jax'.")
  if stream:
    key = jax.random.fold_in(key, stream)
  seeds = jax.random.bits(key, (2,), jnp.uint32)
  index = _flat_index(shape, out_sharding)
  return _lowbias32(_lowbias32(index ^ seeds[0]) + seeds[1])


def keep_mask(key: jax.Array, shape: Sequence[int], rate, rng: str = "hash",
              like: Optional[jax.Array] = None) -> jax.Array:
  """Boolean mask with ``P(True) = 1 - rate``; ``rate`` may be traced.

  The top 24 bits are compared with ``round(rate * 2**24)``, so the rate is
  exact to 2**-24 and the threshold is exact in float32 arithmetic.
  """
  threshold = jnp.round(jnp.asarray(rate, jnp.float32) * 2.0**24).astype(
      jnp.uint32)
  if (rng == "hash" and like is not None and
      _MATERIALIZE_BELOW * np.prod(shape) <= np.size(like)):
    # A mask broadcast over ``like`` (spatial dropout, drop path, variational
    # dropout): XLA would fuse the hash into the consumer and recompute it
    # for every element of ``like`` (optimization_barrier does not stop
    # this on CPU: the barrier is removed before fusion). JAX's generator
    # runs as its own loop, so the small mask is made once and read.
    rng = "jax"
  return (bits(key, shape, rng, like=like) >> 8) >= threshold


def packed_keep_mask(key: jax.Array, shape: Sequence[int], rate,
                     word_bits: int, rng: str = "hash",
                     like: Optional[jax.Array] = None) -> jax.Array:
  """:func:`keep_mask` packed along the last axis into uint32 words.

  Bit ``j`` of word ``k`` on the last axis is element ``k * word_bits + j``
  of ``keep_mask(key, shape, rate, rng, like)``: the same draws, bit for
  bit. A ``(..., C)`` mask becomes ``(..., C // word_bits)`` words, so
  block dilation and kept counts (:mod:`dropgraph_jax.regularizers.block_mask`) touch
  8-32x less memory. The packing is one reduction that XLA fuses with the
  hash (``rng='hash'``).

  Args:
    key, shape, rate, rng, like: as in :func:`keep_mask`.
    word_bits: 8, 16 or 32 elements per word; must divide ``shape[-1]``.
      Unused high bits (``word_bits < 32``) are zero.

  Returns:
    uint32 array of shape ``shape[:-1] + (shape[-1] // word_bits,)``.
  """
  shape = tuple(int(d) for d in shape)
  if word_bits not in (8, 16, 32) or shape[-1] % word_bits:
    raise ValueError(f"packed_keep_mask: word_bits must be 8, 16 or 32 and "
                     f"divide the last axis {shape[-1]}, got {word_bits}.")
  keep = keep_mask(key, shape, rate, rng, like=like)
  split = shape[:-1] + (shape[-1] // word_bits, word_bits)
  position = lax.broadcasted_iota(jnp.uint32, (1,) * len(shape) + (word_bits,),
                                  len(shape))
  return jnp.sum(keep.reshape(split).astype(jnp.uint32) << position, axis=-1,
                 dtype=jnp.uint32)


def unpack_words(words: jax.Array, word_bits: int) -> jax.Array:
  """Inverse of the packing of :func:`packed_keep_mask`: bool ``(..., K *
  word_bits)`` from uint32 ``(..., K)``. Elementwise, so XLA fuses it into
  the op that reads the mask instead of storing the bools."""
  position = lax.broadcasted_iota(jnp.uint32, (1,) * words.ndim + (word_bits,),
                                  words.ndim)
  bit = (words[..., None] >> position) & jnp.uint32(1)
  return (bit != 0).reshape(words.shape[:-1] + (words.shape[-1] * word_bits,))


def uniform(key: jax.Array, shape: Sequence[int], dtype=jnp.float32,
            rng: str = "hash", stream: int = 0,
            like: Optional[jax.Array] = None) -> jax.Array:
  """Uniform samples in the open interval (0, 1), 24 bits of resolution."""
  u = ((bits(key, shape, rng, stream, like) >> 8).astype(jnp.float32) + 0.5) * (
      2.0**-24)
  return u.astype(dtype)


def normal(key: jax.Array, shape: Sequence[int], dtype=jnp.float32,
           rng: str = "hash", like: Optional[jax.Array] = None) -> jax.Array:
  """Standard normal samples by the Box-Muller transform of two streams."""
  u1 = uniform(key, shape, jnp.float32, rng, stream=1, like=like)
  u2 = uniform(key, shape, jnp.float32, rng, stream=2, like=like)
  z = jnp.sqrt(-2.0 * jnp.log(u1)) * jnp.cos((2.0 * np.pi) * u2)
  return z.astype(dtype)


def per_shard_key(key: jax.Array, axis_names) -> jax.Array:
  """Inside ``jax.shard_map``: ``key`` folded with this shard's index along
  ``axis_names`` (a name or a tuple of names), so every shard draws its own
  masks.

  Under ``jax.jit`` with sharded arrays the masks already differ per shard
  (they hash global positions). Under ``shard_map`` each shard sees a local
  array, so one key would give every shard the same mask::

      def body(x, key):
        key = dg.per_shard_key(key, "data")
        return dg.dropout(x, key=key, rate=0.1, train=True)
      jax.shard_map(body, mesh=mesh, in_specs=(P("data"), P()),
                    out_specs=P("data"))(x, key)
  """
  names = (axis_names,) if isinstance(axis_names, str) else tuple(axis_names)
  if not names:
    raise ValueError("per_shard_key: axis_names must name at least one mesh "
                     "axis, got an empty tuple.")
  for name in names:
    key = jax.random.fold_in(key, jax.lax.axis_index(name))
  return key
