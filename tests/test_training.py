"""Training loop, input, checkpoints (issue: training and evaluation);
the configs are checked in test_configs.py."""

import glob
import importlib
import json
import os
import stat

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import default, digits
from dropgraph_jax.training import (
  checkpointing,
)
from dropgraph_jax.training import trainers as train

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _digits_config(**overrides):
  config = digits.get_config()
  config.num_train_steps = 12
  config.log_every_steps = 4
  config.eval_every_epochs = 0.0
  config.checkpoint_every_steps = 4
  config.async_checkpointing = False
  config.batch_size = 16
  config.eval_batch_size = 64
  config.regularizer.ramp_epochs = 0.5
  config.update_from_flattened_dict(overrides)
  return config


def _params_equal(a, b):
  return all(jax.tree.leaves(jax.tree.map(
      lambda x, y: bool(np.array_equal(np.asarray(x), np.asarray(y))), a,
      b)))


@pytest.mark.slow
def test_a_few_steps_on_digits_writes_results_logs_and_checkpoints(tmp_path):
  # The step count comes from the epochs (1,437 images / 16 = 89 steps per
  # epoch): the trainer resolves it in a copy, never in the caller's config.
  config = _digits_config(num_train_steps=0, num_epochs=12.2 / 89)
  config.lock()
  before = config.to_json()
  results = train.train_and_evaluate(config, str(tmp_path))
  assert config.to_json() == before
  assert results["steps"] == 12 and results["policy_sites"] == 6
  # Eval-mode accuracy on a fixed subset of the training images, beside the
  # test accuracy: over- and underfitting show in every results.json.
  assert 0.0 <= results["train_eval_accuracy"] <= 1.0
  assert results["train_eval_examples"] == 1437  # min(2000, the split)
  assert 0.0 <= results["test_accuracy"] <= 1.0
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["test_accuracy"] == results["test_accuracy"]
  # Provenance: enough to rerun the row, or to see why two rows differ.
  assert saved["config"]["regularizer"]["name"] == "dropgraph"
  assert saved["config"]["num_train_steps"] == 12 and saved["seed"] == 0
  assert saved["versions"]["jax"] == jax.__version__
  assert saved["device_count"] == 8 and saved["device_kind"]
  assert saved["git"] is None or len(saved["git"]["commit"]) == 40
  events = glob.glob(str(tmp_path / "events.out.tfevents.*"))
  assert b"hparams" in b"".join(open(e, "rb").read() for e in events)
  lines = [json.loads(row)
           for row in (tmp_path / "log.txt").read_text().splitlines()]
  assert [r["step"] for r in lines if "train/loss" in r] == [4, 8, 12]
  assert {"train/learning_rate", "train/regularizer_rate_factor",
          "train/images_per_sec"} <= set(lines[0])
  assert glob.glob(str(tmp_path / "events.out.tfevents.*"))
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["12", "4", "8"]


@pytest.mark.slow
def test_a_few_steps_on_tfds_mock_cifar10(tmp_path):
  config = default.get_config()
  config.model = "resnet_tiny"
  config.dataset = "cifar10"
  config.regularizer.name = "drop_block"
  config.regularizer.stages = (3, 4)
  config.regularizer.block_size = 1
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_train_steps = 3
  config.log_every_steps = 1
  config.eval_every_epochs = 0.0
  config.checkpoint_every_steps = 3
  config.async_checkpointing = False
  with tfds.testing.mock_data(num_examples=32):
    results = train.train_and_evaluate(config, str(tmp_path))
  assert results["steps"] == 3 and results["policy_sites"] > 0
  assert np.isfinite(results["test_loss"])


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_parameters(tmp_path):
  straight = train.train_and_evaluate(_digits_config(log_every_steps=2),
                                      str(tmp_path / "straight"))
  killed = str(tmp_path / "killed")
  with pytest.raises(train.Preempted):
    train.train_and_evaluate(_digits_config(preempt_at_step=6,
                                            log_every_steps=2), killed)
  # Killed after step 6: the latest checkpoint is step 4; steps 5-6 redone.
  assert max(int(s) for s in os.listdir(os.path.join(killed,
                                                     "checkpoints"))) == 4
  resumed = train.train_and_evaluate(_digits_config(log_every_steps=2),
                                     killed)
  assert _params_equal(straight["state"].params, resumed["state"].params)
  # Step 6 was logged before the kill and again after the resume: once.
  def steps(run):
    with open(os.path.join(run, "log.txt")) as f:
      return [json.loads(line)["step"] for line in f]
  assert steps(killed) == steps(str(tmp_path / "straight"))
  assert _params_equal(straight["state"].batch_stats,
                       resumed["state"].batch_stats)
  assert straight["test_accuracy"] == resumed["test_accuracy"]


