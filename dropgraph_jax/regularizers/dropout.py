"""Bernoulli dropout and its structured variants, as pure functions.

All of them draw one Bernoulli(1 - rate) keep decision per cell of a *mask
shape* that broadcasts against ``x``, and rescale kept units by
``1 / (1 - rate)`` so that ``E[y] = x`` (Srivastava et al. 2014, Eq. 1 of the
DropGraph paper with the inverted-dropout scaling):

    y = x * m / (1 - rate),   m ~ Bernoulli(1 - rate), broadcast over x

| function              | input      | mask shape        | drops              |
|-----------------------|------------|-------------------|--------------------|
| dropout               | any        | x.shape (or with  | single units       |
|                       |            | ``broadcast_dims``)|                   |
| spatial_dropout       | (N,H,W,C)  | (N,1,1,C)         | whole channels per |
|                       |            |                   | example (Tompson)  |
| variational_dropout   | (N,T,C)    | (N,1,C)           | one mask per       |
|                       |            |                   | sequence, shared   |
|                       |            |                   | over time (Gal)    |
| word_dropout          | (N,T,C)    | (N,T,1)           | whole tokens       |
| drop_path             | (N,...)    | (N,1,...,1)       | whole examples of a|
|                       |            |                   | residual branch    |

Every function takes ``x`` positionally and everything else keyword-only:
``key`` (a PRNG key), ``rate`` (a Python float in [0, 1), or a traced scalar
so that a schedule changes it without recompiling) and ``train`` (a static
Python bool). With ``train=False`` or a static ``rate == 0`` the input is
returned as is: no operation is added to the compiled program. Output dtype
equals input dtype; the mask arithmetic is done in ``x.dtype`` (bfloat16 and
float16 activations are not upcast).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from dropgraph_jax.regularizers import _validate as v
from dropgraph_jax.regularizers import random_bits


def inverse_keep_scale(rate, dtype) -> jax.Array:
  """``1 / (1 - rate)`` computed in float32 and cast to the activation dtype."""
  return (1.0 / (1.0 - jnp.asarray(rate, jnp.float32))).astype(dtype)


def _masked_rescale(fn: str, x: jax.Array, key, rate, train: bool,
                    mask_shape: Tuple[int, ...], rng: str,
                    rescale: bool = True) -> jax.Array:
  """Shared body: validation, the identity short-cut, mask, rescale."""
  train = v.check_train(fn, train)
  static_rate = v.check_rate(fn, rate)
  v.check_choice(fn, "rng", rng, random_bits.RNG_IMPLS)
  if not train or static_rate == 0.0:
    return x
  v.check_key(fn, key)
  keep = random_bits.keep_mask(key, mask_shape, rate, rng, like=x)
  kept = x * inverse_keep_scale(rate, x.dtype) if rescale else x
  return jnp.where(keep, kept, jnp.zeros((), x.dtype))


def dropout(x: jax.Array, *, key: Optional[jax.Array], rate, train: bool,
            broadcast_dims: Sequence[int] = (), rng: str = "hash"
            ) -> jax.Array:
  """Standard (inverted) dropout, Srivastava et al. 2014.

  Args:
    x: floating array of any rank >= 1.
    key: PRNG key; only read when ``train`` and ``rate > 0``.
    rate: probability of dropping a unit, in [0, 1); may be traced.
    train: static bool; ``False`` returns ``x``.
    broadcast_dims: axes along which one decision is shared (as in
      ``flax.linen.Dropout``); e.g. ``(1, 2)`` on NHWC is spatial dropout.
    rng: ``'hash'`` (default, fused) or ``'jax'``; see :mod:`random_bits`.

  Returns:
    ``x * m / (1 - rate)`` with ``m ~ Bernoulli(1 - rate)``; dtype of ``x``.
  """
  fn = "dropout"
  v.check_floating(fn, x)
  if jnp.ndim(x) < 1:
    raise ValueError(f"{fn}: x must have rank >= 1, got a scalar.")
  dims = []
  for d in broadcast_dims:
    if (not isinstance(d, (int, np.integer)) or isinstance(d, bool) or
        not -x.ndim <= d < x.ndim):
      raise ValueError(f"{fn}: broadcast_dims entries must be axes of x "
                       f"(rank {x.ndim}), got {tuple(broadcast_dims)!r}.")
    dims.append(int(d) % x.ndim)
  mask_shape = tuple(1 if i in dims else s for i, s in enumerate(x.shape))
  return _masked_rescale(fn, x, key, rate, train, mask_shape, rng)


def spatial_dropout(x: jax.Array, *, key: Optional[jax.Array], rate,
                    train: bool, rng: str = "hash") -> jax.Array:
  """SpatialDropout (Tompson et al. 2015): drops whole channels per example.

  Args:
    x: NHWC floating array ``(N, H, W, C)``.
    key, rate, train, rng: as in :func:`dropout`.

  Returns:
    ``x * m[n, c] / (1 - rate)``: every spatial position of a dropped
    (example, channel) pair is zero.
  """
  fn = "spatial_dropout"
  v.check_floating(fn, x)
  v.check_rank(fn, x, (4,), "NHWC")
  n, _, _, c = x.shape
  return _masked_rescale(fn, x, key, rate, train, (n, 1, 1, c), rng)


def variational_dropout(x: jax.Array, *, key: Optional[jax.Array], rate,
                        train: bool, rng: str = "hash") -> jax.Array:
  """Variational / locked dropout (Gal & Ghahramani 2016; AWD-LSTM).

  One mask per sequence and channel, shared over all time steps.

  Args:
    x: ``(N, T, C)`` floating array.
    key, rate, train, rng: as in :func:`dropout`.
  """
  fn = "variational_dropout"
  v.check_floating(fn, x)
  v.check_rank(fn, x, (3,), "(N, T, C)")
  n, _, c = x.shape
  return _masked_rescale(fn, x, key, rate, train, (n, 1, c), rng)


def word_dropout(x: jax.Array, *, key: Optional[jax.Array], rate, train: bool,
                 rescale: bool = True, rng: str = "hash") -> jax.Array:
  """Word dropout (Sennrich et al. 2016): drops whole token vectors.

  Every channel of a dropped (example, time) position is zero. This is the
  per-position form used by AutoDropout (``share_c=True``); it does not tie
  the decision to the vocabulary entry.

  Args:
    x: ``(N, T, C)`` floating array (e.g. embedded tokens).
    key, rate, train, rng: as in :func:`dropout`.
    rescale: divide kept tokens by ``1 - rate`` (default) or keep them as is.
  """
  fn = "word_dropout"
  v.check_floating(fn, x)
  v.check_rank(fn, x, (3,), "(N, T, C)")
  v.check_flag(fn, "rescale", rescale)
  n, t, _ = x.shape
  return _masked_rescale(fn, x, key, rate, train, (n, t, 1), rng, rescale)


def drop_path(x: jax.Array, *, key: Optional[jax.Array], rate, train: bool,
              rng: str = "hash") -> jax.Array:
  """DropPath / stochastic depth (Huang et al. 2016; Larsson et al. 2017).

  Apply to the output of a residual branch before the addition: each example
  keeps the whole branch with probability ``1 - rate``, rescaled by
  ``1 / (1 - rate)``, or drops it entirely.

  Args:
    x: ``(N, ...)`` floating array, batch first.
    key, rate, train, rng: as in :func:`dropout`.
  """
  fn = "drop_path"
  v.check_floating(fn, x)
  if jnp.ndim(x) < 1:
    raise ValueError(f"{fn}: x must have a leading batch axis, got a scalar.")
  mask_shape = (x.shape[0],) + (1,) * (x.ndim - 1)
  return _masked_rescale(fn, x, key, rate, train, mask_shape, rng)
