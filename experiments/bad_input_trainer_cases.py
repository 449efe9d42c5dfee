"""The bad inputs of the trainers' configs: the digits image job, the LM,
the point-cloud and the segmentation trainers, each a few steps so that a
case not caught up front still ends quickly (and shows as ``silent``)."""

from __future__ import annotations

import os
import tempfile
from typing import List

import numpy as np

from configs import digits, modelnet40_dgcnn, monuseg_unet, ptb_transformer_xl
from dropgraph_jax.training import trainers as train
from experiments.bad_input_cases import Case


# --- trainer configs (the digits job, 2 steps) ---------------------------------
def _digits(**overrides):
  config = digits.get_config()
  config.num_train_steps = 2
  config.batch_size = 16
  config.eval_batch_size = 64
  config.async_checkpointing = False
  config.compare_baseline = False
  config.regularizer.name = "drop_block"
  with config.unlocked():
    config.update_from_flattened_dict(overrides)
  return config


def _train(overrides):
  def run():
    with tempfile.TemporaryDirectory() as workdir:
      train.train_and_evaluate(_digits(**overrides),
                               os.path.join(workdir, "run"))
  return run


TRAINER_CASES = [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 4096}, "batch_size"),
    ({"eval_batch_size": 0}, "eval_batch_size"),
    ({"log_every_steps": 0}, "log_every_steps"),
    ({"checkpoint_every_steps": 0}, "checkpoint_every_steps"),
    ({"keep_checkpoints": 0}, "keep_checkpoints"),
    ({"num_train_steps": -5}, "num_train_steps"),
    ({"num_epochs": float("nan")}, "num_epochs"),
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"learning_rate": -0.1}, "learning_rate"),
    ({"weight_decay": -1.0}, "weight_decay"),
    ({"momentum": 1.5}, "momentum"),
    ({"label_smoothing": 2.0}, "label_smoothing"),
    ({"warmup_epochs": -1.0}, "warmup_epochs"),
    ({"train_examples": -1}, "train_examples"),
    ({"mesh_devices": 99}, "mesh_devices"),
    ({"seed": -1}, "seed"),
    ({"nesterov": "yes"}, "nesterov"),
    ({"lr_boundaries_epochs": (float("nan"),)}, "lr_boundaries_epochs"),
    ({"optimizer": "adagrad"}, "optimizer"),
    ({"lr_schedule": "foo"}, "lr_schedule"),
    ({"augment": "foo"}, "augment"),
    ({"dtype": "float8"}, "dtype"),
    ({"model": "no_such_model"}, "no_such_model"),
    ({"dataset": "no_such_dataset_xyz"}, "no_such_dataset_xyz"),
    ({"regularizer.name": "cutout"}, "regularizer.name"),
    ({"regularizer.rate": 1.5}, "rate"),
    ({"regularizer.rate": float("nan")}, "rate"),
    ({"regularizer.block_size": 0}, "block_size"),
    ({"regularizer.alpha": float("nan")}, "alpha"),
    ({"regularizer.stages": (7,)}, "stages"),
    ({"regularizer.stages": ()}, "stages"),
    ({"regularizer.site_labels": "relu("}, "site_labels"),
    ({"regularizer.site_labels": "nothing_matches"}, "site_labels"),
    ({"regularizer.placement": "foo"}, "placement"),
    ({"regularizer.block_sites": "foo"}, "block_sites"),
    ({"regularizer.schedule": "foo"}, "schedule"),
    ({"regularizer.ramp_epochs": float("nan")}, "ramp_epochs"),
    ({"regularizer.stage_rate_scales": (0.25, 1.0, 1.0)}, "stage"),
    ({"regularizer.name": "policy"}, "policy_file"),
    ({"regularizer.name": "policy",
      "regularizer.policy_file": "/no/such/policy.json"}, "policy"),
]


def trainer_cases() -> List[Case]:
  out = [Case("image trainer", _describe(o), _train(o), names)
         for o, names in TRAINER_CASES]
  out.append(Case("image trainer", "workdir is a file", _workdir_is_a_file,
                  "workdir"))
  return out


def _corpus(root: str) -> str:
  """A toy corpus in the PTB layout (``toy.{train,valid,test}.txt``)."""
  for split, lines in (("train", 60), ("valid", 10), ("test", 10)):
    with open(os.path.join(root, f"toy.{split}.txt"), "w") as f:
      f.writelines(" ".join(f"w{(i + j) % 30}" for j in range(6)) + "\n"
                   for i in range(lines))
  return root


