"""The reproduction harness (experiments/reproduce/grid.py) at digits size."""

import json
import os

import pytest

from configs import digits
from experiments.reproduce import grid

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _variant(regularizer):
  def config_for(seed):
    config = digits.get_config()
    config.regularizer.name = regularizer
    config.seed = seed
    config.num_train_steps = 4
    config.batch_size = 16
    config.eval_batch_size = 64
    config.eval_every_epochs = 0.0
    config.checkpoint_every_steps = 4
    config.async_checkpointing = False
    return config
  return config_for


@pytest.mark.slow
def test_grid_runs_every_variant_and_seed_then_reuses_finished_runs(tmp_path):
  variants = {"none": _variant("none"), "drop block": _variant("drop_block")}
  results = grid.run_grid(variants, [0, 1], str(tmp_path / "runs"),
                          "test_accuracy")
  assert {k: len(v) for k, v in results.items()} == {"none": 2,
                                                     "drop block": 2}
  done = tmp_path / "runs" / "drop_block" / "seed1" / "results.json"
  assert json.loads(done.read_text())["regularizer"] == "drop_block"
  # A finished run is read back, not trained again.
  marker = json.loads(done.read_text())
  marker["test_accuracy"] = 0.123
  done.write_text(json.dumps(marker))
  again = grid.run_grid(variants, [0, 1], str(tmp_path / "runs"),
                        "test_accuracy")
  assert again["drop block"][1]["test_accuracy"] == 0.123

  out = tmp_path / "table.md"
  grid.table("digits", again, "test_accuracy", "test accuracy %",
             {"none": "1.0"}, "A note.", str(out),
             extra={"test_loss": "test loss"})
  text = out.read_text()
  assert "| variant | test accuracy % (mean +- std) | test loss (mean +- std)" \
      in text
  row = [r for r in text.splitlines() if r.startswith("| drop block |")][0]
  accs = [r["test_accuracy"] * 100 for r in again["drop block"]]
  assert row.split(" | ")[1].startswith(f"{sum(accs) / 2:.2f} +- ")
  assert "Wall time of all 4 runs" in text
  assert (tmp_path / "table.png").stat().st_size > 1000
  # One seed has no spread to show.
  grid.table("digits", {"none": again["none"][:1]}, "test_accuracy", "acc",
             {}, "", str(out))
  row = [r for r in out.read_text().splitlines() if r.startswith("| none")]
  assert "+-" not in row[0]


@pytest.mark.parametrize("script", ["cifar_regularizers.py",
                                    "dropgraph_ablations.py",
                                    "ptb_autodropout.py",
                                    "monuseg_segmentation.py",
                                    "gradcam_masking.py"])
def test_reproduction_scripts_document_their_command(script):
  with open(os.path.join(ROOT, "experiments", "reproduce", script)) as f:
    head = f.read(2000)
  module = script[:-len(".py")]
  assert f"python -m experiments.reproduce.{module}" in head


@pytest.mark.slow
def test_monuseg_reproduction_runs_end_to_end_on_tiny_data(tmp_path):
  from test_segmentation import _write_monuseg

  from experiments.reproduce import monuseg_segmentation
  data = _write_monuseg(tmp_path / "MoNuSeg", size=64)
  out = tmp_path / "table.md"
  monuseg_segmentation.main([
      "--data", data, "--models", "unet", "--regularizers", "none,dropgraph",
      "--patch", "32", "--image-size", "32", "--width", "4", "--epochs",
      "1", "--batch", "8", "--augment", "none",
      "--seeds", "0,1", "--workdir", str(tmp_path / "runs"),
      "--out", str(out)])
  text = out.read_text()
  assert "no augmentation" in text
  config = json.loads((tmp_path / "runs" / "unet_none" / "seed0" /
                       "config.json").read_text())
  assert config["augment"] == "none"
  assert "| unet dropgraph |" in text and "68.5 / 81.4" in text
  assert "unet dropgraph vs unet none" in text
  assert (tmp_path / "table_examples.png").stat().st_size > 1000


@pytest.mark.slow
def test_gradcam_masking_writes_masked_images_and_trains_on_them(tmp_path):
  import numpy as np
  from PIL import Image

  from dropgraph_jax.training import trainers
  from experiments.reproduce import gradcam_masking
  rng = np.random.default_rng(0)
  for split, count in (("train", 8), ("test", 4)):
    for cls in ("a", "b"):
      (tmp_path / "img" / split / cls).mkdir(parents=True)
      for i in range(count):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
                        ).save(tmp_path / "img" / split / cls / f"{i}.png")
  config = digits.get_config()
  config.dataset, config.model = f"folder:{tmp_path / 'img'}", "resnet_tiny"
  config.num_train_steps, config.batch_size, config.eval_batch_size = 2, 8, 8
  config.compare_baseline, config.async_checkpointing = False, False
  config.regularizer.name, config.eval_every_epochs = "dropout", 0.0
  trainers.train_and_evaluate(config, str(tmp_path / "backbone"))
  out = tmp_path / "table.md"
  stale = tmp_path / "masked" / "dropout" / "train" / "stale.png"
  stale.parent.mkdir(parents=True)  # a write stopped before its test split
  stale.write_bytes(b"")
  gradcam_masking.main([
      "--backbone", f"dropout={tmp_path / 'backbone'}", "--train-examples",
      "8", "--model", "resnet_tiny", "--width", "4", "--epochs", "1",
      "--batch", "8",
      "--seeds", "0", "--data-out", str(tmp_path / "masked"), "--workdir",
      str(tmp_path / "runs"), "--out", str(out)])
  masked = sorted((tmp_path / "masked" / "dropout" / "train").rglob("*.png"))
  assert len(masked) == 8
  assert not (tmp_path / "masked" / "dropout.partial").exists()
  assert not stale.exists()
  assert (tmp_path / "table_heatmaps.png").stat().st_size > 1000
  pixels = np.stack([np.asarray(Image.open(p)) for p in masked])
  assert 0 < float((pixels.sum(-1) == 0).mean()) < 1  # some masked out
  assert "| dropout |" in out.read_text()
  assert "resnet_tiny test accuracy %" in out.read_text()  # --model named
  assert "resnet_tiny width 4," in out.read_text()
  config = json.loads((tmp_path / "runs" / "dropout" / "seed0" /
                       "config.json").read_text())
  assert config["model_kwargs"] == {"width": 4}


def test_reasoning_study_rows_configs_and_pairs():
  from configs import cifar_resnet50
  from experiments.reproduce import dropgraph_ablations as ablations

  def base(seed):
    config = cifar_resnet50.get_config("dropgraph")
    config.unlock()
    config.seed = seed
    return config
  variants, paper = ablations.reasoning_rows(base)
  assert len(variants) == 13 and paper["random Train 0.25"] == "79.42"
  reg = variants["top Train&Inf. 0.25"](1).regularizer
  assert (reg.name, reg.rate, reg.schedule) == ("partial_reasoning", 0.25,
                                                "constant")
  assert dict(reg.options) == {"sampling": "top", "at_inference": True}
  assert not variants["random Train 0.125"](0).regularizer.options[
      "at_inference"]
  assert variants["none"](0).regularizer.name == "none"
  pairs = ablations.EXTRA_PAIRS["reasoning"]
  assert len(pairs) == 6 and all(set(p) <= set(variants) for p in pairs)
