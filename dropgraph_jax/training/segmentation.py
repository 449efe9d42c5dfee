"""The segmentation trainer (``model_kind == 'segmentation'``): U-Net and
Attention U-Net on MoNuSeg, DropGraph Table 3.

The classifier trainer's machinery with per-pixel labels: one ``jax.jit``
step over the ``data`` mesh with the state donated, keys from
``fold_in(key, step)``, the regularizer ramp as a traced rate factor,
checkpoints with the input position and the integrity record (exact
resume), ``log.txt`` / TensorBoard / ``results.json`` with provenance.
The loss is the mean per-pixel cross entropy (the paper's) over the
pixels not labelled 255 (VOC's borders and padding); evaluation
accumulates one confusion matrix over the test split
(:mod:`segmentation_metrics`) and reports the foreground IoU and Dice
(the paper's MoNuSeg "mIoU" and "DICE"), mIoU over both classes and
pixel accuracy, on the test split and, in eval mode, on the training
patches.

Placement (``config.regularizer.placement='paper'``):
:func:`dropgraph_jax.models.unet.paper_policy`, the deepest encoder level
(``regularizer.level`` picks another).
"""

from __future__ import annotations

import functools
import time
from typing import Any, Dict, Optional

import jax
import jax.numpy as jnp
import ml_collections
import optax

from dropgraph_jax.data import segmentation as seg_data
from dropgraph_jax.models import get_model, list_sites
from dropgraph_jax.models import resnet as resnet_lib
from dropgraph_jax.models import unet as unet_lib
from dropgraph_jax.models.unet import UNet
from dropgraph_jax.patterns import Policy, RegularizerSpec
from dropgraph_jax.regularizers import registry
from dropgraph_jax.training import common, supervised
from dropgraph_jax.training import segmentation_metrics as metrics
from dropgraph_jax.training.supervised import TrainState

AUGMENTATIONS = ("flip_rot90", "scale_flip_crop", "none")
REGULARIZER_NAMES = ("none", "dropout", "spatial_dropout", "drop_block",
                     "disout", "dropgraph")


def build_policy(config, input_shape) -> Optional[Policy]:
  reg = config.regularizer
  common.check_regularizer_name(reg.name, REGULARIZER_NAMES, "segmentation")
  if reg.name == "none":
    return None
  options = {name: reg[name]
             for name in registry.get(reg.name).config_options}
  options.update(dict(reg.get("options", {})))
  spec = RegularizerSpec(reg.name, options).validate("config.regularizer")
  model = get_model(config.model, **config.model_kwargs)
  sites = list_sites(model, input_shape)
  if isinstance(model, UNet):
    return unet_lib.paper_policy(sites, spec, reg.get("level") or None)
  # FCN-32s / DeepLabV3: the ResNet trunk's last two groups, as for
  # classification.
  return resnet_lib.paper_policy(
      sites, spec, stages=tuple(reg.stages), placement=reg.block_sites,
      labels=reg.site_labels, stage_scales=tuple(reg.stage_rate_scales))


def masked_cross_entropy(logits, labels) -> jax.Array:
  """Mean per-pixel cross entropy over the pixels not labelled
  ``IGNORE_LABEL`` (VOC's borders, padding)."""
  valid = labels != metrics.IGNORE_LABEL
  ce = optax.softmax_cross_entropy_with_integer_labels(
      logits, jnp.where(valid, labels, 0))
  return jnp.sum(ce * valid) / jnp.maximum(jnp.sum(valid), 1)


def make_steps(model, tx, rate_factor_fn, base_key, num_classes: int):
  def objective(logits, batch):
    valid = batch["mask"] != metrics.IGNORE_LABEL
    hits = (jnp.argmax(logits, -1) == batch["mask"]) & valid
    return masked_cross_entropy(logits, batch["mask"]), {
        "pixel_accuracy": jnp.sum(hits) / jnp.maximum(jnp.sum(valid), 1)}

  train_step = supervised.make_train_step(model, tx, rate_factor_fn,
                                          base_key, objective)

  def eval_step(state: TrainState, batch):
    logits = model.apply({"params": state.params,
                          "batch_stats": state.batch_stats}, batch["image"],
                         train=False)
    return metrics.confusion_matrix(batch["mask"], jnp.argmax(logits, -1),
                                    num_classes, mask=batch["valid"])

  return train_step, eval_step


def evaluate(eval_step, state, split, batch_size, sharding) -> Dict[str, float]:
  total = None
  for batch in seg_data.eval_batches(split, batch_size):
    cm = eval_step(state, common.to_global(batch, sharding))
    total = cm if total is None else total + cm
  return metrics.scores(jax.device_get(total))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str
                       ) -> Dict[str, Any]:
  """Trains ``config.model`` on ``config.dataset``; returns the metrics."""
  start_time = time.time()
  common.check_batch_sizes(config)
  if config.augment not in AUGMENTATIONS:
    raise ValueError(f"config.augment must be one of {list(AUGMENTATIONS)} "
                     f"for segmentation, got {config.augment!r}.")
  common.ensure_writable(workdir)
  train_split = seg_data.load_split(config, config.train_split)
  test_split = seg_data.load_split(config, config.eval_split)
  input_shape = (1,) + tuple(train_split.image_shape)
  steps_per_epoch, total_steps = supervised.steps_of(
      config, train_split.num_examples, "patches")
  config = common.resolved(config, num_train_steps=total_steps)
  policy = build_policy(config, input_shape)
  built = supervised.setup(config, policy, train_split.num_classes, steps_per_epoch)
  model, mesh = built.model, built.mesh
  train_step, eval_step, data_sharding, replicated = supervised.jit_steps(
      *make_steps(model, built.tx, built.rate_factor_fn, built.base_key,
                  train_split.num_classes), mesh)
  state = supervised.init_state(model, built.tx, input_shape, built.base_key,
                                replicated)
  iterator = supervised.iterate(seg_data.train_dataset(
      train_split, global_batch=config.batch_size, seed=config.seed,
      augment=config.augment != "none"), config)

  def scores_on(split, state):
    return evaluate(eval_step, state, split, config.eval_batch_size,
                    data_sharding)

  state, run_log = supervised.train(
      config, workdir, state=state, iterator=iterator, train_step=train_step,
      evaluate=functools.partial(scores_on, test_split), sharding=data_sharding,
      policy=policy, mesh=mesh, lr_schedule=built.lr_schedule,
      steps_per_epoch=steps_per_epoch, examples="patches")
  scores, fit = supervised.final_scores(
      run_log, total_steps, functools.partial(scores_on, state=state),
      test_split, train_split)
  results = {**supervised.results_base(config, policy, total_steps,
                                       start_time, mesh),
             **{f"test_{k}": v for k, v in scores.items()},
             **{f"train_eval_{k}": v for k, v in fit.items()}}
  run_log.write_results(results)
  results["state"] = state
  return results
