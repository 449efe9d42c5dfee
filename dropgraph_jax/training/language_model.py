"""Language-model training and evaluation (Transformer-XL on PTB / WikiText).

``train_and_evaluate(config, workdir)`` is what
:func:`dropgraph_jax.training.trainers.train_and_evaluate` calls for a token
model (``model_kind == 'tokens'``).

Data: ``config.data_dir`` is a corpus directory (``ptb.train.txt`` ...,
:mod:`dropgraph_jax.data.text`). The training tokens are cut into
``batch_size`` contiguous streams; step ``s`` reads segment
``s mod S`` (``S`` = whole segments of ``seq_len`` tokens per stream, the
ragged tail dropped) of every stream, with the targets shifted by one, as the
reference ``LMOrderedIterator``. Each host reads its rows of the streams.

Memory: the state carries each layer's memory ``(batch, mem_len, d_model)``
and ``mem_valid``, how many of its last positions are real. Both are
arrays of fixed shape, so one compiled step serves the whole run and the
memory is part of every checkpoint: a resumed run continues the streams
with exactly the memory an uninterrupted run has (tested). At the first
segment of every epoch the step resets ``mem_valid`` to 0 (the reference
restarts its memory each epoch). Gradients never flow into the memory.

Evaluation: ``valid`` and ``test`` are cut into ``eval_batch_size`` streams
and read in segments of ``seq_len`` with the memory carried, every token
scored once (the last, shorter segment is padded and masked). Perplexity is
``exp`` of the mean negative log-likelihood per token.

Regularizers (``config.regularizer.name``): ``'none'``,
``'variational_dropout'`` (the Transformer-XL PTB baseline,
:func:`dropgraph_jax.models.transformer_xl.variational_policy` with the
rates of ``config.regularizer.variational``), ``'autodropout_paper'`` (the
pattern shapes the AutoDropout paper reports,
:func:`~dropgraph_jax.models.transformer_xl.autodropout_paper_policy`) or
``'policy'`` (a policy JSON, e.g. an AutoDropout search result). The ramp (``regularizer.schedule``)
enters as a traced ``rate_factor``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Dict, Optional, Tuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from dropgraph_jax.data import text as text_data
from dropgraph_jax.models import get_model, list_sites
from dropgraph_jax.models.transformer_xl import (
  autodropout_paper_policy,
  variational_policy,
)
from dropgraph_jax.patterns import Policy
from dropgraph_jax.regularizers import _validate
from dropgraph_jax.training import checkpointing, common
from dropgraph_jax.training.run_log import RunLog

LM_REGULARIZERS = ("none", "variational_dropout", "autodropout_paper",
                   "policy")


@flax.struct.dataclass
class LMState:
  step: jax.Array            # int32 scalar
  params: Any
  opt_state: Any
  mems: Tuple[jax.Array, ...]  # n_layer x (batch, mem_len, d_model)
  mem_valid: jax.Array       # int32 scalar: real positions at the end


def build_model(config: ml_collections.ConfigDict, vocab_size: int,
                policy: Optional[Policy] = None):
  """The config's Transformer-XL with the corpus vocabulary and lengths."""
  base = get_model(config.model, **config.model_kwargs).config
  txl = dataclasses.replace(base, vocab_size=vocab_size,
                            tgt_len=config.seq_len, mem_len=config.mem_len)
  return get_model(config.model, **{**dict(config.model_kwargs),
                                    "config": txl, "policy": policy,
                                    "dtype": jnp.dtype(config.dtype)})


