"""RandAugment, op by op against the formula each op implements, then the
policy and its place in the grain pipeline (deterministic per seed)."""

import numpy as np
import pytest

from dropgraph_jax.data import images as image_data
from dropgraph_jax.data import randaugment as ra


def _image(seed=0, shape=(16, 16, 3), low=0, high=256):
  return np.random.default_rng(seed).integers(low, high, shape).astype(
      np.uint8)


def _op(name, image, magnitude, seed=0, **kw):
  return ra.apply_op(name, image, magnitude, np.random.default_rng(seed),
                     **kw)


def test_identity_and_invert():
  x = _image()
  np.testing.assert_array_equal(_op("Identity", x, 9), x)
  np.testing.assert_array_equal(_op("Invert", x, 9), 255 - x)


def test_autocontrast_stretches_each_channel_to_the_full_range():
  x = _image(low=60, high=121)
  out = _op("AutoContrast", x, 9).astype(int)
  assert (out.min(axis=(0, 1)) == 0).all() and (
      out.max(axis=(0, 1)) == 255).all()
  # Monotone per channel: the order of pixel values is kept.
  flat_in, flat_out = x[..., 0].ravel(), out[..., 0].ravel()
  order = np.argsort(flat_in, kind="stable")
  assert (np.diff(flat_out[order]) >= 0).all()


def test_equalize_flattens_the_histogram_and_keeps_the_order():
  x = np.repeat(np.arange(100, 164, dtype=np.uint8), 64).reshape(64, 64, 1)
  out = _op("Equalize", np.concatenate([x] * 3, -1), 9)[..., 0].astype(int)
  assert out.min() <= 8 and out.max() >= 240  # 64 levels spread over 0-255
  assert (np.diff(out.ravel()) >= 0).all()


def test_solarize_inverts_at_or_above_the_threshold():
  x = _image()
  # M = 5: threshold int(256 * 0.5) = 128.
  np.testing.assert_array_equal(_op("Solarize", x, 5),
                                np.where(x >= 128, 255 - x, x))
  np.testing.assert_array_equal(_op("Solarize", x, 10), x)  # 256: none


def test_solarize_add_adds_below_128_only():
  x = _image()
  expected = np.where(x < 128, np.minimum(x.astype(int) + 110, 255), x)
  np.testing.assert_array_equal(_op("SolarizeAdd", x, 10), expected)


@pytest.mark.parametrize("magnitude,mask", [(5, 0b11000000),
                                            (10, 0b11110000), (0, 0)])
def test_posterize_keeps_int_4l_bits(magnitude, mask):
  x = _image()
  np.testing.assert_array_equal(_op("Posterize", x, magnitude), x & mask)


@pytest.mark.parametrize("name", ["Color", "Contrast", "Brightness",
                                  "Sharpness"])
def test_enhancements_are_the_identity_at_factor_one(name):
  x = _image()  # M = 5 -> factor 1.8 * 0.5 + 0.1 = 1.0
  np.testing.assert_array_equal(_op(name, x, 5), x)


def test_brightness_scales_by_1_8l_plus_0_1():
  x = _image()
  out = _op("Brightness", x, 0).astype(float)  # factor 0.1
  np.testing.assert_allclose(out, x * 0.1, atol=1.0)


def test_color_leaves_grey_pixels_and_desaturates_colour():
  grey = np.repeat(_image(shape=(16, 16, 1)), 3, -1)
  np.testing.assert_array_equal(_op("Color", grey, 0), grey)
  x = _image()

  def spread(a):
    return np.ptp(a.astype(int), axis=-1).mean()
  assert spread(_op("Color", x, 0)) < 0.2 * spread(x)


def test_rotate_by_90_degrees_at_magnitude_30():
  x = _image()
  out = _op("Rotate", x, 30)  # 30 * 3 = 90 degrees, either sign
  assert any(np.array_equal(out, np.rot90(x, k)) for k in (1, -1))


def test_shear_x_keeps_the_first_row_and_moves_the_last():
  x = _image()
  out = _op("ShearX", x, 10)  # shear 0.3 about the top-left corner
  np.testing.assert_array_equal(out[0], x[0])
  assert not np.array_equal(out[-1], x[-1])
  out_y = _op("ShearY", x, 10)
  np.testing.assert_array_equal(out_y[:, 0], x[:, 0])


