"""Encoder-decoder Transformer (Vaswani et al. 2017) for translation, with
named sites for AutoDropout's Transformer patterns.

The architecture of "Attention is all you need" as fairseq's
``transformer`` / ``transformer_iwslt_de_en`` build it:

1. token embeddings scaled by sqrt(d_model) plus sinusoidal positions
   (sin on the even, cos on the odd features);
2. post-norm blocks: ``x = LN(x + Sublayer(x))``; encoder blocks have
   self-attention and a ReLU feed-forward, decoder blocks causal
   self-attention, attention over the encoder output, and the feed-forward;
3. one joint source-target vocabulary (a shared sentencepiece model), so
   the encoder embedding, the decoder embedding and the output projection
   are one matrix (``logits = h E^T``), as fairseq's
   ``--share-all-embeddings``.

Sites (kind ``'sequence'``, ``(N, T, C)``): ``{encoder,decoder}/embeddings``
(after adding the positions), and in every layer ``{part}/{query, key,
value, softmax, output}`` for each attention (``encoder/layer{i}/attn``,
``decoder/layer{i}/self_attn``, ``decoder/layer{i}/cross_attn``; the
attention probabilities as ``(N * heads, Q, K)``) and ``.../residual`` (the
feed-forward branch before its residual addition). The vanilla baseline
(:func:`vanilla_policy`) is Vaswani's: dropout on the embedding sums and on
every sub-layer's output before its residual addition; attention dropout
is optional (fairseq's IWSLT recipe sets none).

``__call__(src (N, S) int, tgt_in (N, T) int, train, rate_factor=None)``
returns logits ``(N, T, V)`` float32; token id 0 is padding (masked as a
key everywhere). :meth:`Seq2SeqTransformer.encode` and
:meth:`Seq2SeqTransformer.decode` split the two halves
for search (:mod:`dropgraph_jax.training.beam_search`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dropgraph_jax.models.sites import Site, apply_site, check_policy
from dropgraph_jax.patterns.policy import Policy, RegularizerSpec

PAD = 0


@dataclasses.dataclass(frozen=True)
class Seq2SeqConfig:
  vocab_size: int = 10000
  n_layer: int = 6
  d_model: int = 512
  n_head: int = 8
  d_ff: int = 2048
  max_len: int = 256


CONFIGS = {
    # WMT-14 En-Fr: Transformer base (Vaswani et al. Table 3), 37k vocab.
    "base": Seq2SeqConfig(vocab_size=37000),
    # IWSLT-14 De-En: fairseq's transformer_iwslt_de_en, 10k joint vocab.
    "iwslt": Seq2SeqConfig(vocab_size=10000, d_ff=1024, n_head=4),
    # Reduced runs on a CPU (Multi30k): 3 layers of width 256.
    "small": Seq2SeqConfig(vocab_size=8000, n_layer=3, d_model=256,
                           n_head=4, d_ff=1024, max_len=64),
    # The reduced Multi30k comparison (experiments/reproduce): 2 layers of
    # width 128, about 1.5M parameters with a 4k vocabulary.
    "mini": Seq2SeqConfig(vocab_size=4000, n_layer=2, d_model=128,
                          n_head=4, d_ff=512, max_len=48),
    "tiny": Seq2SeqConfig(vocab_size=64, n_layer=2, d_model=32, n_head=4,
                          d_ff=64, max_len=16),
}


def sinusoids(length: int, d_model: int) -> jax.Array:
  """Positions 0 .. length-1 as (length, d_model) sin / cos features."""
  pos = jnp.arange(length, dtype=jnp.float32)[:, None]
  inv = 1.0 / (10000 ** (jnp.arange(0, d_model, 2, dtype=jnp.float32) /
                         d_model))
  out = jnp.zeros((length, d_model), jnp.float32)
  out = out.at[:, 0::2].set(jnp.sin(pos * inv))
  return out.at[:, 1::2].set(jnp.cos(pos * inv))


class Attention(nn.Module):
  """Multi-head attention with a site at each of its five tensors."""
  config: Seq2SeqConfig
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, memory, mask, train, rate_factor=None):
    cfg = self.config
    site = functools.partial(apply_site, self.policy, "sequence", train,
                             rate_factor)
    dense = functools.partial(nn.Dense, dtype=self.dtype,
                              param_dtype=jnp.float32)
    n, q_len, _ = x.shape
    k_len, d_head = memory.shape[1], cfg.d_model // cfg.n_head
    q = site("query", dense(cfg.d_model, name="q_proj")(x))
    k = site("key", dense(cfg.d_model, name="k_proj")(memory))
    v = site("value", dense(cfg.d_model, name="v_proj")(memory))
    split = lambda t, length: t.reshape(n, length, cfg.n_head, d_head)  # noqa: E731
    score = jnp.einsum("nqhd,nkhd->nhqk", split(q, q_len), split(k, k_len),
                       preferred_element_type=jnp.float32)
    score = jnp.where(mask, score / jnp.sqrt(jnp.float32(d_head)),
                      jnp.finfo(jnp.float32).min)
    prob = jax.nn.softmax(score, axis=-1).astype(self.dtype)
    prob = site("softmax", prob.reshape(n * cfg.n_head, q_len, k_len)
                ).reshape(n, cfg.n_head, q_len, k_len)
    out = jnp.einsum("nhqk,nkhd->nqhd", prob, split(v, k_len))
    return site("output", dense(cfg.d_model, name="out_proj")(
        out.reshape(n, q_len, cfg.d_model)))


class Block(nn.Module):
  """A post-norm block: attentions (``parts``), then the feed-forward."""
  config: Seq2SeqConfig
  parts: Sequence[str] = ("attn",)
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, memories, masks, train, rate_factor=None):
    norm = functools.partial(nn.LayerNorm, dtype=self.dtype,
                             param_dtype=jnp.float32)
    for part, memory, mask in zip(self.parts, memories, masks):
      attn = Attention(self.config, self.policy, self.dtype, name=part)
      x = norm(name=f"{part}_norm")(x + attn(
          x, x if memory is None else memory, mask, train, rate_factor))
    ff = nn.Dense(self.config.d_ff, dtype=self.dtype,
                  param_dtype=jnp.float32, name="ff1")(x)
    ff = nn.Dense(self.config.d_model, dtype=self.dtype,
                  param_dtype=jnp.float32, name="ff2")(nn.relu(ff))
    ff = Site(self.policy, "sequence", name="residual")(ff, train,
                                                        rate_factor)
    return norm(name="ff_norm")(x + ff)


class Stack(nn.Module):
  """The encoder or the decoder: the embedding site, then the blocks."""
  config: Seq2SeqConfig
  parts: Sequence[str] = ("attn",)
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h, memory, masks, train, rate_factor=None):
    h = Site(self.policy, "sequence", name="embeddings")(h, train,
                                                          rate_factor)
    for i in range(self.config.n_layer):
      h = Block(self.config, self.parts, self.policy, self.dtype,
                name=f"layer{i}")(h, (None, memory)[:len(self.parts)],
                                  masks, train, rate_factor)
    return h


class Seq2SeqTransformer(nn.Module):
  """See the module docstring for the call contract and the sites."""
  config: Seq2SeqConfig = CONFIGS["iwslt"]
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  def setup(self):
    cfg = self.config
    self.embed = nn.Embed(cfg.vocab_size, cfg.d_model, dtype=self.dtype,
                          param_dtype=jnp.float32,
                          embedding_init=nn.initializers.normal(
                              cfg.d_model ** -0.5))
    self.encoder = Stack(cfg, ("attn",), self.policy, self.dtype)
    self.decoder = Stack(cfg, ("self_attn", "cross_attn"), self.policy,
                         self.dtype)

  def _embed(self, tokens, side):
    cfg = self.config
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
      raise ValueError(f"Seq2SeqTransformer: {side} tokens must be integer "
                       f"(N, T), got {tokens.dtype} {tokens.shape}.")
    if tokens.shape[1] > cfg.max_len:
      raise ValueError(f"Seq2SeqTransformer: {side} length "
                       f"{tokens.shape[1]} exceeds max_len={cfg.max_len}.")
    scale = jnp.sqrt(jnp.float32(cfg.d_model)).astype(self.dtype)
    return self.embed(tokens) * scale + sinusoids(
        tokens.shape[1], cfg.d_model).astype(self.dtype)

  def encode(self, src, train: bool = False, rate_factor=None):
    """``(memory (N, S, d), source key mask (N, 1, 1, S))``."""
    src_mask = (src != PAD)[:, None, None, :]
    return self.encoder(self._embed(src, "source"), None, (src_mask,),
                        train, rate_factor), src_mask

  def decode(self, memory, src_mask, tgt_in, train: bool = False,
             rate_factor=None):
    """Logits ``(N, T, V)`` of every next token given the prefix."""
    t = tgt_in.shape[1]
    causal = (jnp.arange(t)[None, :] <= jnp.arange(t)[:, None])[None, None]
    # A padded query still attends to itself (no all-masked softmax row).
    self_mask = causal & (tgt_in != PAD)[:, None, None, :] | jnp.eye(
        t, dtype=bool)[None, None]
    h = self.decoder(self._embed(tgt_in, "target"), memory,
                     (self_mask, src_mask), train, rate_factor)
    return self.embed.attend(h).astype(jnp.float32)

  def __call__(self, src, tgt_in, train: bool, rate_factor=None):
    memory, src_mask = self.encode(src, train, rate_factor)
    logits = self.decode(memory, src_mask, tgt_in, train, rate_factor)
    check_policy(self, self.policy)
    return logits


def vanilla_policy(sites: Sequence[str], rate: float = 0.1,
                   attention: float = 0.0) -> Policy:
  """Vaswani et al.'s dropout: ``rate`` on the embedding sums and every
  sub-layer output (attention output, feed-forward branch) before the
  residual addition; ``attention`` on the attention probabilities."""
  specs = {}
  for site in sites:
    if site.endswith(("/embeddings", "/output", "/residual")):
      specs[site] = RegularizerSpec("dropout", {"rate": rate})
    elif site.endswith("/softmax") and attention > 0:
      specs[site] = RegularizerSpec("dropout", {"rate": attention})
  return Policy(specs)
