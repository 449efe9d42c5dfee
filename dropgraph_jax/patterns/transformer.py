"""AutoDropout's Transformer dropout patterns ("Search Space for Dropout
Patterns in Transformers") for ``(N, T, C)`` activations.

Tokens: ``size`` (tokens a pattern block affects; 0 = not applied),
``stride`` (how many blocks' worth of tokens are skipped between affected
blocks), ``share_t`` (the tokens of one block share one noise mask) and
``share_c`` (one decision for all C channels). Our reading of the paper's
Figure 4 ("size=2 and stride=1 ... affects two consecutive tokens, then
skips two tokens, then affects the next two"): affected blocks repeat with
period ``size * (1 + stride)``, from a start position drawn uniformly in
``[0, min(period, T - size + 1))`` per example at every step (the first
whole block starts inside the sequence; tokens before it form a partial
block); ``stride = 0`` affects every token.

Affected tokens get dropout noise, not certain removal: each affected unit
is dropped with probability ``rate`` (the paper does not list a rate token;
it is a field of the pattern, fixed during search), the decision shared
over the block (``share_t``) and/or over channels (``share_c``). Tokens
outside the blocks are kept. Kept units are rescaled by Eq. 1,
Size(m)/Sum(m). The known methods are special cases (tests show each):

* word dropout:        size=1, stride=0, share_c=True
* variational dropout: size=T, stride=0, share_t=True, share_c=False
* standard dropout:    size=1, stride=0, share_t=False, share_c=False
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dropgraph_jax.regularizers import _validate as v
from dropgraph_jax.regularizers import block_mask, random_bits

# The sub-layer sites of one Transformer layer (one pattern each).
TRANSFORMER_SITES = ("query", "key", "value", "softmax", "output",
                     "residual")


@dataclasses.dataclass(frozen=True)
class TransformerPattern:
  """One Transformer dropout pattern; see the module docstring."""
  size: int = 1
  stride: int = 0
  share_t: bool = False
  share_c: bool = False
  rate: float = 0.1

  kind = "transformer_pattern"

  def validate(self, where: str = "TransformerPattern"
               ) -> "TransformerPattern":
    for name in ("size", "stride"):
      value = getattr(self, name)
      if not isinstance(value, (int, np.integer)) or isinstance(
          value, bool) or value < 0:
        raise ValueError(f"{where}: {name} must be an int >= 0, got "
                         f"{value!r}.")
    for name in ("share_t", "share_c"):
      if not isinstance(getattr(self, name), (bool, np.bool_)):
        raise ValueError(f"{where}: {name} must be a bool, got "
                         f"{getattr(self, name)!r}.")
    v.check_rate(where, self.rate)
    return self

  @property
  def applied(self) -> bool:
    return self.size > 0 and self.rate > 0

  def check_fits(self, length: int, where: str) -> None:
    if self.size > length:
      raise ValueError(f"{where}: pattern size {self.size} is larger than "
                       f"the sequence length T={length}.")


def pattern_keep_mask(key: jax.Array, shape, pattern: TransformerPattern,
                      rng: str = "hash") -> jax.Array:
  """Bool keep mask ``(N, T, 1)`` if ``share_c`` else ``(N, T, C)``."""
  n, t, c = shape
  mc = 1 if pattern.share_c else c
  period = pattern.size * (1 + pattern.stride)
  start_key, noise_key = jax.random.split(key)
  starts = min(period, t - pattern.size + 1)
  start = (random_bits.bits(start_key, (n, 1), rng) %
           jnp.uint32(starts)).astype(jnp.int32)
  token = lax.broadcasted_iota(jnp.int32, (n, t), 1)
  pos = token - start + period  # >= 1, so // and % are the usual ones
  affected = (pos % period) < pattern.size  # (N, T)
  # Noise decisions live on a (N, T + 1, mc) grid; the tokens of a block read
  # one row (its block index, at most T), other tokens their own row.
  row = pos // period if pattern.share_t else token
  noise_keep = random_bits.keep_mask(noise_key, (n, t + 1, mc), pattern.rate,
                                     rng)
  keep_unit = jnp.take_along_axis(noise_keep, row[..., None], axis=1)
  return ~affected[..., None] | keep_unit


def transformer_pattern_dropout(x: jax.Array, *, key: Optional[jax.Array],
                                pattern: TransformerPattern, train: bool,
                                normalize: str = "batch", rng: str = "hash"
                                ) -> jax.Array:
  """Applies a Transformer dropout pattern to ``(N, T, C)`` ``x``.

  Args:
    x: ``(N, T, C)`` floating array (for attention probabilities, reshape
      heads into N or C first).
    key: PRNG key; only read when ``train`` and the pattern is applied.
    pattern: the :class:`TransformerPattern`; ``size=0`` or ``rate=0``
      means "not applied" and returns ``x``.
    train: static bool; ``False`` returns ``x``.
    normalize, rng: as in :func:`conv_pattern_dropout`.
  """
  fn = "transformer_pattern_dropout"
  train = v.check_train(fn, train)
  v.check_floating(fn, x)
  v.check_rank(fn, x, (3,), "(N, T, C)")
  v.check_choice(fn, "normalize", normalize, block_mask.NORMALIZE_MODES)
  if not isinstance(pattern, TransformerPattern):
    raise ValueError(f"{fn}: pattern must be a TransformerPattern, got "
                     f"{type(pattern).__name__}.")
  pattern.validate(fn)
  pattern.check_fits(x.shape[1], fn)
  if not train or not pattern.applied:
    return x
  v.check_key(fn, key)
  keep = pattern_keep_mask(key, x.shape, pattern, rng)
  return block_mask.apply_rescaled(x, keep, normalize)