def build_lm_policy(config, vocab_size: int) -> Optional[Policy]:
  reg = config.regularizer
  common.check_regularizer_name(reg.name, LM_REGULARIZERS, "language")
  if reg.name == "none":
    return None
  for group in ("variational", "autodropout"):
    for name, rate in dict(reg.get(group, {})).items():
      _validate.check_rate("config", rate, f"regularizer.{group}.{name}")
  sites = list_sites(build_model(config, vocab_size), (1, config.seq_len),
                     dtype=jnp.int32)
  if reg.name == "policy":
    return with_baseline_ends(common.load_policy_file(reg, sites), sites,
                              reg.variational)
  if reg.name == "autodropout_paper":
    rates = dict(reg.get("autodropout", {}))
    return autodropout_paper_policy(
        sites, config.seq_len, embedding=reg.variational.embedding,
        final=reg.variational.final, **rates)
  return variational_policy(sites, **dict(reg.variational))


def with_baseline_ends(policy: Policy, sites, rates) -> Policy:
  """``policy`` plus the variational baseline's embedding and final-state
  dropout (``rates.embedding``, ``rates.final``) where it names neither.

  AutoDropout searches the Transformer's sub-layer patterns; the baseline
  it is compared with also drops the embedding and the final hidden state.
  Without these two a policy run (and the search's reward) would differ
  from the baseline in more than the patterns.
  """
  ends = variational_policy([s for s in sites if s in ("embeddings",
                                                       "final")],
                            embedding=rates.embedding, final=rates.final)
  return Policy({**ends.sites, **policy.sites})


def _nll(logits, targets):
  return optax.softmax_cross_entropy_with_integer_labels(logits, targets)


def make_lm_steps(model, tx, rate_factor_fn, base_key, segments_per_epoch):
  mem_len = model.config.mem_len

  def train_step(state: LMState, inputs, targets):
    key = jax.random.fold_in(base_key, state.step)
    first = state.step % segments_per_epoch == 0
    valid = jnp.where(first, 0, state.mem_valid)
    mems = tuple(jnp.where(first, jnp.zeros_like(m), m) for m in state.mems)
    factor = rate_factor_fn(state.step)

    def loss_fn(params):
      logits, new_mems = model.apply(
          {"params": params}, inputs, train=True, mems=mems,
          rate_factor=factor, mem_valid=valid, rngs={"dropout": key})
      return jnp.mean(_nll(logits, targets)), new_mems

    (loss, new_mems), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    new_state = LMState(
        state.step + 1, optax.apply_updates(state.params, updates), opt_state,
        new_mems, jnp.minimum(valid + inputs.shape[1], mem_len))
    return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads),
                       "rate_factor": factor}

  def eval_step(params, mems, valid, inputs, targets, mask):
    logits, new_mems = model.apply({"params": params}, inputs, train=False,
                                   mems=mems, mem_valid=valid)
    nll = _nll(logits, targets) * mask
    return (jnp.sum(nll), jnp.sum(mask), new_mems,
            jnp.minimum(valid + inputs.shape[1], mem_len))

  return train_step, eval_step


def host_rows(streams: np.ndarray) -> np.ndarray:
  """This host's rows of the global ``(batch, L)`` streams."""
  count, index = jax.process_count(), jax.process_index()
  rows = streams.shape[0] // count
  return streams[index * rows:(index + 1) * rows]


