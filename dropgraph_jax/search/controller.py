"""The AutoDropout controller: a small causal Transformer over policy tokens.

Figure 3 of the paper: the controller emits the tokens of a policy one at
a time, like a language model. Position ``t`` has its own vocabulary of
``vocab_sizes[t]`` choices (e.g. 6 sizes, 4 strides, ...). The input at
position ``t`` is the embedding of token ``t-1`` (a learned start vector at
``t = 0``) plus a learned position embedding; a pre-norm causal Transformer
produces a hidden state per position; the logits of position ``t`` are a
linear read-out restricted to its own choices (the others masked to -inf).

* :func:`log_prob` ``(params, tokens (B, L) int32) -> (B,)`` float32: the
  log-probability of whole sequences, in one teacher-forced pass.
* :func:`sample` ``(params, key, batch) -> (tokens (B, L), log_prob (B,))``:
  ancestral sampling, one position at a time inside a ``fori_loop`` (the
  sequence has a fixed length, the causal mask hides what is not yet
  sampled), so it compiles once.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dropgraph_jax.regularizers import _validate


@dataclasses.dataclass(frozen=True)
class ControllerConfig:
  vocab_sizes: Tuple[int, ...]
  d_model: int = 64
  n_layer: int = 2
  n_head: int = 4
  d_ff: int = 128
  temperature: float = 1.0

  def __post_init__(self):
    for name in ("d_model", "n_layer", "n_head", "d_ff"):
      _validate.check_number("controller", name, getattr(self, name), 1,
                             integer=True)
    _validate.check_number("controller", "temperature", self.temperature, 0,
                           low_open=True)
    if self.d_model % self.n_head:
      raise ValueError(f"controller: d_model={self.d_model} must be a "
                       f"multiple of n_head={self.n_head}.")


class _Block(nn.Module):
  cfg: ControllerConfig

  @nn.compact
  def __call__(self, h, mask):
    cfg = self.cfg
    a = nn.MultiHeadDotProductAttention(
        num_heads=cfg.n_head, qkv_features=cfg.d_model,
        deterministic=True)(nn.LayerNorm()(h), mask=mask)
    h = h + a
    f = nn.Dense(cfg.d_ff)(nn.LayerNorm()(h))
    return h + nn.Dense(cfg.d_model)(nn.relu(f))


class Controller(nn.Module):
  """``(tokens (B, L) int) -> logits (B, L, V_max)``, invalid choices -inf."""
  cfg: ControllerConfig

  @nn.compact
  def __call__(self, tokens):
    cfg = self.cfg
    sizes = np.asarray(cfg.vocab_sizes)
    length, vmax = len(sizes), int(sizes.max())
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    # Token t's embedding row: its position's offset + its value.
    embed = nn.Embed(int(sizes.sum()), cfg.d_model, name="token_embed")
    prev = embed(tokens[:, :-1] + offsets[:-1])
    start = self.param("start", nn.initializers.normal(0.02),
                       (cfg.d_model,))
    h = jnp.concatenate([jnp.broadcast_to(start, (tokens.shape[0], 1,
                                                  cfg.d_model)), prev], 1)
    h = h + self.param("pos_embed", nn.initializers.normal(0.02),
                       (length, cfg.d_model))
    mask = nn.make_causal_mask(jnp.zeros((tokens.shape[0], length)))
    for i in range(cfg.n_layer):
      h = _Block(cfg, name=f"block{i}")(h, mask)
    h = nn.LayerNorm()(h)
    # Position-specific read-out: (L, d, V_max), initialised small so the
    # first policies are close to uniform.
    w = self.param("readout", nn.initializers.normal(0.01),
                   (length, cfg.d_model, vmax))
    logits = jnp.einsum("bld,ldv->blv", h, w) / cfg.temperature
    valid = np.arange(vmax)[None, :] < sizes[:, None]  # (L, V_max)
    return jnp.where(valid[None], logits, -jnp.inf)


def init(cfg: ControllerConfig, key) -> dict:
  tokens = jnp.zeros((1, len(cfg.vocab_sizes)), jnp.int32)
  # One compiled program: run op by op, a 1-layer controller's init took
  # 5.7 s on a 2-core CPU.
  return jax.jit(lambda k: Controller(cfg).init(k, tokens)["params"])(key)


def log_prob(cfg: ControllerConfig, params, tokens) -> jax.Array:
  """log P(tokens; params) per sequence, ``(B,)`` float32."""
  logits = Controller(cfg).apply({"params": params}, tokens)
  logp = jax.nn.log_softmax(logits, axis=-1)
  picked = jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]
  return jnp.sum(picked, axis=-1)


def entropy(cfg: ControllerConfig, params, tokens) -> jax.Array:
  """Mean per-position entropy of the controller along ``tokens``."""
  logits = Controller(cfg).apply({"params": params}, tokens)
  logp = jax.nn.log_softmax(logits, axis=-1)
  p = jnp.exp(logp)
  # Masked choices have p = 0 and logp = -inf: zero logp *before* the
  # product, or the backward pass computes 0 * -inf = NaN through it.
  return -jnp.mean(jnp.sum(p * jnp.where(p > 0, logp, 0.0), axis=-1))


def sample(cfg: ControllerConfig, params, key, batch: int
           ) -> Tuple[jax.Array, jax.Array]:
  """``batch`` sequences drawn from the controller, with their log-probs."""
  length = len(cfg.vocab_sizes)
  model = Controller(cfg)

  def body(t, carry):
    tokens, total, key = carry
    key, sub = jax.random.split(key)
    logits = model.apply({"params": params}, tokens)[:, t]
    choice = jax.random.categorical(sub, logits)
    total = total + jnp.take_along_axis(
        jax.nn.log_softmax(logits), choice[:, None], axis=-1)[:, 0]
    return tokens.at[:, t].set(choice.astype(jnp.int32)), total, key

  tokens = jnp.zeros((batch, length), jnp.int32)
  tokens, total, _ = jax.lax.fori_loop(
      0, length, body, (tokens, jnp.zeros((batch,), jnp.float32), key))
  return tokens, total


def check_vocab(vocab_sizes: Sequence[int]) -> Tuple[int, ...]:
  sizes = tuple(int(n) for n in vocab_sizes)
  if not sizes or min(sizes) < 1:
    raise ValueError(f"controller: vocab_sizes must be non-empty and >= 1 "
                     f"each, got {vocab_sizes!r}.")
  return sizes
