"""Training and evaluation of the image classifiers: ``train_and_evaluate``.

One compiled train step (``jax.jit`` with the state donated) over a
``jax.sharding.Mesh`` of every device with one ``data`` axis: the batch is
sharded on it, the state replicated. The mesh axis is created with
``AxisType.Auto`` on purpose: XLA propagates shardings through the model's
internals (the regularizers themselves are also tested under Explicit
axes). Multi-host runs call ``jax.distributed.initialize()`` (see main.py);
each host feeds its slice of the batch. One base key; the key of step s is
``fold_in(key, s)``. The regularizer ramp (``config.regularizer.schedule``)
enters the model as a traced ``rate_factor``: no recompilation as it moves.

Checkpoints (orbax, via :mod:`checkpointing`) hold the state and the input
position; a restarted run resumes from the latest one and ends with exactly
the parameters of an uninterrupted run (tested).
"""

from __future__ import annotations

import functools
import time
from typing import Any, Dict, Optional

import jax
import jax.numpy as jnp
import ml_collections
import optax

from dropgraph_jax.data import images as image_data
from dropgraph_jax.data import randaugment as randaugment_lib
from dropgraph_jax.models import get_model, list_sites
from dropgraph_jax.models import placement as placement_lib
from dropgraph_jax.models import regnet as regnet_lib
from dropgraph_jax.models import resnet as resnet_lib
from dropgraph_jax.patterns import Policy, RegularizerSpec
from dropgraph_jax.regularizers import registry, schedules
from dropgraph_jax.regularizers._validate import check_number, compile_regex
from dropgraph_jax.training import common, supervised
from dropgraph_jax.training.supervised import TrainState

# Library regularizers an image model takes from config.regularizer.name
# (the sequence ones, variational and word dropout, are for token models).
IMAGE_REGULARIZERS = tuple(
    name for name, entry in registry.REGISTRY.items()
    if entry.layout in ("NHWC", "N...", "any"))
REGULARIZER_NAMES = ("none", *IMAGE_REGULARIZERS, "policy")


def randaugment_options(config) -> Dict[str, Any]:
  """The RandAugment keywords of ``train_dataset`` from ``config`` (checked
  up front, so a bad N or M stops the run before compiling)."""
  options = {"num_layers": config.get("randaugment_layers", 0),
             "magnitude": config.get("randaugment_magnitude", 9.0),
             "variant": config.get("randaugment_variant", "paper"),
             "translate_fraction": config.get("randaugment_translate",
                                              100 / 224),
             "cutout_fraction": config.get("randaugment_cutout", 40 / 224)}
  randaugment_lib.check_options(**options)
  return options


def build_policy(config: ml_collections.ConfigDict, model_name: str,
                 input_shape) -> Optional[Policy]:
  """The site -> regularizer map a config asks for.

  ``regularizer.name='policy'`` loads ``regularizer.policy_file`` (e.g. an
  AutoDropout search result); a library regularizer goes to the papers'
  placement: ``'paper'`` (every block of ``regularizer.stages``, or the
  given ``blocks`` of the last stage, at the sites ``block_sites`` picks:
  ``'reference'`` or ``'post_activation'``, see
  :mod:`dropgraph_jax.models.placement`; ``stage_rate_scales`` scale the
  rate per stage) or ``'all'`` (every activation and shortcut site).
  """
  reg = config.regularizer
  common.check_regularizer_name(reg.name, REGULARIZER_NAMES, "image")
  if reg.name == "none":
    return None
  sites = list_sites(get_model(model_name, **config.model_kwargs),
                     input_shape)
  if reg.name == "policy":
    return common.load_policy_file(reg, sites)
  options = {name: reg[name]
             for name in registry.get(reg.name).config_options}
  options.update(dict(reg.get("options", {})))  # e.g. adjacency, generator
  spec = RegularizerSpec(reg.name, options).validate("config.regularizer")
  check_placement_fields(reg)
  policy = _placed(reg, sites, spec)
  if not policy.sites:
    raise ValueError(
        f"config.regularizer places {reg.name} on no site of {model_name}: "
        f"stages={tuple(reg.stages)}, blocks={tuple(reg.blocks)}, "
        f"block_sites={reg.block_sites!r}, site_labels={reg.site_labels!r} "
        f"select none of its {len(sites)} sites (e.g. {sites[:3]}).")
  return policy