@pytest.mark.slow
def test_eight_devices_match_one_device(tmp_path):
  assert jax.device_count() == 8
  one = train.train_and_evaluate(_digits_config(mesh_devices=1,
                                                num_train_steps=6),
                                 str(tmp_path / "one"))
  eight = train.train_and_evaluate(_digits_config(mesh_devices=8,
                                                  num_train_steps=6),
                                   str(tmp_path / "eight"))
  assert eight["devices"] == 8 and one["devices"] == 1
  np.testing.assert_allclose(eight["test_loss"], one["test_loss"],
                             rtol=1e-4)
  for a, b in zip(jax.tree.leaves(one["state"].params),
                  jax.tree.leaves(eight["state"].params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4,
                               atol=2e-5)


def test_bad_input_errors(tmp_path):
  with pytest.raises(ValueError, match="not divisible by the 8 devices"):
    train.train_and_evaluate(_digits_config(batch_size=12), str(tmp_path))
  with pytest.raises(ValueError, match="regularizer.name must be one of"):
    train.train_and_evaluate(_digits_config(**{"regularizer.name": "cutout"}),
                             str(tmp_path))
  config = default.get_config()
  config.dataset = "no_such_dataset_xyz"
  with pytest.raises(ValueError, match="is not available.*--config.data_dir"):
    train.train_and_evaluate(config, str(tmp_path))
  locked = tmp_path / "locked"
  locked.mkdir()
  locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
  if os.access(str(locked), os.W_OK):  # root ignores permissions
    locked = tmp_path / "afile"
    locked.write_text("not a directory")
  with pytest.raises(ValueError, match="is not writable"):
    train.train_and_evaluate(_digits_config(), str(locked / "run"))
  with pytest.raises(Exception, match="batch_size"):
    _digits_config().batch_size = "many"  # typed, locked ConfigDict


@pytest.mark.slow
def test_corrupt_checkpoint_is_refused_and_kept(tmp_path):
  # The case that used to resume on NaN parameters and exit 0: 64 garbled
  # bytes in the middle of the largest array data file (tests/
  # test_checkpointing.py covers 17 kinds of damage on a small state).
  with pytest.raises(train.Preempted):
    train.train_and_evaluate(_digits_config(preempt_at_step=5), str(tmp_path))
  ckpt = tmp_path / "checkpoints" / "4"
  data = max((p for p in (ckpt / "state").rglob("*") if p.is_file() and
              "ocdbt.process_0" in str(p)), key=lambda p: p.stat().st_size)
  damaged = bytearray(data.read_bytes())
  middle = len(damaged) // 2
  damaged[middle:middle + 64] = bytes(64)
  data.write_bytes(bytes(damaged))
  files = {p: p.read_bytes() for p in ckpt.rglob("*") if p.is_file()}
  with pytest.raises(checkpointing.CorruptCheckpointError,
                     match=f"checkpoint {ckpt} is damaged: .*move {ckpt} away"):
    train.train_and_evaluate(_digits_config(), str(tmp_path))
  assert "4" in os.listdir(tmp_path / "checkpoints")
  assert all(p.read_bytes() == b for p, b in files.items())


def test_image_folder_input(tmp_path):
  from PIL import Image

  from dropgraph_jax.data import images as image_data
  rng = np.random.default_rng(0)
  for split, count in (("train", 3), ("test", 2)):
    for cls in ("cat", "ant"):
      folder = tmp_path / split / cls
      folder.mkdir(parents=True)
      for i in range(count):
        pixels = rng.integers(0, 255, (6, 5, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
  data = image_data.load_split(f"folder:{tmp_path}", "train")
  assert data.num_examples == 6 and data.num_classes == 2
  assert tuple(data.image_shape) == (6, 5, 3)
  assert [data.source[i]["label"] for i in range(6)] == [0, 0, 0, 1, 1, 1]
  batch = next(iter(image_data.train_dataset(
      data, global_batch=4, seed=0).to_iter_dataset()))
  assert batch["image"].shape == (4, 6, 5, 3)
  with pytest.raises(ValueError, match="does not exist"):
    image_data.load_split(f"folder:{tmp_path}", "validation")


@pytest.mark.slow
def test_imagenet_preprocessing_on_mock_imagenet(tmp_path):
  from dropgraph_jax.data import images as image_data
  with tfds.testing.mock_data(num_examples=12):
    split = image_data.load_split("imagenet2012", "train",
                                      image_size=24)
    assert tuple(split.image_shape) == (24, 24, 3)
    batch = next(iter(image_data.train_dataset(
        split, global_batch=4, seed=0, augment="inception_crop_flip",
        image_size=24).to_iter_dataset()))
    assert batch["image"].shape == (4, 24, 24, 3)
    evals = list(image_data.eval_batches(split, 8, image_size=24))
    assert [b["image"].shape for b in evals] == [(8, 24, 24, 3)] * 2
    assert int(sum(b["mask"].sum() for b in evals)) == 12
    with pytest.raises(ValueError, match="varying size.*image_size"):
      image_data.load_split("imagenet2012", "train")

    config = importlib.import_module("configs.imagenet_resnet50").get_config(
        "drop_block")
    config.model = "resnet_tiny"
    config.image_size = 16
    config.regularizer.block_size = 1
    config.batch_size = 8
    config.eval_batch_size = 8
    config.num_train_steps = 2
    config.log_every_steps = 1
    config.eval_every_epochs = 0.0
    config.async_checkpointing = False
    results = train.train_and_evaluate(config, str(tmp_path))
  assert results["steps"] == 2 and np.isfinite(results["test_loss"])


def test_crops_keep_content_where_they_should():
  from dropgraph_jax.data import images as image_data
  image = np.zeros((40, 60, 3), np.uint8)
  image[10:30, 20:40] = 255  # a bright centre square
  center = image_data.center_crop(image, 28)  # shorter side -> 32
  assert center.shape == (28, 28, 3)
  assert center[14, 14].min() > 200 and center[0, 0].max() < 50
  rng = np.random.default_rng(0)
  crops = [image_data.inception_crop(image, 16, rng) for _ in range(50)]
  assert all(c.shape == (16, 16, 3) for c in crops)
  assert len({c.tobytes() for c in crops}) > 40  # random sizes and places


def test_optimizers_and_schedules():
  from dropgraph_jax.training import optimizers
  config = default.get_config()
  config.num_train_steps = 100
  config.warmup_epochs = 1.0
  config.lr_schedule = "exponential"
  config.lr_decay = 0.5
  config.lr_decay_epochs = 2.0
  schedule = optimizers.learning_rate_schedule(config, steps_per_epoch=10)
  assert float(schedule(0)) == 0.0 and float(schedule(5)) == pytest.approx(
      0.05)
  assert float(schedule(10)) == pytest.approx(0.1)
  assert float(schedule(30)) == pytest.approx(0.05)  # 20 steps after warm-up
  config.warmup_epochs = 0.0
  config.lr_schedule = "piecewise"
  config.lr_decay = 0.1
  config.lr_boundaries_epochs = (3, 6)
  schedule = optimizers.learning_rate_schedule(config, steps_per_epoch=10)
  assert [round(float(schedule(s)), 6) for s in (29, 30, 60)] == [
      0.1, 0.01, 0.001]
  params = {"w": np.ones(3, np.float32)}
  for name in optimizers.OPTIMIZERS:
    config.optimizer = name
    config.grad_clip_norm = 1.0
    tx, _ = optimizers.make_optimizer(config, 10)
    updates, _ = tx.update({"w": np.full(3, 100.0, np.float32)},
                           tx.init(params), params)
    assert np.all(np.isfinite(updates["w"])) and np.all(updates["w"] < 0)
  config.optimizer = "lbfgs"
  with pytest.raises(ValueError, match="config.optimizer must be one of"):
    optimizers.make_optimizer(config, 10)


def test_training_subsets_are_balanced_and_fixed():
  from dropgraph_jax.data import images as image_data
  split = image_data.load_split("digits", "train")
  small = image_data.subset(split, 100, seed=0)
  labels = [small.source[i]["label"] for i in range(100)]
  assert np.bincount(labels).tolist() == [10] * 10
  again = image_data.subset(split, 100, seed=0)
  np.testing.assert_array_equal(small.source.indices, again.source.indices)
  with pytest.raises(ValueError, match="count must be in"):
    image_data.subset(split, 0, seed=0)


def test_tfds_is_never_downloaded(tmp_path, monkeypatch):
  """An unprepared TFDS dataset is an error saying how to prepare it; no
  connection is attempted and nothing is written to data_dir."""
  import socket

  from dropgraph_jax.data import images as image_data
  calls = []

  def refuse(*args, **kwargs):
    calls.append(args)
    raise OSError("network access in a test")
  monkeypatch.setattr(socket.socket, "connect", refuse)
  with pytest.raises(ValueError, match="tfds build mnist"):
    image_data.load_split("mnist", "train", str(tmp_path))
  assert not calls
  assert not (tmp_path / "downloads").exists()


@pytest.mark.slow
def test_a_nan_loss_stops_training_before_a_bad_checkpoint(tmp_path):
  # A huge learning rate: finite after step 1 (saved), not finite soon
  # after, which is refused before it is saved: the good checkpoint stays.
  with pytest.raises(train.NonFiniteLoss,
                     match=r"not finite at step \d.*checkpoint \(step 1\) is"):
    train.train_and_evaluate(_digits_config(learning_rate=1e38,
                                            checkpoint_every_steps=1),
                             str(tmp_path))
  assert os.listdir(tmp_path / "checkpoints") == ["1"]


@pytest.mark.slow
def test_a_resume_with_another_config_names_the_fields(tmp_path):
  with pytest.raises(train.Preempted):
    train.train_and_evaluate(_digits_config(preempt_at_step=4),
                             str(tmp_path))
  with pytest.raises(ValueError, match=r"batch_size: 16 -> 32.*never change"):
    train.train_and_evaluate(_digits_config(batch_size=32), str(tmp_path))
  with pytest.raises(ValueError,
                     match=r"learning_rate: 0.05 -> 0.01.*allow_config_change"):
    train.train_and_evaluate(_digits_config(learning_rate=0.01),
                             str(tmp_path))
  results = train.train_and_evaluate(
      _digits_config(learning_rate=0.01, allow_config_change=True),
      str(tmp_path))
  assert results["steps"] == 12
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["learning_rate"] == 0.01


@pytest.mark.parametrize("field,value", [
    ("eval_batch_size", 0), ("log_every_steps", 0),
    ("checkpoint_every_steps", 0), ("keep_checkpoints", 0),
    ("num_train_steps", -5), ("learning_rate", float("nan")),
    ("num_epochs", -1.0)])
def test_numeric_fields_are_checked_before_any_work(tmp_path, field, value):
  config = _digits_config()
  with config.unlocked():
    config[field] = value
  with pytest.raises(ValueError, match=f"config.{field} must be"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


