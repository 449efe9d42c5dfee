"""What every trainer shares: the mesh, batch checks, the workdir, the
policy file, the resolved config, the init stream and simulated preemption.

Both trainers (:mod:`classifier`, :mod:`language_model`) import this
module; it imports neither of them.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Sequence

import jax
import ml_collections
import numpy as np

from dropgraph_jax.patterns import Policy
from dropgraph_jax.regularizers import schedules
from dropgraph_jax.regularizers._validate import check_flag, check_number
from dropgraph_jax.training import checkpointing, distributed, optimizers

# fold_in index of the initialisation key: a stream no training step uses
# (step keys are fold_in(key, step) with step < 2**31 - 1).
INIT_STREAM = 2**31 - 1


class Preempted(RuntimeError):
  """Raised by ``config.preempt_at_step`` to simulate a killed run."""


class NonFiniteLoss(RuntimeError):
  """The training loss or the parameters became NaN or infinite."""


def _stop(what: str, step: int, latest_checkpoint) -> None:
  kept = ("no checkpoint was written" if latest_checkpoint is None else
          f"the last checkpoint (step {latest_checkpoint}) is kept")
  raise NonFiniteLoss(
      f"{what} at step {step}: training stopped and {kept}. Check the "
      "learning rate and the data; resuming from the kept checkpoint "
      "repeats the same steps.")


def check_finite(step: int, loss: float, latest_checkpoint) -> None:
  """Stops a run whose mean training ``loss`` is not finite (trainers call
  it at logging steps, where they read the loss anyway)."""
  if not np.isfinite(loss):
    _stop(f"training loss is {loss}", step, latest_checkpoint)


def check_finite_state(step: int, params, latest_checkpoint) -> None:
  """Before a checkpoint save: every parameter finite, or the run stops and
  the checkpoint is not written (one reduction and host sync per save)."""
  if not checkpointing.all_finite(params):
    _stop("parameters are not finite", step, latest_checkpoint)


def resolved(config: ml_collections.ConfigDict, **fields
             ) -> ml_collections.ConfigDict:
  """A locked copy of ``config`` with ``fields`` set (e.g. the step count
  derived from the data); the caller's config is never changed."""
  config = copy.deepcopy(config)
  with config.unlocked():
    for name, value in fields.items():
      setattr(config, name, value)
  config.lock()
  return config


def optimizer_and_ramp(config, steps_per_epoch: int, total_steps: int):
  """``(tx, lr_schedule, rate_factor_fn)``: the optimizer of
  :mod:`optimizers` and the regularizer ramp as a traced rate factor."""
  tx, lr_schedule = optimizers.make_optimizer(config, steps_per_epoch)
  ramp = ramp_steps(config, steps_per_epoch, total_steps)
  return tx, lr_schedule, schedules.progress(ramp,
                                             config.regularizer.schedule)


# Fields a resumed run may never change (the state would not be the one
# its checkpoint continues), and fields that never matter to a resume.
FIXED_ON_RESUME = ("model", "model_kwargs", "dataset", "train_split",
                   "train_examples", "data_seed", "seed", "batch_size",
                   "num_train_steps", "regularizer.name", "dtype", "seq_len",
                   "mem_len")
IGNORED_ON_RESUME = ("preempt_at_step", "allow_config_change",
                     "compare_baseline")


def _flat(tree, prefix: str = "") -> dict:
  out = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    out.update(_flat(value, name + ".") if isinstance(value, dict)
               else {name: value})
  return out


def config_record(config) -> dict:
  """The resolved config as the JSON dict stored with every checkpoint."""
  return json.loads(config.to_json_best_effort())


def _check_resume(workdir: str, stored: dict, config) -> None:
  current = _flat(config_record(config))
  stored = _flat(stored)
  changed = sorted(k for k in set(stored) | set(current)
                   if stored.get(k) != current.get(k) and
                   not k.startswith(IGNORED_ON_RESUME))
  fixed = [k for k in changed if k.startswith(FIXED_ON_RESUME)]
  if fixed or (changed and not config.get("allow_config_change", False)):
    shown = ", ".join(f"{k}: {stored.get(k)!r} -> {current.get(k)!r}"
                      for k in (fixed or changed)[:8])
    fix = ("these can never change on a resume; use another --workdir"
           if fixed else "pass --config.allow_config_change=True to "
           "continue with the new values, or another --workdir")
    raise ValueError(f"workdir {workdir!r} holds a run of another config "
                     f"({shown}): {fix}.")