def check_placement_fields(reg) -> None:
  """The placement fields' types, before any site is looked at."""
  where = "config"
  if reg.placement == "paper" and not tuple(reg.stages):
    raise ValueError("config.regularizer.stages is empty: name the stages "
                     "to regularize, e.g. (3, 4).")
  for stage in reg.stages:
    check_number(where, "regularizer.stages entries", stage, 1, integer=True)
  for block in reg.blocks:
    check_number(where, "regularizer.blocks entries", block, 0, integer=True)
  for scale in reg.stage_rate_scales:
    check_number(where, "regularizer.stage_rate_scales entries", scale, 0)
  check_number(where, "regularizer.ramp_epochs", reg.ramp_epochs)
  for name, value, allowed in (
      ("block_sites", reg.block_sites, tuple(placement_lib.PLACEMENTS)),
      ("schedule", reg.schedule, schedules.SCHEDULE_NAMES)):
    if value not in allowed:
      raise ValueError(f"config.regularizer.{name} must be one of "
                       f"{list(allowed)}, got {value!r}.")
  scales = tuple(reg.stage_rate_scales)
  if scales and len(scales) != len(tuple(reg.stages)):
    raise ValueError(f"config.regularizer.stage_rate_scales={scales} must "
                     f"give one factor per stage of regularizer.stages="
                     f"{tuple(reg.stages)}.")
  if reg.site_labels:
    compile_regex(where, "regularizer.site_labels", reg.site_labels)


def _placed(reg, sites, spec) -> Policy:
  if reg.placement == "paper" and reg.blocks:
    # RegNetX in the DropGraph paper: given blocks of the last stage only.
    return regnet_lib.paper_policy(sites, spec, stage=tuple(reg.stages)[-1],
                                   blocks=tuple(reg.blocks),
                                   placement=reg.block_sites,
                                   labels=reg.site_labels)
  if reg.placement == "paper":
    return resnet_lib.paper_policy(
        sites, spec, stages=tuple(reg.stages), placement=reg.block_sites,
        labels=reg.site_labels, stage_scales=tuple(reg.stage_rate_scales))
  if reg.placement == "all":
    return Policy({s: spec for s in sites
                   if s.rsplit("/", 1)[-1].startswith(("relu", "shortcut"))})
  if reg.placement == "regex":  # every site the site_labels regex matches
    pattern = compile_regex("config", "regularizer.site_labels",
                            reg.site_labels)
    return Policy({s: spec for s in sites if pattern.fullmatch(s)})
  raise ValueError(f"config.regularizer.placement must be 'paper', 'all' or "
                   f"'regex', got {reg.placement!r}.")


def _cross_entropy(logits, labels, smoothing: float = 0.0):
  if not smoothing:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  targets = optax.smooth_labels(
      jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32), smoothing)
  return optax.softmax_cross_entropy(logits, targets)


def make_steps(model, tx, rate_factor_fn, base_key, label_smoothing=0.0):
  def objective(logits, batch):
    loss = jnp.mean(_cross_entropy(logits, batch["label"], label_smoothing))
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) ==
                                       batch["label"])}

  train_step = supervised.make_train_step(model, tx, rate_factor_fn,
                                          base_key, objective)

  def eval_step(state: TrainState, batch):
    logits = model.apply({"params": state.params,
                          "batch_stats": state.batch_stats}, batch["image"],
                         train=False)
    mask = batch["mask"].astype(jnp.float32)
    top5 = jax.lax.top_k(logits, min(5, logits.shape[-1]))[1]
    return {"loss": jnp.sum(_cross_entropy(logits, batch["label"]) * mask),
            "correct": jnp.sum((jnp.argmax(logits, -1) == batch["label"]) *
                               mask),
            "correct5": jnp.sum(jnp.any(top5 == batch["label"][:, None], -1)
                                * mask),
            "count": jnp.sum(mask)}

  return train_step, eval_step