def evaluate_lm(eval_step, params, model, ids: np.ndarray, batch: int,
                seq_len: int, sharding) -> Dict[str, float]:
  """Mean NLL and perplexity of ``ids`` read as ``batch`` streams."""
  streams = host_rows(text_data.batchify(ids, batch))
  mems = jax.device_put(model.initial_mems(batch, model.config.mem_len),
                        sharding)
  # Placed as eval_step returns it (replicated): an uncommitted zero would
  # compile eval_step a second time for the later calls.
  valid = jax.device_put(np.zeros((), np.int32),
                         NamedSharding(sharding.mesh, P()))
  total, count = 0.0, 0.0
  for _, inputs, targets in text_data.segments(streams, seq_len):
    real = inputs.shape[1]
    mask = np.zeros((inputs.shape[0], seq_len), np.float32)
    mask[:, :real] = 1.0
    pad = ((0, 0), (0, seq_len - real))
    inputs, targets = np.pad(inputs, pad), np.pad(targets, pad)
    loss, n, mems, valid = eval_step(
        params, mems, valid, *(jax.make_array_from_process_local_data(
            sharding, a) for a in (inputs, targets, mask)))
    total += float(loss)
    count += float(n)
  mean = total / count
  return {"loss": mean, "perplexity": float(np.exp(mean))}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str
                       ) -> Dict[str, Any]:
  """Trains a Transformer-XL; writes logs, checkpoints and results.json
  (``valid_perplexity``, ``test_perplexity`` and, in eval mode on the
  training split's first ``len(valid)`` tokens, ``train_eval_perplexity``);
  returns the results.
  ``config`` is not changed."""
  start_time = time.time()
  common.check_batch_sizes(config)
  common.ensure_writable(workdir)
  if not config.data_dir:
    raise ValueError("config.data_dir must name the corpus directory "
                     "(ptb.train.txt, ptb.valid.txt, ptb.test.txt), e.g. "
                     "unzip ptb.zip to /tmp/ptb and pass "
                     "--config.data_dir=/tmp/ptb.")
  corpus = text_data.load_corpus(config.data_dir)
  streams = text_data.batchify(corpus.splits["train"], config.batch_size)
  segments_per_epoch = (streams.shape[1] - 1) // config.seq_len
  if segments_per_epoch < 1:
    raise ValueError(f"the training split is too short for batch_size="
                     f"{config.batch_size} and seq_len={config.seq_len}.")
  total_steps = config.num_train_steps or int(config.num_epochs *
                                              segments_per_epoch)
  config = common.resolved(config, num_train_steps=total_steps)
  local = host_rows(streams)

  policy = build_lm_policy(config, corpus.vocab_size)
  model = build_model(config, corpus.vocab_size, policy)
  mesh = common.data_mesh(config)
  rows = NamedSharding(mesh, P("data"))
  replicated = NamedSharding(mesh, P())
  tx, lr_schedule, rate_factor_fn = common.optimizer_and_ramp(
      config, segments_per_epoch, total_steps)
  base_key = jax.random.key(config.seed)

  def init(key):
    params = model.init({"params": key, "dropout": key},
                        jnp.zeros((1, config.seq_len), jnp.int32),
                        train=False)["params"]
    return LMState(jnp.zeros((), jnp.int32), params, tx.init(params),
                   model.initial_mems(config.batch_size, config.mem_len),
                   jnp.zeros((), jnp.int32))

  abstract = jax.eval_shape(init, jax.random.key(0))
  shardings = jax.tree.map(lambda _: replicated, abstract).replace(
      mems=tuple(rows for _ in abstract.mems))
  state = jax.jit(init, out_shardings=shardings)(
      jax.random.fold_in(base_key, common.INIT_STREAM))

  def check_position(position, step):
    # The stored position must be the one this config reaches at that
    # step: another corpus or batch size would resume on other data.
    expected = _position(step, segments_per_epoch)
    if position != expected:
      raise ValueError(f"this config reads {expected} at that step: the "
                       "data or batch size changed")

  mngr, restored = common.open_checkpoints(config, workdir, state,
                                          check_position)
  record = common.config_record(config)
  start_step = 0
  if restored is not None:
    start_step, state, _ = restored
    logging.info("Resumed from step %d.", start_step)

  train_step, eval_step = make_lm_steps(model, tx, rate_factor_fn, base_key,
                                        segments_per_epoch)
  train_step = jax.jit(train_step, in_shardings=(shardings, rows, rows),
                       out_shardings=(shardings, replicated),
                       donate_argnums=0)
  eval_step = jax.jit(eval_step)

  def evaluate(ids, params):
    return evaluate_lm(eval_step, params, model, ids,
                       config.eval_batch_size, config.seq_len, rows)

  run_log = RunLog(workdir, total_steps, start_step, config)
  run_log.header(f"{config.model} on the corpus in {config.data_dir}",
                 common.param_count(state.params), config.regularizer.name,
                 0 if policy is None else len(policy), mesh.size)
  history = []
  tick, tick_step = time.time(), start_step
  eval_every = config.eval_every_epochs and max(
      1, int(config.eval_every_epochs * segments_per_epoch))
  tokens_per_step = config.batch_size * config.seq_len
  try:
    for step in range(start_step, total_steps):
      seg = step % segments_per_epoch
      lo = seg * config.seq_len
      inputs = local[:, lo:lo + config.seq_len]
      targets = local[:, lo + 1:lo + 1 + config.seq_len]
      state, metrics = train_step(
          state, jax.make_array_from_process_local_data(rows, inputs),
          jax.make_array_from_process_local_data(rows, targets))
      history.append(metrics)
      done = step + 1
      if mngr.should_save(done) or done == total_steps:
        common.check_finite_state(done, state.params, mngr.latest_step())
      if done % config.log_every_steps == 0 or done == total_steps:
        values = {k: float(np.mean([jax.device_get(m[k]) for m in history]))
                  for k in history[0]}
        common.check_finite(done, values["loss"], mngr.latest_step())
        elapsed = max(time.time() - tick, 1e-9)
        run_log.scalars(done, {
            "train/loss": values["loss"],
            "train/perplexity": float(np.exp(values["loss"])),
            "train/grad_norm": values["grad_norm"],
            "train/tokens_per_sec": (done - tick_step) * tokens_per_step /
                                    elapsed,
            "train/learning_rate": float(lr_schedule(done)),
            **({} if policy is None else  # no ramp without a regularizer
               {"train/regularizer_rate_factor": values["rate_factor"]})})
        history, tick, tick_step = [], time.time(), done
      checkpointing.save(mngr, done, state,
                         _position(done, segments_per_epoch), config=record)
      if eval_every and done % eval_every == 0 and done != total_steps:
        scores = evaluate(corpus.splits["valid"], state.params)
        run_log.scalars(done, {f"valid/{k}": v for k, v in scores.items()})
      if config.preempt_at_step and done == config.preempt_at_step:
        mngr.wait_until_finished()
        raise common.Preempted(f"simulated preemption after step {done}")
    checkpointing.save(mngr, total_steps, state,
                       _position(total_steps, segments_per_epoch),
                       force=mngr.latest_step() != total_steps, config=record)
    mngr.wait_until_finished()
  finally:
    mngr.close()
  valid = evaluate(corpus.splits["valid"], state.params)
  test = evaluate(corpus.splits["test"], state.params)
  # Eval-mode perplexity on the training split's head (as many tokens as
  # validation) says whether the model could overfit at all.
  train_eval = evaluate(
      corpus.splits["train"][:len(corpus.splits["valid"])], state.params)
  run_log.scalars(total_steps, {
      **{f"valid/{k}": v for k, v in valid.items()},
      **{f"test/{k}": v for k, v in test.items()},
      **{f"train_eval/{k}": v for k, v in train_eval.items()}})
  run_log.close()
  results = {"model": config.model, "dataset": config.data_dir,
             "regularizer": config.regularizer.name,
             "policy_sites": 0 if policy is None else len(policy),
             "steps": total_steps, "valid_loss": valid["loss"],
             "valid_perplexity": valid["perplexity"],
             "test_loss": test["loss"], "test_perplexity": test["perplexity"],
             "train_eval_perplexity": train_eval["perplexity"],
             "wall_time_s": time.time() - start_time, "devices": mesh.size,
             "backend": jax.default_backend()}
  run_log.write_results(results)
  results["state"] = state
  return results


def _position(step: int, segments_per_epoch: int) -> Dict[str, int]:
  """The input position after ``step`` steps (stored in checkpoints)."""
  return {"epoch": step // segments_per_epoch,
          "segment": step % segments_per_epoch}
