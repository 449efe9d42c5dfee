"""Segmentation (DropGraph Table 3): U-Nets with sites, MoNuSeg input,
metrics against hand-computed confusion matrices, the trainer."""

import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from dropgraph_jax.data import segmentation as seg_data
from dropgraph_jax.models import get_model, list_sites, model_kind
from dropgraph_jax.models import unet as unet_lib
from dropgraph_jax.patterns import RegularizerSpec
from dropgraph_jax.training import checkpointing
from dropgraph_jax.training import segmentation_metrics as metrics
from dropgraph_jax.training import trainers as train


def _write_monuseg(root, counts=(("train", 4), ("test", 2)), size=40):
  """Images in BiO-Net's layout; the mask marks the image's bright pixels,
  so the task is learnable."""
  rng = np.random.default_rng(0)
  for split, count in counts:
    for sub in ("x", "y"):
      (root / split / sub).mkdir(parents=True)
    for i in range(count):
      image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
      mask = np.where(image[..., 0] > 128, 255, 0).astype(np.uint8)
      Image.fromarray(image).save(root / split / "x" / f"im{i}.png")
      Image.fromarray(mask).save(root / split / "y" / f"im{i}.png")
  return str(root)


def test_metrics_match_a_hand_computed_confusion_matrix():
  labels = jnp.array([[0, 0, 1, 1], [1, 255, 2, 2]])
  preds = jnp.array([[0, 1, 1, 1], [0, 0, 2, 1]])
  cm = metrics.confusion_matrix(labels, preds, 3)
  np.testing.assert_array_equal(cm, [[1, 1, 0], [1, 2, 0], [0, 1, 1]])
  s = metrics.scores(cm)
  # IoU: 1/3, 2/5, 1/2; class accuracy: 1/2, 2/3, 1/2; 4 of 7 pixels.
  assert s["miou"] == pytest.approx((1 / 3 + 2 / 5 + 1 / 2) / 3)
  assert s["macc"] == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)
  assert s["pixel_accuracy"] == pytest.approx(4 / 7)
  binary = metrics.scores(np.array([[5, 1], [2, 3]]))
  assert binary["iou_fg"] == pytest.approx(3 / 6)
  assert binary["dice_fg"] == pytest.approx(6 / 9)
  masked = metrics.confusion_matrix(labels, preds, 3,
                                    mask=jnp.array([True, False]))
  assert int(masked.sum()) == 4


@pytest.mark.slow
def test_unets_have_sites_and_the_paper_placement():
  for name in ("unet_tiny", "attention_unet_tiny"):
    assert model_kind(name) == "segmentation"
    sites = list_sites(get_model(name), (2, 16, 16, 3))
    assert {"enc1/relu1", "enc2/relu2", "bridge/bn1", "dec1/relu2"} <= \
        set(sites)
    spec = RegularizerSpec("dropgraph", {"rate": 0.1, "alpha": 0.1,
                                         "block_size": 3})
    assert sorted(unet_lib.paper_policy(sites, spec).sites) == [
        "enc2/relu1", "enc2/relu2"]
    model = get_model(name, policy=unet_lib.paper_policy(sites, spec))
    x = jnp.ones((2, 16, 16, 3))
    variables = model.init({"params": jax.random.key(0),
                            "dropout": jax.random.key(1)}, x, train=False)
    y = model.apply(variables, x, train=False)
    assert y.shape == (2, 16, 16, 2) and y.dtype == jnp.float32
  with pytest.raises(ValueError, match="divisible by 2\\*\\*levels"):
    get_model("unet_tiny").init(jax.random.key(0), jnp.ones((1, 18, 18, 3)),
                                train=False)
  with pytest.raises(ValueError, match="level 'enc9' has no relu sites"):
    unet_lib.paper_policy(sites, spec, "enc9")