def evaluate(eval_step, state, split, batch_size, sharding, image_size=0
             ) -> Dict[str, float]:
  totals = None
  for batch in image_data.eval_batches(split, batch_size, image_size):
    out = eval_step(state, common.to_global(batch, sharding))
    totals = out if totals is None else jax.tree.map(jnp.add, totals, out)
  totals = jax.device_get(totals)
  count = float(totals["count"])
  return {"loss": float(totals["loss"]) / count,
          "accuracy": float(totals["correct"]) / count,
          "top5": float(totals["correct5"]) / count}


def load_train_splits(config, size: int):
  """The training split (``config.train_examples`` > 0: a class-balanced
  subset drawn with ``config.data_seed``) and a fixed subset of it,
  ``config.train_eval_examples`` images, scored in eval mode at the end as
  ``train_eval_accuracy``. Both are independent of ``config.seed``, so all
  seeds of a comparison see the same images."""
  split = image_data.load_split(config.dataset, config.train_split,
                                config.data_dir, config.seed, size)
  if config.train_examples:
    split = image_data.subset(split, config.train_examples, config.data_seed)
  count = min(config.train_eval_examples, split.num_examples)
  if count < 1:
    raise ValueError(f"config.train_eval_examples must be >= 1, got "
                     f"{config.train_eval_examples}.")
  return split, image_data.subset(split, count, config.data_seed + 1,
                                  balanced=False)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str
                       ) -> Dict[str, Any]:
  """Trains ``config.model`` on ``config.dataset``; returns final metrics.

  Writes TensorBoard summaries and ``log.txt`` (:mod:`run_log`),
  checkpoints under ``workdir/checkpoints`` and the final metrics to
  ``workdir/results.json``. ``config`` is not changed.
  """
  start_time = time.time()
  common.check_batch_sizes(config)
  common.ensure_writable(workdir)
  size = config.get("image_size", 0)
  train_split, train_eval_split = load_train_splits(config, size)
  test_split = image_data.load_split(config.dataset, config.eval_split,
                                     config.data_dir, config.seed, size)
  input_shape = (1,) + tuple(train_split.image_shape)
  steps_per_epoch, total_steps = supervised.steps_of(
      config, train_split.num_examples, "images")
  config = common.resolved(config, num_train_steps=total_steps)

  policy = build_policy(config, config.model, input_shape)
  built = supervised.setup(config, policy, train_split.num_classes, steps_per_epoch)
  model, mesh = built.model, built.mesh
  train_step, eval_step, data_sharding, replicated = supervised.jit_steps(
      *make_steps(model, built.tx, built.rate_factor_fn, built.base_key,
                  config.get("label_smoothing", 0.0)), mesh)
  state = supervised.init_state(model, built.tx, input_shape, built.base_key,
                                replicated)
  iterator = supervised.iterate(image_data.train_dataset(
      train_split, global_batch=config.batch_size, seed=config.seed,
      augment=config.augment, pad=config.crop_padding, image_size=size,
      randaugment=randaugment_options(config)), config)

  def scores_on(split, state):
    return evaluate(eval_step, state, split, config.eval_batch_size,
                    data_sharding, size)

  state, run_log = supervised.train(
      config, workdir, state=state, iterator=iterator, train_step=train_step,
      evaluate=functools.partial(scores_on, test_split), sharding=data_sharding,
      policy=policy, mesh=mesh, lr_schedule=built.lr_schedule,
      steps_per_epoch=steps_per_epoch, examples="images")
  scores, fit = supervised.final_scores(
      run_log, total_steps, functools.partial(scores_on, state=state),
      test_split, train_eval_split)
  results = {**supervised.results_base(config, policy, total_steps,
                                       start_time, mesh),
             "test_loss": scores["loss"], "test_accuracy": scores["accuracy"],
             "test_top5": scores["top5"],
             "train_eval_accuracy": fit["accuracy"],
             "train_eval_loss": fit["loss"],
             "train_examples": train_split.num_examples,
             "train_eval_examples": train_eval_split.num_examples}
  run_log.write_results(results)
  results["state"] = state
  return results
