"""Translation trainer: encoder-decoder Transformer, BLEU with sacrebleu.

``config.dataset = 'parallel:ROOT'`` (:mod:`dropgraph_jax.data.translation`),
``config.source_lang`` / ``target_lang``, splits ``train_split``,
``eval_split`` (validation: loss and perplexity during training) and
``test_split`` (BLEU at the end). Per step: teacher forcing on a batch of
sentence pairs, label-smoothed cross-entropy over the non-pad target tokens
(``label_smoothing``, 0.1 as Vaswani et al.), the optimizer of the config
(Adam, ``inverse_sqrt`` schedule for the papers' recipes).

The sentencepiece model is trained on the training split by the primary
process and written to ``workdir/spm.model`` before the first step; a
resumed run loads it instead (the ids must not change under the
checkpoints). Checkpoints, exact resume (the batch stream's position is
saved), the run log and ``results.json`` come from
:mod:`dropgraph_jax.training.supervised`, as for the image trainers.

At the end the test split is translated with beam search
(``beam_size``, GNMT length penalty ``length_penalty``;
:mod:`.beam_search`), decoded to text by sentencepiece and scored with
sacrebleu's corpus BLEU (13a tokenisation) against the raw references;
``bleu_examples`` > 0 translates only the first that many sentences (and
as many training pairs, for the train-vs-test gap). Regularizers
(``config.regularizer.name``): ``none``, ``dropout`` (Vaswani's vanilla
dropout at ``rate``, attention dropout ``attention_rate``),
``autodropout_paper`` (the patterns the AutoDropout paper describes for
Transformers,
:func:`dropgraph_jax.models.transformer_xl.autodropout_paper_policy`'s, with
vanilla dropout on the embeddings) and ``policy`` (a JSON file).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any, Dict, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dropgraph_jax.data import translation as data
from dropgraph_jax.models import get_model, list_sites
from dropgraph_jax.models.transformer_seq2seq import vanilla_policy
from dropgraph_jax.models.transformer_xl import autodropout_paper_policy
from dropgraph_jax.patterns import Policy
from dropgraph_jax.training import beam_search, common, distributed, supervised
from dropgraph_jax.training.supervised import TrainState

REGULARIZERS = ("none", "dropout", "autodropout_paper", "policy")


def build_model(config, vocab_size: int, policy: Optional[Policy] = None):
  base = get_model(config.model).config
  cfg = dataclasses.replace(base, vocab_size=vocab_size,
                            max_len=config.max_len)
  return get_model(config.model, config=cfg, policy=policy,
                   dtype=jnp.dtype(config.dtype))


def build_policy(config, vocab_size: int) -> Optional[Policy]:
  reg = config.regularizer
  common.check_regularizer_name(reg.name, REGULARIZERS, "translation")
  if reg.name == "none":
    return None
  tokens = jnp.zeros((1, config.max_len), jnp.int32)
  sites = list_sites(build_model(config, vocab_size), tokens.shape,
                     jnp.int32, tgt_in=tokens)
  if reg.name == "policy":
    return common.load_policy_file(reg, sites)
  vanilla = vanilla_policy(sites, reg.rate, reg.get("attention_rate", 0.0))
  if reg.name == "dropout":
    return vanilla
  pattern = autodropout_paper_policy(
      [s for s in sites if not s.endswith("/embeddings")], config.max_len,
      attention=reg.rate, feed_forward=reg.rate)
  return Policy({**{s: v for s, v in vanilla.sites.items()
                    if s.endswith("/embeddings")}, **pattern.sites})


def load_data(config, workdir: str):
  """The sentencepiece model (trained once, kept in ``workdir``) and the
  encoded train, validation, test and train-eval splits."""
  if not config.dataset.startswith("parallel:"):
    raise ValueError(f"translation: config.dataset must be 'parallel:ROOT',"
                     f" got {config.dataset!r}.")
  root = config.dataset[len("parallel:"):]

  def read(split):
    return data.read_parallel(root, split, config.source_lang,
                              config.target_lang)
  train_text = read(config.train_split)
  model_path = os.path.join(workdir, "spm.model")
  if distributed.is_primary() and not os.path.exists(model_path):
    data.train_sentencepiece(train_text[0] + train_text[1],
                             config.vocab_size, model_path)
  distributed.barrier("sentencepiece")
  sp = data.load_sentencepiece(model_path)
  train = data.encode(sp, *train_text, config.max_len, drop_long=True)
  valid = data.encode(sp, *read(config.eval_split), config.max_len, False)
  test = data.encode(sp, *read(config.test_split), config.max_len, False)
  count = min(config.train_eval_examples, len(train.src))
  fit = data.Encoded(train.src[:count], train.tgt_in[:count],
                     train.tgt_out[:count], train.references[:count], count)
  return sp, train, valid, test, fit


def token_losses(logits, targets, smoothing: float):
  """Per-token cross-entropy against ``targets`` smoothed by
  ``smoothing`` (uniform over the vocabulary) and the non-pad mask."""
  vocab = logits.shape[-1]
  labels = optax.smooth_labels(jax.nn.one_hot(targets, vocab), smoothing)
  return optax.softmax_cross_entropy(logits, labels), (
      targets != data.PAD).astype(jnp.float32)


def make_steps(model, tx, rate_factor_fn, base_key, smoothing: float):
  def train_step(state: TrainState, batch):
    key = jax.random.fold_in(base_key, state.step)
    factor = rate_factor_fn(state.step)

    def loss_fn(params):
      logits = model.apply({"params": params}, batch["src"],
                           batch["tgt_in"], train=True, rate_factor=factor,
                           rngs={"dropout": key})
      loss, mask = token_losses(logits, batch["tgt_out"], smoothing)
      count = jnp.maximum(mask.sum(), 1.0)
      right = (jnp.argmax(logits, -1) == batch["tgt_out"]) * mask
      return jnp.sum(loss * mask) / count, (jnp.sum(right) / count,
                                            state.batch_stats)

    state, loss, accuracy = supervised.gradient_step(state, tx, loss_fn)
    return state, {"loss": loss, "accuracy": accuracy, "rate_factor": factor}

  def eval_step(state: TrainState, batch):
    logits = model.apply({"params": state.params}, batch["src"],
                         batch["tgt_in"], train=False)
    loss, mask = token_losses(logits, batch["tgt_out"], 0.0)
    mask = mask * batch["mask"][:, None]
    return {"loss": jnp.sum(loss * mask), "count": jnp.sum(mask)}
  return train_step, eval_step


def evaluate(eval_step, state, split: data.Encoded, batch: int, sharding
             ) -> Dict[str, float]:
  """Per-token loss (no smoothing) and perplexity of ``split``."""
  totals = None
  for b in data.eval_batches(split, batch):
    out = eval_step(state, common.to_global(b, sharding))
    totals = out if totals is None else jax.tree.map(jnp.add, totals, out)
  loss = float(totals["loss"]) / float(totals["count"])
  return {"loss": loss, "perplexity": float(np.exp(loss))}


def make_translate(model, config):
  """``translate(params, src (B, L)) -> ids (B, L - 1)``, jitted."""
  beam = config.beam_size

  @jax.jit
  def translate(params, src):
    memory, mask = model.apply({"params": params}, src, method="encode")
    memory, mask = (jnp.repeat(t, beam, axis=0) for t in (memory, mask))

    def logits_fn(prefixes):
      return model.apply({"params": params}, memory, mask, prefixes,
                         method="decode")
    return beam_search.beam_search(logits_fn, src.shape[0], config.max_len,
                                   beam, data.BOS, data.EOS, data.PAD,
                                   config.length_penalty)
  return translate


def bleu(translate, params, sp, split: data.Encoded, batch: int,
         limit: int) -> Dict[str, Any]:
  """Corpus BLEU of the beam-search translations of ``split`` (its first
  ``limit`` sentences if > 0) against its raw references."""
  import sacrebleu  # pylint: disable=import-outside-toplevel
  n = len(split.src) if not limit else min(limit, len(split.src))
  hyps = []
  for start in range(0, n, batch):
    src = split.src[start:start + batch]
    padded = np.concatenate([src, np.zeros((batch - len(src),) +
                                           src.shape[1:], src.dtype)])
    ids = np.asarray(translate(params, padded))[:len(src)]
    for row in ids:
      row = row.tolist()
      hyps.append(sp.decode(row[:row.index(data.EOS)] if data.EOS in row
                            else [t for t in row if t != data.PAD]))
  score = sacrebleu.corpus_bleu(hyps, [split.references[:n]])
  return {"bleu": score.score, "sentences": n, "examples": hyps[:3]}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str
                       ) -> Dict[str, Any]:
  """Trains ``config.model`` on ``config.dataset``; writes and returns the
  results (validation / test perplexity, test BLEU)."""
  start_time = time.time()
  # Cheap checks first: the tokenizer and encoding take minutes on WMT.
  common.check_regularizer_name(config.regularizer.name, REGULARIZERS,
                                "translation")
  common.check_batch_sizes(config)
  common.ensure_writable(workdir)
  sp, train, valid, test, fit = load_data(config, workdir)
  steps_per_epoch, total = supervised.steps_of(config, len(train.src),
                                               "sentence pairs")
  config = common.resolved(config, num_train_steps=total)
  policy = build_policy(config, sp.vocab_size())
  model = build_model(config, sp.vocab_size(), policy)
  tx, lr_schedule, rate_factor_fn = common.optimizer_and_ramp(
      config, steps_per_epoch, total)
  mesh, base_key = common.data_mesh(config), jax.random.key(config.seed)
  train_step, eval_step, sharding, replicated = supervised.jit_steps(
      *make_steps(model, tx, rate_factor_fn, base_key,
                  config.label_smoothing), mesh)
  tokens = jnp.zeros((1, config.max_len), jnp.int32)

  def init(key):
    params = model.init({"params": key}, tokens, tokens, train=False)[
        "params"]
    return TrainState(jnp.zeros((), jnp.int32), params, {}, tx.init(params))
  state = jax.jit(init, out_shardings=replicated)(
      jax.random.fold_in(base_key, common.INIT_STREAM))
  iterator = supervised.iterate(data.train_dataset(
      train, global_batch=config.batch_size, seed=config.seed), config)
  scores_on = functools.partial(evaluate, eval_step,
                                batch=config.eval_batch_size,
                                sharding=sharding)
  state, run_log = supervised.train(
      config, workdir, state=state, iterator=iterator, train_step=train_step,
      evaluate=lambda s: scores_on(s, valid), sharding=sharding,
      policy=policy, mesh=mesh, lr_schedule=lr_schedule,
      steps_per_epoch=steps_per_epoch, examples="sentence pairs")
  scores = {name: scores_on(state, split) for name, split in
            (("valid", valid), ("test", test), ("train_eval", fit))}
  translate = make_translate(model, config)
  test_bleu, fit_bleu = (bleu(translate, state.params, sp, split,
                              config.eval_batch_size, config.bleu_examples)
                         for split in (test, fit))
  run_log.scalars(total, {f"{name}/{k}": v for name, s in scores.items()
                          for k, v in s.items()})
  run_log.scalars(total, {"test/bleu": test_bleu["bleu"],
                          "train_eval/bleu": fit_bleu["bleu"]})
  run_log.close()
  results = {**supervised.results_base(config, policy, total, start_time,
                                       mesh),
             **{f"{name}_{k}": v for name, s in scores.items()
                for k, v in s.items()},
             "test_bleu": test_bleu["bleu"],
             "train_eval_bleu": fit_bleu["bleu"],
             "bleu_sentences": test_bleu["sentences"],
             "test_examples": test_bleu["examples"],
             "train_pairs": len(train.src), "train_pairs_total": train.total,
             "vocab_size": sp.vocab_size()}
  run_log.write_results(results)
  results["state"] = state
  return results