def record_config(workdir: str, config, stored=None) -> None:
  """Writes the resolved config to ``workdir/config.json``; on a resume
  (``stored``: the config saved with the checkpoint, or ``True`` to read
  ``config.json``), first compares the two and refuses a changed field,
  naming it, unless ``config.allow_config_change`` (never for
  :data:`FIXED_ON_RESUME`)."""
  path = os.path.join(workdir, "config.json")
  if stored is True and os.path.exists(path):
    with open(path) as f:
      stored = json.load(f)
  if isinstance(stored, dict):
    _check_resume(workdir, stored, config)
  if not distributed.is_primary():
    return
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(config.to_json_best_effort(indent=1, sort_keys=True))
  os.replace(tmp, path)


def open_checkpoints(config, workdir: str, state, set_data=None):
  """The run's checkpoint manager and its latest checkpoint
  (``checkpointing.restore_latest``'s tuple, or ``None``), after checking
  the config against the one the checkpoint was saved with (or, for older
  checkpoints, the workdir's ``config.json``)."""
  mngr = checkpointing.manager(os.path.join(workdir, "checkpoints"),
                               save_every=config.checkpoint_every_steps,
                               keep=config.keep_checkpoints,
                               async_save=config.async_checkpointing)
  resuming = mngr.latest_step() is not None
  record_config(workdir, config,
                resuming and (checkpointing.stored_config(mngr) or True))
  return mngr, checkpointing.restore_latest(mngr, state, set_data)


def to_global(batch, sharding):
  """This host's part of a global batch (a pytree of arrays) -> global
  arrays on ``sharding`` (replicated: every host passes the whole)."""
  return jax.tree.map(
      lambda v: jax.make_array_from_process_local_data(sharding, v), batch)


def param_count(params) -> int:
  """Trainable parameters (DropGraph's graph weights included)."""
  return int(sum(np.size(x) for x in jax.tree.leaves(params)))


def ramp_steps(config, steps_per_epoch: int, total_steps: int) -> int:
  """Steps of the rate ramp: ``regularizer.ramp_epochs`` epochs, or the
  whole run when it is negative (DropBlock's and Disout's references)."""
  epochs = config.regularizer.ramp_epochs
  if epochs < 0:
    return max(1, total_steps)
  return max(1, int(epochs * steps_per_epoch))


def load_policy_file(reg, sites: Sequence[str]) -> Policy:
  """``reg.policy_file`` (name='policy'), checked against ``sites``."""
  if not reg.policy_file:
    raise ValueError("config.regularizer.policy_file is empty: pass the "
                     "policy JSON (e.g. a search's best_policy.json).")
  if not os.path.isfile(reg.policy_file):
    raise ValueError(f"config.regularizer.policy_file={reg.policy_file!r} "
                     "does not exist.")
  return Policy.load(reg.policy_file).validate_sites(sites)


def check_regularizer_name(name: str, allowed: Sequence[str],
                           kind: str) -> None:
  """``name`` is one of the ``allowed`` names of this ``kind`` of model."""
  if name not in allowed:
    raise ValueError(f"config.regularizer.name must be one of "
                     f"{list(allowed)} for {kind} models, got {name!r}.")


def devices(config):
  """The devices of the ``data`` mesh: all, or the first ``mesh_devices``."""
  every = jax.devices()
  if config.mesh_devices:
    if not 0 < config.mesh_devices <= len(every):
      raise ValueError(f"config.mesh_devices must be in [1, {len(every)}], "
                       f"got {config.mesh_devices}.")
    every = every[:config.mesh_devices]
  return every


def data_mesh(config) -> jax.sharding.Mesh:
  """One ``data`` axis over :func:`devices`. ``AxisType.Auto`` on purpose:
  XLA propagates shardings through the model's internals (the regularizers
  themselves are also tested under Explicit axes)."""
  return jax.sharding.Mesh(np.array(devices(config)), ("data",),
                           axis_types=(jax.sharding.AxisType.Auto,))


