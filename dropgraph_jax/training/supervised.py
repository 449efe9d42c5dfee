"""The training loop the trainers share: the image classifier
(:mod:`classifier`), segmentation, UDA, translation, point clouds, graph
classification and Cluster-GCN (node classification, one compiled scan,
and the language model keep their own).

A trainer builds its data, model, optimizer and jitted steps; this module
holds the rest, identical for all: the train state (params, batch
statistics, optimizer state, step), its initialisation from the
``INIT_STREAM`` key, the input iterator, and :func:`train` (checkpoint
restore with the input position inside the refusal path, the header,
the step loop with logging, NaN guards, periodic evaluation, checkpoints
and simulated preemption, the final save). Its ``train_step(state,
batch)`` returns ``(state, metrics)`` with ``loss`` and ``rate_factor``
among the metrics; ``evaluate(state)`` returns a dict of scores.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Dict, Tuple

import flax
import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from dropgraph_jax.models import get_model
from dropgraph_jax.training import checkpointing, common
from dropgraph_jax.training.run_log import RunLog


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any


def init_state(model, tx, input_shape, base_key, sharding) -> TrainState:
  """The initial state, placed on ``sharding`` (replicated)."""
  def init(key):
    variables = model.init({"params": key, "dropout": key},
                           jnp.zeros(input_shape, jnp.float32), train=False)
    return TrainState(jnp.zeros((), jnp.int32), variables["params"],
                      variables.get("batch_stats", {}),
                      tx.init(variables["params"]))
  return jax.jit(init, out_shardings=sharding)(
      jax.random.fold_in(base_key, common.INIT_STREAM))


def gradient_step(state: TrainState, tx, loss_fn: Callable
                  ) -> Tuple[TrainState, jax.Array, Any]:
  """One optimizer step of every trainer: ``loss_fn(params) -> (loss,
  (aux, batch_stats))``; returns ``(new state, loss, aux)``."""
  (loss, (aux, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  return TrainState(state.step + 1, optax.apply_updates(state.params,
                                                        updates),
                    stats, opt_state), loss, aux


def make_train_step(model, tx, rate_factor_fn, base_key,
                    objective: Callable) -> Callable:
  """``train_step(state, batch) -> (state, metrics)``: one optimizer step
  on ``objective(logits, batch) -> (loss, {metric: value})``, the
  model's batch statistics updated, the dropout key ``fold_in(base_key,
  step)`` and the regularizer ramp's ``rate_factor`` at the step."""
  def train_step(state: TrainState, batch):
    key = jax.random.fold_in(base_key, state.step)
    factor = rate_factor_fn(state.step)

    def loss_fn(params):
      logits, updates = model.apply(
          {"params": params, "batch_stats": state.batch_stats},
          batch["image"], train=True, rate_factor=factor,
          rngs={"dropout": key}, mutable=["batch_stats"])
      loss, metrics = objective(logits, batch)
      return loss, (metrics, updates["batch_stats"])

    new_state, loss, metrics = gradient_step(state, tx, loss_fn)
    return new_state, {"loss": loss, **metrics, "rate_factor": factor}
  return train_step


def iterate(dataset: grain.MapDataset, config):
  """The dataset's checkpointable iterator with the config's threads."""
  return iter(dataset.to_iter_dataset(grain.ReadOptions(
      num_threads=config.input_threads,
      prefetch_buffer_size=config.prefetch_batches)))


def _means(history, policy, lr_schedule, done: int) -> Dict[str, float]:
  means = {f"train/{k}": float(np.mean([jax.device_get(m[k])
                                        for m in history]))
           for k in history[0]}
  factor = means.pop("train/rate_factor")
  if policy is not None:  # no ramp to show without a regularizer
    means["train/regularizer_rate_factor"] = factor
  means["train/learning_rate"] = float(lr_schedule(done))
  return means


