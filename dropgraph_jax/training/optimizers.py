"""The optimizer and learning-rate schedule a config asks for (optax).

Config fields (see ``configs/default.py``):

* ``optimizer``: ``'sgd'`` (momentum, optional Nesterov; the DropGraph and
  ResNet/WRN settings), ``'adam'`` (Transformer-XL), ``'rmsprop'``
  (EfficientNet: decay 0.9, momentum 0.9, eps 1e-3, as the TF reference).
* ``weight_decay``: L2 added to the gradient before the optimizer
  (``optax.add_decayed_weights``), as PyTorch's ``SGD(weight_decay=...)``
  in the papers' code; not decoupled (AdamW-style) decay.
* ``lr_schedule``: ``'piecewise'`` (``learning_rate`` times ``lr_decay`` at
  each of ``lr_boundaries_epochs``), ``'cosine'`` (to ``lr_min``, default
  0, at the last step),
  ``'exponential'`` (times ``lr_decay`` every ``lr_decay_epochs``,
  staircase, as EfficientNet's 0.97 every 2.4 epochs), ``'inverse_time'``
  (``learning_rate / (1 + lr_decay * step)``, Keras' ``decay`` argument,
  as BiO-Net's MoNuSeg recipe: 3e-5 per step), ``'inverse_sqrt'``
  (``learning_rate * sqrt(w / (w + step))`` after the ``w``-step warm-up:
  Vaswani et al.'s and fairseq's Transformer schedule) or ``'constant'``.
* ``adam_b2``: Adam's second-moment decay (0.999; 0.98 for the
  translation Transformers, as Vaswani et al.).
* ``warmup_epochs``: linear warm-up from 0 to ``learning_rate`` first
  (then the schedule runs on from its step 0).
* ``grad_clip_norm``: > 0 clips the global gradient norm (Transformer-XL's
  0.25) before everything else.
"""

from __future__ import annotations

from typing import Tuple

import jax.numpy as jnp
import optax

OPTIMIZERS = ("sgd", "adam", "rmsprop")
LR_SCHEDULES = ("piecewise", "cosine", "exponential", "inverse_time",
                "inverse_sqrt", "constant")


def learning_rate_schedule(config, steps_per_epoch: int) -> optax.Schedule:
  """The config's schedule of step -> learning rate (warm-up included)."""
  lr = config.learning_rate
  warmup = int(round(config.get("warmup_epochs", 0.0) * steps_per_epoch))
  decay_steps = max(1, config.num_train_steps - warmup)
  name = config.lr_schedule
  if name == "piecewise":
    boundaries = {max(1, int(e * steps_per_epoch) - warmup): config.lr_decay
                  for e in config.lr_boundaries_epochs}
    schedule = optax.piecewise_constant_schedule(lr, boundaries)
  elif name == "cosine":
    schedule = optax.cosine_decay_schedule(
        lr, decay_steps, alpha=config.get("lr_min", 0.0) / lr)
  elif name == "exponential":
    every = max(1, int(round(config.lr_decay_epochs * steps_per_epoch)))
    schedule = optax.exponential_decay(lr, every, config.lr_decay,
                                       staircase=True)
  elif name == "inverse_time":
    def schedule(step, decay=config.lr_decay):
      return lr / (1.0 + decay * step)
  elif name == "inverse_sqrt":  # Vaswani et al. / fairseq, after warm-up
    def schedule(step, w=max(warmup, 1)):
      return lr * jnp.sqrt(w / (w + jnp.asarray(step, jnp.float32)))
  elif name == "constant":
    schedule = optax.constant_schedule(lr)
  else:
    raise ValueError(f"config.lr_schedule must be one of "
                     f"{list(LR_SCHEDULES)}, got {name!r}.")
  if warmup:
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, lr, warmup), schedule], [warmup])
  return schedule


def make_optimizer(config, steps_per_epoch: int
                   ) -> Tuple[optax.GradientTransformation, optax.Schedule]:
  """``(tx, schedule)`` for ``config``; ``config.num_train_steps`` must be
  final (the cosine schedule ends there)."""
  schedule = learning_rate_schedule(config, steps_per_epoch)
  name = config.get("optimizer", "sgd")
  if name == "sgd":
    opt = optax.sgd(schedule, momentum=config.momentum,
                    nesterov=config.nesterov)
  elif name == "adam":
    opt = optax.adam(schedule, b2=config.get("adam_b2", 0.999))
  elif name == "rmsprop":
    opt = optax.rmsprop(schedule, decay=0.9, eps=1e-3,
                        momentum=config.momentum)
  else:
    raise ValueError(f"config.optimizer must be one of {list(OPTIMIZERS)}, "
                     f"got {name!r}.")
  parts = []
  if config.get("grad_clip_norm", 0.0):
    parts.append(optax.clip_by_global_norm(config.grad_clip_norm))
  if config.weight_decay:
    parts.append(optax.add_decayed_weights(config.weight_decay))
  return optax.chain(*parts, opt), schedule