@pytest.mark.parametrize("name,axis", [("TranslateX", 1), ("TranslateY", 0)])
def test_translate_shifts_by_fraction_times_width_and_fills_grey(name, axis):
  x = _image()
  out = _op(name, x, 10, translate_fraction=0.25)  # 4 pixels
  moved = [np.roll(x, s, axis) for s in (4, -4)]
  for shifted, s in zip(moved, (4, -4)):
    keep = slice(4, None) if s > 0 else slice(None, -4)
    index = (slice(None), keep) if axis == 1 else (keep,)
    if np.array_equal(out[index], shifted[index]):
      gap = (slice(None), slice(None, 4) if s > 0 else slice(-4, None)) \
          if axis == 1 else ((slice(None, 4) if s > 0 else slice(-4, None)),)
      assert (out[gap] == ra.FILL).all()
      return
  pytest.fail(f"{name} did not shift by 4 pixels")


def test_cutout_greys_one_square():
  x = _image(low=0, high=100)  # no pixel is 128 before
  out = _op("Cutout", x, 10, cutout_fraction=0.25)  # half side 4
  grey = (out == ra.FILL).all(-1)
  rows, cols = np.nonzero(grey)
  assert 0 < grey.sum() <= 64 and grey[rows.min():rows.max() + 1,
                                       cols.min():cols.max() + 1].all()


def test_grey_images_keep_one_channel():
  x = _image(shape=(8, 8, 1))
  for name in ra.OPS:
    assert _op(name, x, 9).shape == (8, 8, 1), name


def test_policy_draws_n_ops_and_is_a_function_of_the_generator():
  x = _image(shape=(32, 32, 3))
  a = ra.randaugment(x, np.random.default_rng(7), 2, 9)
  b = ra.randaugment(x, np.random.default_rng(7), 2, 9)
  np.testing.assert_array_equal(a, b)
  outs = [ra.randaugment(x, np.random.default_rng(s), 2, 9)
          for s in range(8)]
  assert len({o.tobytes() for o in outs}) > 4
  np.testing.assert_array_equal(ra.randaugment(x, np.random.default_rng(0),
                                               0, 9), x)
  assert set(ra.VARIANTS["paper"]) == set(ra.OPS) - {"Invert", "Cutout",
                                                     "SolarizeAdd"}
  assert len(ra.VARIANTS["paper"]) == 14


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_layers=-1, magnitude=9, variant="paper"), "num_layers"),
    (dict(num_layers=1.5, magnitude=9, variant="paper"), "num_layers"),
    (dict(num_layers=2, magnitude=31, variant="paper"), "magnitude"),
    (dict(num_layers=2, magnitude=9, variant="timm"), "variant"),
])
def test_bad_options_name_the_argument(kwargs, match):
  with pytest.raises(ValueError, match=match):
    ra.check_options(**kwargs)


def test_float_images_go_through_uint8():
  x = np.random.default_rng(0).random((8, 8, 1)).astype(np.float32)
  out = ra.augment_record({"image": x, "label": 3}, np.random.default_rng(1),
                          0, 9)
  np.testing.assert_allclose(out["image"], x, atol=0.5 / 255)
  assert out["image"].dtype == np.float32 and out["label"] == 3


def test_pipeline_batches_are_a_function_of_the_seed():
  images = np.stack([_image(i, (32, 32, 3)) for i in range(16)])
  split = image_data.Split(image_data._ArraySource(images, np.arange(16) % 4),
                           16, (32, 32, 3), 4, np.zeros(3), np.ones(3))
  opts = {"num_layers": 2, "magnitude": 9}

  def batch(seed, **kw):
    return image_data.train_dataset(split, global_batch=8, seed=seed,
                                    augment="none", **kw)[0]["image"]
  np.testing.assert_array_equal(batch(0, randaugment=opts),
                                batch(0, randaugment=opts))
  assert not np.array_equal(batch(0, randaugment=opts), batch(0))
  assert not np.array_equal(batch(0, randaugment=opts),
                            batch(1, randaugment=opts))


def test_classifier_reads_and_checks_the_config_fields():
  import configs.default  # pylint: disable=import-outside-toplevel
  from dropgraph_jax.training import classifier  # pylint: disable=g-import-not-at-top
  config = configs.default.get_config()
  assert classifier.randaugment_options(config)["num_layers"] == 0
  config.randaugment_layers, config.randaugment_magnitude = 2, 14.0
  assert classifier.randaugment_options(config) == {
      "num_layers": 2, "magnitude": 14.0, "variant": "paper",
      "translate_fraction": 100 / 224, "cutout_fraction": 40 / 224}
  config.randaugment_variant = "autoaugment"
  with pytest.raises(ValueError, match="randaugment_variant"):
    classifier.randaugment_options(config)