def train(config, workdir: str, *, state: TrainState, iterator,
          train_step: Callable, evaluate: Callable, sharding, policy,
          mesh, lr_schedule, steps_per_epoch: int, examples: str
          ) -> Tuple[TrainState, RunLog]:
  """Runs (or resumes) the steps of ``config``; returns the final state
  and the open :class:`RunLog` (the caller logs its final evaluation,
  closes it and writes the results). ``examples``: the unit of the
  throughput metric (``'images'``)."""
  total_steps = config.num_train_steps
  mngr, restored = common.open_checkpoints(
      config, workdir, state, lambda position, _: iterator.set_state(position))
  record = common.config_record(config)
  start_step = 0
  if restored is not None:
    start_step, state, _ = restored
    logging.info("Resumed from step %d.", start_step)
  run_log = RunLog(workdir, total_steps, start_step, config)
  run_log.header(f"{config.model} on {config.dataset}",
                 common.param_count(state.params), config.regularizer.name,
                 0 if policy is None else len(policy), mesh.size)
  history = []
  tick, tick_step = time.time(), start_step
  eval_every = config.eval_every_epochs and int(
      config.eval_every_epochs * steps_per_epoch)
  try:
    for step in range(start_step, total_steps):
      state, metrics = train_step(state, common.to_global(next(iterator),
                                                          sharding))
      history.append(metrics)
      done = step + 1
      if mngr.should_save(done) or done == total_steps:
        common.check_finite_state(done, state.params, mngr.latest_step())
      if done % config.log_every_steps == 0 or done == total_steps:
        means = _means(history, policy, lr_schedule, done)
        means[f"train/{examples}_per_sec"] = (
            (done - tick_step) * config.batch_size /
            max(time.time() - tick, 1e-9))
        common.check_finite(done, means["train/loss"], mngr.latest_step())
        run_log.scalars(done, means)
        history, tick, tick_step = [], time.time(), done
      checkpointing.save(mngr, done, state, iterator.get_state(),
                         config=record)
      if eval_every and done % eval_every == 0 and done != total_steps:
        run_log.scalars(done, {f"eval/{k}": v
                               for k, v in evaluate(state).items()})
      if config.preempt_at_step and done == config.preempt_at_step:
        mngr.wait_until_finished()
        raise common.Preempted(f"simulated preemption after step {done}")
    checkpointing.save(mngr, total_steps, state, iterator.get_state(),
                       force=mngr.latest_step() != total_steps, config=record)
    mngr.wait_until_finished()
  finally:
    mngr.close()
  return state, run_log


def jit_steps(train_step, eval_step, mesh) -> Tuple[Callable, Callable,
                                                     Any, Any]:
  """The steps jitted over ``mesh`` with the state replicated and
  donated (each step updates it in place) and the batch sharded on
  ``data``; returns ``(train_step, eval_step, data_sharding,
  replicated)``."""
  data = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  replicated = jax.sharding.NamedSharding(mesh,
                                          jax.sharding.PartitionSpec())
  train_step = jax.jit(train_step, in_shardings=(replicated, data),
                       out_shardings=(replicated, replicated),
                       donate_argnums=0)
  eval_step = jax.jit(eval_step, in_shardings=(replicated, data),
                      out_shardings=replicated)
  return train_step, eval_step, data, replicated


def steps_of(config, examples: int, unit: str) -> Tuple[int, int]:
  """``(steps_per_epoch, total_steps)`` for ``examples`` training
  ``unit``s; a global batch larger than the split is refused (every batch
  would repeat examples)."""
  if config.batch_size > examples:
    raise ValueError(
        f"config.batch_size={config.batch_size} is larger than the "
        f"{examples} training {unit}: every batch would repeat {unit}. Use "
        "a batch size of at most the split's size.")
  steps_per_epoch = max(1, examples // config.batch_size)
  return steps_per_epoch, (config.num_train_steps or
                           int(config.num_epochs * steps_per_epoch))


@dataclasses.dataclass
class Setup:
  """What both trainers build the same way from the config."""
  model: Any
  mesh: Any
  tx: Any
  lr_schedule: Callable
  rate_factor_fn: Callable
  base_key: jax.Array


def build_model(config, policy, num_classes: int):
  """The config's model with ``policy`` (``None``: none) and the data's
  classes unless ``model_kwargs`` say otherwise."""
  model_kwargs = {"num_classes": num_classes, **config.model_kwargs}
  return get_model(config.model, policy=policy,
                   dtype=jnp.dtype(config.dtype), **model_kwargs)


def setup(config, policy, num_classes: int, steps_per_epoch: int) -> Setup:
  """The model (the data's classes unless ``model_kwargs`` say), the
  mesh, the optimizer, the ramp and the base key."""
  model = build_model(config, policy, num_classes)
  tx, lr_schedule, rate_factor_fn = common.optimizer_and_ramp(
      config, steps_per_epoch, config.num_train_steps)
  return Setup(model, common.data_mesh(config), tx, lr_schedule,
               rate_factor_fn, jax.random.key(config.seed))


def final_scores(run_log: RunLog, step: int, scores_on: Callable, test,
                 train) -> Tuple[Dict[str, float], Dict[str, float]]:
  """The test scores and the same eval-mode scores on training data
  (over- vs underfitting), logged; closes ``run_log``."""
  scores, fit = scores_on(test), scores_on(train)
  run_log.scalars(step, {f"eval/{k}": v for k, v in scores.items()})
  run_log.scalars(step, {f"train_eval/{k}": v for k, v in fit.items()})
  run_log.close()
  return scores, fit


def results_base(config, policy, total_steps: int, start_time: float,
                 mesh) -> Dict[str, Any]:
  """The fields every NHWC trainer's ``results.json`` starts with."""
  return {"model": config.model, "dataset": config.dataset,
          "regularizer": config.regularizer.name,
          "policy_sites": 0 if policy is None else len(policy),
          "steps": total_steps, "wall_time_s": time.time() - start_time,
          "devices": mesh.size, "backend": jax.default_backend()}

