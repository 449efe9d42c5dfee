"""Beam search for the encoder-decoder Transformer, in one compiled program.

For each source sentence, ``beam`` hypotheses grow one token a step, all
to a fixed ``max_len`` (fixed shapes: one compilation for every batch):

1. step ``t``: the decoder scores every next token of every live
   hypothesis (the whole prefix is re-decoded; no key/value cache, which
   keeps the model code simple and costs ``O(max_len^2)`` decoder work);
   the loop ends early once every hypothesis of the batch has ended;
2. each hypothesis' log-probability plus each token's is ranked over
   ``beam x vocab``, and the best ``beam`` survive; a finished hypothesis
   (it has emitted ``eos``) has one continuation, padding, at no cost, so
   it keeps its score and its place;
3. at the end the hypotheses are ranked by GNMT's length-normalised score
   ``log p / ((5 + |y|) / 6) ** alpha`` (Wu et al. 2016), ``alpha`` 0.6 as
   Vaswani et al.; ``alpha = 0`` ranks by ``log p``.

At step 0 only the first hypothesis is live (the others start at -inf), so
the beam does not fill with copies of one prefix.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NEG_INF = -1e9


def length_penalty(length, alpha: float):
  return ((5.0 + length) / 6.0) ** alpha


def _step(logits_fn, state, t, beam: int, eos: int, pad: int):
  """One step of (2) over the (N * beam) hypotheses."""
  seqs, scores, done = state
  n_beam, length = seqs.shape
  n = n_beam // beam
  logp = jax.nn.log_softmax(logits_fn(seqs)[:, t - 1])  # (N*beam, V)
  vocab = logp.shape[-1]
  only_pad = jnp.full((vocab,), NEG_INF).at[pad].set(0.0)
  logp = jnp.where(done[:, None], only_pad[None], logp)
  total = (scores[:, None] + logp).reshape(n, beam * vocab)
  best, index = jax.lax.top_k(total, beam)  # (N, beam)
  parent = index // vocab + (jnp.arange(n) * beam)[:, None]
  token = index % vocab
  seqs = seqs[parent.reshape(-1)].at[:, t].set(token.reshape(-1))
  done = done[parent.reshape(-1)] | (token.reshape(-1) == eos)
  return seqs, best.reshape(-1), done


def beam_search(logits_fn, batch: int, max_len: int, beam: int, bos: int,
                eos: int, pad: int, alpha: float = 0.6) -> jax.Array:
  """The best hypothesis per sentence, ``(batch, max_len - 1)`` tokens
  without the leading ``bos``.

  ``logits_fn(prefixes (batch * beam, max_len)) -> (batch * beam,
  max_len, V)``: the decoder on the prefixes (positions past ``t`` are
  padding and, decoding causally, do not matter), each sentence's source
  repeated ``beam`` times in a row.
  """
  seqs = jnp.full((batch * beam, max_len), pad, jnp.int32).at[:, 0].set(bos)
  scores = jnp.tile(jnp.array([0.0] + [NEG_INF] * (beam - 1)), batch)
  done = jnp.zeros((batch * beam,), bool)

  def more(carry):  # stop as soon as every hypothesis has ended
    t, (_, _, finished) = carry
    return (t < max_len) & ~jnp.all(finished)

  def body(carry):
    t, state = carry
    return t + 1, _step(logits_fn, state, t, beam, eos, pad)
  _, (seqs, scores, _) = jax.lax.while_loop(more, body,
                                            (1, (seqs, scores, done)))
  lengths = jnp.sum((seqs[:, 1:] != pad), axis=-1)
  ranked = (scores / length_penalty(lengths, alpha)).reshape(batch, beam)
  best = jnp.argmax(ranked, axis=-1) + jnp.arange(batch) * beam
  return seqs[best, 1:]
