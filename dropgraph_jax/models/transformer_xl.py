"""Transformer-XL (Dai et al. 2019) language model with named sites.

The architecture of the reference PyTorch ``mem_transformer.py``
(``RelPartialLearnableDecoderLayer``, ``div_val=1``, no adaptive softmax):

* token embedding scaled by sqrt(d_model), tied with the output layer
  (``logits = h E^T + b``);
* relative positional attention: sinusoidal embeddings R of the distances
  klen-1 .. 0, content and position terms with the global biases u
  (``r_w_bias``) and v (``r_r_bias``) shared by all layers,
  ``score = ((q + u) k^T + rel_shift((q + v) (R W_r)^T)) / sqrt(d_head)``,
  causal mask ``j > i + mlen``;
* post-norm residual blocks (attention, then ReLU feed-forward);
* segment-level recurrence: each layer's input of the previous segment is
  kept as memory (the last ``mem_len`` positions, no gradient) and
  prepended to the keys and values of the next segment.

``__call__(tokens (N, T) int, train, mems=None, rate_factor=None,
mem_valid=None)`` returns ``(logits (N, T, V) float32, new_mems)``;
``new_mems`` is a tuple of ``n_layer`` arrays ``(N, mem_len, d_model)``.
``mem_valid`` (an int scalar, may be traced) says how many of the *last*
memory positions hold real states; the others are masked out of the
attention. A trainer keeps fixed-shape memories (zeros, ``mem_valid=0``,
at the start of a stream) so that one compiled step serves the whole run
and the memory can be checkpointed (:mod:`dropgraph_jax.training.language_model`).

Sites (AutoDropout's Transformer placement plus the embedding and output):
``embeddings``, ``layer{i}/attn/query``, ``.../key``, ``.../value``,
``.../softmax`` (the attention probabilities as ``(N * heads, T, klen)``),
``.../output`` (after the output projection), ``layer{i}/residual`` (the
feed-forward branch before its residual addition) and ``final`` (before the
output layer). The Transformer-XL PTB baseline is variational dropout at
these sites (:func:`variational_policy`).

PTB configuration (``CONFIGS['ptb']``): the authors never released their PTB
code (kimiyoung/transformer-xl issues 16, 35, 109) and the paper states
only its size, 24M parameters. Ours: 16 layers, d_model 320, 8 heads of
40, d_inner 1280, tied 10k-word embeddings, segment and memory length 70
(AutoDropout's setting): 24.6M parameters (a test checks the count).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dropgraph_jax.models.sites import Site, apply_site, check_policy
from dropgraph_jax.patterns.policy import Policy, RegularizerSpec
from dropgraph_jax.patterns.transformer import TransformerPattern


@dataclasses.dataclass(frozen=True)
class TXLConfig:
  vocab_size: int = 10000
  n_layer: int = 16
  d_model: int = 320
  n_head: int = 8
  d_head: int = 40
  d_inner: int = 1280
  tgt_len: int = 70
  mem_len: int = 70
  max_segment: int = 512


CONFIGS = {
    "ptb": TXLConfig(),
    # Reduced-scale PTB runs on a CPU (experiments/reproduce): 4 layers of
    # width 128, 2,146,858 parameters with the 10k vocabulary.
    "small": TXLConfig(n_layer=4, d_model=128, n_head=4, d_head=32,
                       d_inner=512),
    "tiny": TXLConfig(vocab_size=97, n_layer=2, d_model=32, n_head=4,
                      d_head=8, d_inner=64, tgt_len=12, mem_len=12,
                      max_segment=64),
}


def positional_embedding(klen: int, d_model: int) -> jax.Array:
  """Sinusoidal embeddings of the distances klen-1, ..., 0: (klen, d)."""
  pos = jnp.arange(klen - 1, -1, -1, dtype=jnp.float32)
  inv_freq = 1.0 / (10000 ** (jnp.arange(0, d_model, 2, dtype=jnp.float32) /
                              d_model))
  angles = pos[:, None] * inv_freq[None, :]
  return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def rel_shift(x: jax.Array) -> jax.Array:
  """Aligns position scores (N, H, Q, K) by relative distance (reference)."""
  n, h, q, k = x.shape
  x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (1, 0)))
  x = x.reshape(n, h, k + 1, q)[:, :, 1:, :]
  return x.reshape(n, h, q, k)


class RelMultiHeadAttention(nn.Module):
  config: TXLConfig
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h, mem, pos_emb, u, v, train, rate_factor=None,
               mem_start=0):
    cfg = self.config
    site = functools.partial(apply_site, self.policy, "sequence", train,
                             rate_factor)
    n, qlen, _ = h.shape
    cat = h if mem is None else jnp.concatenate([mem.astype(h.dtype), h], 1)
    klen = cat.shape[1]
    hd = cfg.n_head * cfg.d_head
    dense = functools.partial(nn.Dense, use_bias=False, dtype=self.dtype,
                              param_dtype=jnp.float32)
    heads = dense(3 * hd, name="qkv")(cat)
    q = site("query", heads[:, -qlen:, :hd])
    k = site("key", heads[:, :, hd:2 * hd])
    val = site("value", heads[:, :, 2 * hd:])
    q = q.reshape(n, qlen, cfg.n_head, cfg.d_head)
    k = k.reshape(n, klen, cfg.n_head, cfg.d_head)
    val = val.reshape(n, klen, cfg.n_head, cfg.d_head)
    r = dense(hd, name="r_net")(pos_emb.astype(self.dtype)).reshape(
        klen, cfg.n_head, cfg.d_head)
    ac = jnp.einsum("nqhd,nkhd->nhqk", q + u.astype(q.dtype), k,
                    preferred_element_type=jnp.float32)
    bd = rel_shift(jnp.einsum("nqhd,khd->nhqk", q + v.astype(q.dtype), r,
                              preferred_element_type=jnp.float32))
    score = (ac + bd) / jnp.sqrt(jnp.float32(cfg.d_head))
    mlen = klen - qlen
    keys = jnp.arange(klen)[None, :]
    causal = ((keys <= jnp.arange(qlen)[:, None] + mlen) &
              (keys >= mem_start))  # (Q, K)
    score = jnp.where(causal, score, jnp.finfo(jnp.float32).min)
    prob = jax.nn.softmax(score, axis=-1).astype(self.dtype)
    prob = site("softmax", prob.reshape(n * cfg.n_head, qlen, klen)).reshape(
        n, cfg.n_head, qlen, klen)
    vec = jnp.einsum("nhqk,nkhd->nqhd", prob, val).reshape(n, qlen, hd)
    return site("output", dense(cfg.d_model, name="o_net")(vec))


class TXLLayer(nn.Module):
  config: TXLConfig
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h, mem, pos_emb, u, v, train, rate_factor=None,
               mem_start=0):
    cfg = self.config
    norm = functools.partial(nn.LayerNorm, dtype=self.dtype,
                             param_dtype=jnp.float32)
    attn = RelMultiHeadAttention(cfg, self.policy, self.dtype, name="attn")(
        h, mem, pos_emb, u, v, train, rate_factor, mem_start)
    h = norm(name="attn_norm")(h + attn)
    ff = nn.Dense(cfg.d_inner, dtype=self.dtype, param_dtype=jnp.float32,
                  name="ff1")(h)
    ff = nn.Dense(cfg.d_model, dtype=self.dtype, param_dtype=jnp.float32,
                  name="ff2")(nn.relu(ff))
    ff = Site(self.policy, "sequence", name="residual")(ff, train, rate_factor)
    return norm(name="ff_norm")(h + ff)


class TransformerXL(nn.Module):
  """Transformer-XL LM; see the module docstring for the call contract."""
  config: TXLConfig = CONFIGS["ptb"]
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tokens, train: bool, mems=None, rate_factor=None,
               mem_valid=None) -> Tuple[jax.Array, Tuple[jax.Array, ...]]:
    cfg = self.config
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
      raise ValueError(f"TransformerXL: tokens must be integer (N, T), got "
                       f"{tokens.dtype} {tokens.shape}.")
    if tokens.shape[1] > cfg.max_segment:
      raise ValueError(f"TransformerXL: segment length {tokens.shape[1]} is "
                       f"longer than this model supports (max_segment="
                       f"{cfg.max_segment}); feed it in segments with "
                       "memory.")
    if mems is not None and len(mems) != cfg.n_layer:
      raise ValueError(f"TransformerXL: mems must hold {cfg.n_layer} arrays "
                       f"(one per layer), got {len(mems)}.")
    site = functools.partial(apply_site, self.policy, "sequence", train,
                             rate_factor)
    embed = nn.Embed(cfg.vocab_size, cfg.d_model, dtype=self.dtype,
                     param_dtype=jnp.float32,
                     embedding_init=nn.initializers.normal(0.02),
                     name="embed")
    h = site("embeddings", embed(tokens) * jnp.sqrt(
        jnp.float32(cfg.d_model)).astype(self.dtype))
    mlen = 0 if mems is None else mems[0].shape[1]
    mem_start = 0 if mem_valid is None else mlen - mem_valid
    pos_emb = positional_embedding(mlen + tokens.shape[1], cfg.d_model)
    init = nn.initializers.normal(0.02)
    u = self.param("r_w_bias", init, (cfg.n_head, cfg.d_head), jnp.float32)
    v = self.param("r_r_bias", init, (cfg.n_head, cfg.d_head), jnp.float32)
    hidden = []
    for i in range(cfg.n_layer):
      hidden.append(h)
      mem = None if mems is None else mems[i]
      h = TXLLayer(cfg, self.policy, self.dtype, name=f"layer{i}")(
          h, mem, pos_emb, u, v, train, rate_factor, mem_start)
    h = site("final", h)
    bias = self.param("out_bias", nn.initializers.zeros, (cfg.vocab_size,),
                      jnp.float32)
    logits = embed.attend(h).astype(jnp.float32) + bias
    new_mems = tuple(
        jax.lax.stop_gradient(
            (hid if mems is None else jnp.concatenate(
                [mems[i].astype(hid.dtype), hid], 1))[:, -cfg.mem_len:])
        for i, hid in enumerate(hidden))
    check_policy(self, self.policy)
    return logits, new_mems

  def initial_mems(self, batch: int, length: int = 0
                   ) -> Tuple[jax.Array, ...]:
    """Zero memories ``(batch, length, d_model)`` per layer: length 0 starts
    a stream; ``length=mem_len`` with ``mem_valid=0`` gives the same
    outputs with the fixed shape a compiled training step wants."""
    cfg = self.config
    return tuple(jnp.zeros((batch, length, cfg.d_model), self.dtype)
                 for _ in range(cfg.n_layer))


def variational_policy(sites: Sequence[str], embedding: float = 0.4,
                       hidden: float = 0.25, attention: float = 0.1,
                       final: float = 0.4) -> Policy:
  """The variational-dropout baseline: one mask per sequence at the
  embedding, every sub-layer output and the final hidden state, and plain
  dropout on the attention probabilities (Transformer-XL's ``dropatt``)."""
  specs = {}
  for site in sites:
    if site == "embeddings":
      specs[site] = RegularizerSpec("variational_dropout",
                                    {"rate": embedding})
    elif site == "final":
      specs[site] = RegularizerSpec("variational_dropout", {"rate": final})
    elif site.endswith(("attn/output", "/residual")):
      specs[site] = RegularizerSpec("variational_dropout", {"rate": hidden})
    elif site.endswith("attn/softmax"):
      specs[site] = RegularizerSpec("dropout", {"rate": attention})
  return Policy(specs)


def autodropout_paper_policy(sites: Sequence[str], seq_len: int,
                             embedding: float = 0.4, attention: float = 0.25,
                             feed_forward: float = 0.25, final: float = 0.4
                             ) -> Policy:
  """AutoDropout's PTB pattern as far as the paper describes it.

  The searched policy was never published; the paper ("Qualitative analysis
  of the AutoDropout's dropout pattern") says only that the patterns of the
  multi-head attention resemble variational dropout while the
  feed-forward pattern follows word dropout. This builds exactly that:
  query, key, value, softmax and output get ``TransformerPattern(size=
  seq_len, stride=0, share_t=True, share_c=False)`` (one mask per sequence),
  the feed-forward residual gets ``TransformerPattern(size=1, stride=0,
  share_t=False, share_c=True)`` (whole tokens), and the embedding and the
  final hidden state keep the variational baseline. The rates are ours.
  """
  attn = TransformerPattern(size=seq_len, stride=0, share_t=True,
                            share_c=False, rate=attention)
  word = TransformerPattern(size=1, stride=0, share_t=False, share_c=True,
                            rate=feed_forward)
  specs = dict(variational_policy(sites, embedding=embedding,
                                  final=final).sites)
  for site in sites:
    if site.endswith("/residual"):
      specs[site] = word
    elif "/attn/" in site:
      specs[site] = attn
  return Policy(specs)