def _lm(data_dir: str, overrides: dict):
  def run():
    config = ptb_transformer_xl.get_config("variational_dropout")
    config.model = "transformer_xl_tiny"
    config.data_dir = data_dir
    config.batch_size, config.eval_batch_size = 8, 8
    config.seq_len, config.mem_len, config.num_train_steps = 6, 6, 2
    config.async_checkpointing = False
    with config.unlocked():
      config.update_from_flattened_dict(overrides)
    with tempfile.TemporaryDirectory() as workdir:
      train.train_and_evaluate(config, os.path.join(workdir, "run"))
  return run


def _points(overrides: dict):
  def run():
    config = modelnet40_dgcnn.get_config("dropgraph,synthetic")
    config.synthetic_per_class, config.num_points = 4, 32
    config.num_epochs = 1
    with config.unlocked():
      config.update_from_flattened_dict(overrides)
    with tempfile.TemporaryDirectory() as workdir:
      train.train_and_evaluate(config, os.path.join(workdir, "run"))
  return run


def _monuseg(root: str) -> str:
  """A tiny MoNuSeg in BiO-Net's layout (two 32 x 32 images per split)."""
  from PIL import Image
  rng = np.random.default_rng(0)
  for split in ("train", "test"):
    for sub in ("x", "y"):
      os.makedirs(os.path.join(root, split, sub), exist_ok=True)
    for i in range(2):
      image = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
      Image.fromarray(image).save(os.path.join(root, split, "x", f"{i}.png"))
      Image.fromarray(np.where(image[..., 0] > 128, 255, 0).astype(
          np.uint8)).save(os.path.join(root, split, "y", f"{i}.png"))
  return root


def _segmentation(data_dir: str, overrides: dict):
  def run():
    config = monuseg_unet.get_config("dropgraph")
    config.model, config.data_dir = "unet_tiny", data_dir
    config.patch_size, config.num_train_steps = 16, 2
    config.batch_size, config.eval_batch_size = 8, 8
    config.regularizer.block_size = 1
    config.async_checkpointing = False
    with config.unlocked():
      config.update_from_flattened_dict(overrides)
    with tempfile.TemporaryDirectory() as workdir:
      train.train_and_evaluate(config, os.path.join(workdir, "run"))
  return run


SEGMENTATION_CASES = [
    ({"augment": "crop_flip"}, "augment"), ({"dataset": "cityscapes"},
                                            "dataset"),
    ({"patch_size": 0}, "patch_size"), ({"patch_size": 64}, "patch"),
    ({"regularizer.level": "enc9"}, "enc9"),
    ({"regularizer.name": "word_dropout"}, "regularizer.name"),
    ({"data_dir": "/no/such/monuseg"}, "/no/such/monuseg"),
]
LM_CASES = [
    ({"seq_len": 0}, "seq_len"), ({"mem_len": -1}, "mem_len"),
    ({"seq_len": 4000}, "too short"),
    ({"regularizer.name": "drop_block"}, "regularizer.name"),
    ({"regularizer.variational.hidden": 1.5}, "hidden"),
    ({"regularizer.variational.embedding": float("nan")}, "embedding"),
    ({"data_dir": "/no/such/corpus"}, "corpus"),
]
POINT_CASES = [
    ({"num_points": 0}, "num_points"),
    ({"synthetic_per_class": -1}, "synthetic_per_class"),
    ({"regularizer.sites": "conv("}, "regularizer.sites"),
    ({"regularizer.sites": "nothing_matches"}, "regularizer.sites"),
    ({"regularizer.name": "drop_block"}, "regularizer.name"),
    ({"regularizer.alpha": 0.0}, "alpha"),
    ({"num_epochs": -1}, "num_epochs"),
]


def other_trainer_cases(tmp: str) -> List[Case]:
  corpus = _corpus(tmp)
  monuseg = _monuseg(os.path.join(tmp, "monuseg"))
  return ([Case("LM trainer", _describe(o), _lm(corpus, o), names)
           for o, names in LM_CASES] +
          [Case("segmentation trainer", _describe(o),
                _segmentation(monuseg, o), names)
           for o, names in SEGMENTATION_CASES] +
          [Case("point-cloud trainer", _describe(o), _points(o), names)
           for o, names in POINT_CASES])


def _describe(overrides: dict) -> str:
  return ", ".join(f"{k}={v!r}" for k, v in overrides.items())


def _workdir_is_a_file():
  with tempfile.NamedTemporaryFile() as f:
    train.train_and_evaluate(_digits(), os.path.join(f.name, "run"))