# Numeric fields the trainers read: name -> (lowest value, kind, highest
# value or None); the fields of OPEN_LOW must be strictly above it.
NUMERIC_FIELDS = {
    "batch_size": (1, int, None), "eval_batch_size": (1, int, None),
    "log_every_steps": (1, int, None),
    "checkpoint_every_steps": (1, int, None),
    "keep_checkpoints": (1, int, None), "num_train_steps": (0, int, None),
    "num_epochs": (0, float, None), "learning_rate": (0, float, None),
    "weight_decay": (0, float, None), "eval_every_epochs": (0, float, None),
    "train_examples": (0, int, None), "data_seed": (0, int, None),
    "train_eval_examples": (0, int, None), "crop_padding": (0, int, None),
    "image_size": (0, int, None), "seq_len": (1, int, None),
    "mem_len": (0, int, None), "input_threads": (0, int, None),
    "prefetch_batches": (0, int, None), "lr_decay": (0, float, None),
    "lr_decay_epochs": (0, float, None), "warmup_epochs": (0, float, None),
    "momentum": (0, float, 1), "grad_clip_norm": (0, float, None),
    "label_smoothing": (0, float, 1), "mesh_devices": (0, int, None),
    "seed": (0, int, None), "preempt_at_step": (0, int, None),
    "regularizer.rate": (0, float, 1), "regularizer.alpha": (0, float, 1),
    "regularizer.block_size": (1, int, None),
    "fold": (0, int, None), "num_folds": (2, int, None),
    "num_points": (1, int, None), "synthetic_per_class": (0, int, None),
    "cluster_parts": (1, int, None), "clusters_per_batch": (1, int, None),
    "patch_size": (1, int, None), "crop_size": (1, int, None),
    "eval_size": (1, int, None), "lr_min": (0, float, None),
    "randaugment_layers": (0, int, 16), "randaugment_magnitude": (0, float, 30),
    "randaugment_translate": (0, float, 1), "randaugment_cutout": (0, float, 1),
    "uda_unsup_ratio": (1, int, None), "uda_temperature": (0, float, None),
    "uda_confidence": (0, float, 1), "uda_coefficient": (0, float, None),
    "uda_unlabelled_examples": (0, int, None),
    "adam_b2": (0, float, 1), "max_len": (2, int, None),
    "vocab_size": (8, int, None), "beam_size": (1, int, None),
    "length_penalty": (0, float, None), "bleu_examples": (0, int, None),
    "regularizer.attention_rate": (0, float, 1),
}
OPEN_LOW = ("learning_rate", "lr_decay_epochs", "regularizer.alpha",
            "uda_temperature")
# Text fields with a fixed set of values (the others are checked where
# they are read, against their registries).
CHOICES = {"dtype": ("float32", "bfloat16", "float16"),
           "randaugment_variant": ("paper", "efficientnet", "uda"),
           "uda_tsa": ("", "linear", "log", "exp"), "trainer": ("", "uda")}
FLAGS = ("nesterov", "async_checkpointing", "allow_config_change",
         "compare_baseline")


def _field(config, name: str):
  for part in name.split("."):
    if part not in config:
      return _MISSING
    config = config[part]
  return config


_MISSING = object()


def check_numbers(config) -> None:
  """Every field of :data:`NUMERIC_FIELDS` and :data:`FLAGS` the config
  has, before any work: a clear error instead of a ZeroDivisionError, a
  run that deletes its own checkpoints (keep_checkpoints=0) or trains on
  NaN."""
  for name, (low, kind, high) in NUMERIC_FIELDS.items():
    value = _field(config, name)
    if value is not _MISSING:
      check_number("config", name, value, low, high, integer=kind is int,
                   low_open=name in OPEN_LOW)
  for name in FLAGS:
    if name in config:
      check_flag("config", name, config[name])
  for name, allowed in CHOICES.items():
    if name in config and config[name] not in allowed:
      raise ValueError(f"config.{name} must be one of {list(allowed)}, got "
                       f"{config[name]!r}.")
  for epoch in config.get("lr_boundaries_epochs", ()):
    check_number("config", "lr_boundaries_epochs entries", epoch, 0)


def check_batch_sizes(config) -> None:
  """Batch sizes positive and divisible by the device count."""
  check_numbers(config)
  count = len(devices(config))
  for name in ("batch_size", "eval_batch_size"):
    if getattr(config, name) % count:
      raise ValueError(f"config.{name}={getattr(config, name)} is not "
                       f"divisible by the {count} devices; use a multiple "
                       f"of {count}.")


def ensure_writable(workdir: str) -> None:
  """The primary process creates ``workdir`` and checks it is writable;
  every other process waits for it at a barrier, then checks it exists
  (a shared file system). So processes may start in any order."""
  error = ""
  if distributed.is_primary():
    try:
      os.makedirs(workdir, exist_ok=True)
      probe = os.path.join(workdir, ".write_test")
      with open(probe, "w") as f:
        f.write("ok")
      os.remove(probe)
    except OSError as e:
      error = str(e)
  distributed.barrier(f"workdir {workdir}")
  if not error and not os.path.isdir(workdir):
    error = ("process 0 created it, but this process does not see it: "
             "every process needs the same shared file system")
  if error:
    raise ValueError(f"workdir {workdir!r} is not writable ({error}).")