def test_monuseg_reader_takes_four_corners_and_checks_files(tmp_path):
  root = _write_monuseg(tmp_path)
  split = seg_data.load_monuseg(root, "train", patch=32)
  assert split.num_examples == 16 and split.num_classes == 2
  assert split.image_shape == (32, 32, 3)
  assert set(np.unique(split.source.masks)) <= {0, 1}
  full = np.asarray(Image.open(tmp_path / "train" / "x" / "im0.png"))
  np.testing.assert_array_equal(split.source[1]["image"], full[:32, 8:])
  small = seg_data.load_monuseg(root, "test", patch=32, image_size=16)
  assert small.source.images.shape == (8, 16, 16, 3)
  batch = next(iter(seg_data.train_dataset(split, global_batch=4, seed=0)))
  assert batch["image"].dtype == np.float32 and batch["mask"].shape == \
      (4, 32, 32)
  # An augmented image and its mask get the same flips and rotations.
  np.testing.assert_array_equal(batch["mask"],
                                (batch["image"][..., 0] > 128 / 255))
  evals = list(seg_data.eval_batches(small, 3))
  assert [int(b["valid"].sum()) for b in evals] == [3, 3, 2]
  with pytest.raises(ValueError, match="must exist"):
    seg_data.load_monuseg(root, "validation")
  Image.fromarray(np.full((40, 40), 7, np.uint8)).save(
      tmp_path / "test" / "y" / "im1.png")
  with pytest.raises(ValueError, match="values other than 0 and 255"):
    seg_data.load_monuseg(root, "test", patch=32)


def _write_voc(root, count=6):
  """VOC's layout: JPEG images of varying size, palette masks of class ids
  with 255 borders, and the split lists."""
  rng = np.random.default_rng(1)
  for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
    (root / sub).mkdir(parents=True)
  ids = [f"2007_{i:06d}" for i in range(count)]
  for i, name in enumerate(ids):
    h, w = 40 + 4 * (i % 6), 48 - 2 * (i % 6)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
        root / "JPEGImages" / f"{name}.jpg")
    mask = np.zeros((h, w), np.uint8)
    mask[5:20, 5:25] = 1 + i % 2
    mask[5, 5:25] = 255  # an object border
    im = Image.fromarray(mask, mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
    im.save(root / "SegmentationClass" / f"{name}.png")
  lists = root / "ImageSets" / "Segmentation"
  (lists / "train.txt").write_text("\n".join(ids[:-2]) + "\n")
  (lists / "val.txt").write_text("\n".join(ids[-2:]) + "\n")
  return str(root)


def test_voc_reader_crops_for_training_and_pads_for_evaluation(tmp_path):
  root = _write_voc(tmp_path)
  train_split = seg_data.load_voc(root, "train", crop=32, eval_size=64)
  assert train_split.num_examples == 4 and train_split.num_classes == 21
  record = train_split.source[0]
  assert record["image"].shape == (40, 48, 3)
  assert set(np.unique(record["mask"])) == {0, 1, 255}  # palette indices
  batch = next(iter(seg_data.train_dataset(train_split, global_batch=4,
                                           seed=0)))
  assert batch["image"].shape == (4, 32, 32, 3)
  assert set(np.unique(batch["mask"])) <= {0, 1, 2, 255}
  val = seg_data.load_voc(root, "val", crop=32, eval_size=64)
  (batch,) = list(seg_data.eval_batches(val, 2))
  assert batch["image"].shape == (2, 64, 64, 3)
  # Padding is ignored: 255 outside the 56 x 40 image, centred.
  assert (batch["mask"][0, :4] == 255).all()
  assert int((batch["mask"][0] != 255).sum()) == 56 * 40 - 20
  with pytest.raises(ValueError, match="does not exist"):
    seg_data.load_voc(root, "trainval")
  with pytest.raises(ValueError, match="larger than eval_size=16"):
    list(seg_data.eval_batches(seg_data.load_voc(root, "val", eval_size=16),
                               2))


@pytest.mark.slow
def test_fcn_and_deeplab_keep_the_resnet_sites_and_placement():
  from dropgraph_jax.models import resnet as resnet_lib
  from dropgraph_jax.models.sites import site_shapes
  spec = RegularizerSpec("drop_block", {"rate": 0.1, "block_size": 1})
  for name in ("fcn32s_tiny", "deeplabv3_tiny"):
    sites = list_sites(get_model(name), (2, 64, 64, 3))
    policy = resnet_lib.paper_policy(sites, spec)
    assert "stage4/block0/relu1" in policy.sites and len(policy) == 6
    model = get_model(name, policy=policy)
    x = jnp.ones((2, 64, 64, 3))
    # Shapes only: traced, neither compiled nor run (CI time).
    variables = jax.eval_shape(lambda: model.init(
        {"params": jax.random.key(0), "dropout": jax.random.key(1)}, x,
        train=False))
    assert jax.eval_shape(lambda v: model.apply(v, x, train=False),
                          variables).shape == (2, 64, 64, 3)
  # DeepLabV3 at output stride 8: the last two stages dilated, not strided.
  shapes = site_shapes(get_model("deeplabv3_resnet50"), (1, 224, 224, 3))
  assert shapes["stage4/block2/relu3"][1:3] == (28, 28)
  shapes = site_shapes(get_model("deeplabv3_resnet50", output_stride=16),
                       (1, 224, 224, 3))
  assert shapes["stage4/block2/relu3"][1:3] == (14, 14)
  assert site_shapes(get_model("fcn32s_resnet50"), (1, 224, 224, 3))[
      "stage4/block2/relu3"][1:3] == (7, 7)


def _config(data_dir, **overrides):
  config = importlib.import_module("configs.monuseg_unet").get_config(
      "dropgraph")
  config.model = "unet_tiny"
  config.data_dir = data_dir
  config.patch_size, config.image_size = 32, 16
  config.batch_size, config.eval_batch_size = 8, 8
  config.num_train_steps = 8
  config.learning_rate = 0.01
  config.regularizer.block_size = 3
  config.regularizer.alpha = 0.25
  config.log_every_steps = 4
  config.checkpoint_every_steps = 4
  config.async_checkpointing = False
  config.update_from_flattened_dict(overrides)
  return config


@pytest.mark.slow
def test_segmentation_trainer_learns_and_resumes_exactly(tmp_path):
  data = _write_monuseg(tmp_path / "data", counts=(("train", 4),
                                                   ("test", 2)))
  result = train.train_and_evaluate(_config(data), str(tmp_path / "run"))
  saved = json.loads((tmp_path / "run" / "results.json").read_text())
  assert saved["policy_sites"] == 2 and saved["steps"] == 8
  assert 0.0 <= saved["test_dice_fg"] <= 1.0
  assert saved["train_eval_pixel_accuracy"] > 0.5
  with pytest.raises(train.Preempted):
    train.train_and_evaluate(_config(data, preempt_at_step=5),
                             str(tmp_path / "killed"))
  resumed = train.train_and_evaluate(_config(data), str(tmp_path / "killed"))
  for a, b in zip(jax.tree.leaves(result["state"].params),
                  jax.tree.leaves(resumed["state"].params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert checkpointing.stored_config(checkpointing.manager(
      str(tmp_path / "killed" / "checkpoints"), save_every=4, keep=3)
  )["model"] == "unet_tiny"


@pytest.mark.slow
def test_voc_config_trains_a_few_steps(tmp_path):
  root = _write_voc(tmp_path / "voc", count=10)
  config = importlib.import_module("configs.voc_deeplabv3").get_config(
      "drop_block")
  config.model = "deeplabv3_tiny"
  config.data_dir, config.voc_mask_dir = root, "SegmentationClass"
  config.train_split = "train"
  config.crop_size, config.eval_size = 64, 64
  config.batch_size, config.eval_batch_size = 8, 8
  config.num_train_steps, config.log_every_steps = 2, 1
  config.regularizer.block_size = 1
  config.async_checkpointing = False
  result = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert result["policy_sites"] == 6 and 0.0 <= result["test_miou"] <= 1.0


def test_ignored_pixels_add_nothing_to_the_loss():
  from dropgraph_jax.training import segmentation as seg_train
  logits = jnp.array([[[[2.0, 0.0], [0.0, 3.0]]]])  # (1, 1, 2, 2)
  labels = jnp.array([[[0, 255]]])
  expected = float(jnp.log1p(jnp.exp(-2.0)))
  assert float(seg_train.masked_cross_entropy(logits, labels)) == \
      pytest.approx(expected)
  assert float(seg_train.masked_cross_entropy(
      logits, jnp.full((1, 1, 2), 255))) == 0.0
