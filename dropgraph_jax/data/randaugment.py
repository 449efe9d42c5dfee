"""RandAugment (Cubuk et al. 2019, arXiv:1909.13719) on uint8 images, with
Pillow.

Each training image gets ``num_layers`` (N) operations drawn uniformly with
replacement, all at the shared magnitude ``magnitude`` (M, on the paper's
0-10 scale; larger values extrapolate). The ops are Pillow's (``ImageOps``,
``ImageEnhance``, affine ``Image.transform``), the maintained library the
PIL-based references use, so the pipeline needs no TensorFlow; the random
choices come from the NumPy generator grain hands each record, so an
image's augmentation is a pure function of (seed, index).

Magnitude -> argument, as the reference (``distort_image_with_randaugment``
in tensorflow/tpu ``models/official/efficientnet/autoaugment.py``, the code
the AutoDropout and UDA ImageNet runs used), with ``l = M / 10``:

1. Rotate: ``30 l`` degrees, random sign.
2. ShearX / ShearY: ``0.3 l``, random sign.
3. TranslateX / TranslateY: ``translate l`` pixels, random sign;
   ``translate = translate_fraction * width`` (the reference's 100 px at
   224 px by default; UDA's CIFAR code uses 10 px at 32 px, 0.3125).
4. Color, Contrast, Brightness, Sharpness: enhancement factor
   ``1.8 l + 0.1`` (1 leaves the image alone).
5. Posterize: keep ``int(4 l)`` bits. Solarize: invert the pixels at or
   above ``int(256 l)``. As in the reference, these two get *weaker* as M
   grows (M = 10 leaves Solarize a no-op and Posterize at 4 bits); we keep
   that, since the papers' M were tuned with it.
6. AutoContrast, Equalize (per channel) and Identity take no magnitude.

Geometric ops fill with grey (128), as the reference.

Variants (``variant``):

* ``'paper'``: the 14 operations of the paper's Figure 2 (Identity,
  AutoContrast, Equalize, Rotate, Solarize, Color, Posterize, Contrast,
  Brightness, Sharpness, ShearX/Y, TranslateX/Y), each applied.
* ``'efficientnet'``: the reference code's list (no Identity; Invert,
  Cutout of ``cutout_fraction * width`` (40 px at 224) and SolarizeAdd
  (``+110 l`` below 128) added), each chosen op applied with a probability
  drawn from U(0.2, 0.8), as that code does.
* ``'uda'``: UDA's CIFAR code (google-research/uda ``randaug_policies``):
  its 15 ops (the paper's 14 without Identity, with Invert and Cutout),
  each applied with probability 0.5 at a magnitude drawn uniformly from
  1-9 per op (``magnitude`` is not used).
"""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from dropgraph_jax.regularizers._validate import check_number

FILL = 128


def _signed(value: float, rng: np.random.Generator) -> float:
  return value if rng.random() < 0.5 else -value


def _affine(img: Image.Image, coeffs) -> Image.Image:
  fill = FILL if img.mode == "L" else (FILL,) * 3
  return img.transform(img.size, Image.Transform.AFFINE, coeffs,
                       resample=Image.Resampling.NEAREST, fillcolor=fill)


def _rotate(img, level, rng, hp):
  fill = FILL if img.mode == "L" else (FILL,) * 3
  return img.rotate(_signed(30.0 * level, rng), fillcolor=fill)


def _shear_x(img, level, rng, hp):
  return _affine(img, (1, _signed(0.3 * level, rng), 0, 0, 1, 0))


def _shear_y(img, level, rng, hp):
  return _affine(img, (1, 0, 0, _signed(0.3 * level, rng), 1, 0))


def _translate_x(img, level, rng, hp):
  pixels = _signed(hp["translate"] * level, rng)
  return _affine(img, (1, 0, pixels, 0, 1, 0))


def _translate_y(img, level, rng, hp):
  pixels = _signed(hp["translate"] * level, rng)
  return _affine(img, (1, 0, 0, 0, 1, pixels))


def _enhance(kind) -> Callable:
  def op(img, level, rng, hp):
    return kind(img).enhance(1.8 * level + 0.1)
  return op


def _posterize(img, level, rng, hp):
  bits = int(4 * level)
  if bits <= 0:  # PIL refuses 0 bits; keeping none of 8 bits is all zeros
    return Image.new(img.mode, img.size)
  return ImageOps.posterize(img, min(bits, 8))


def _solarize(img, level, rng, hp):
  return ImageOps.solarize(img, int(256 * level))


def _solarize_add(img, level, rng, hp):
  x = np.asarray(img).astype(np.int32)
  added = np.clip(x + int(110 * level), 0, 255)
  return Image.fromarray(np.where(x < 128, added, x).astype(np.uint8))


def _cutout(img, level, rng, hp):
  x = np.array(img)
  half = int(hp["cutout"] * level)
  cy, cx = rng.integers(0, x.shape[0]), rng.integers(0, x.shape[1])
  x[max(cy - half, 0):cy + half, max(cx - half, 0):cx + half] = FILL
  return Image.fromarray(x)


OPS: Dict[str, Callable] = {
    "Identity": lambda img, level, rng, hp: img,
    "AutoContrast": lambda img, level, rng, hp: ImageOps.autocontrast(img),
    "Equalize": lambda img, level, rng, hp: ImageOps.equalize(img),
    "Invert": lambda img, level, rng, hp: ImageOps.invert(img),
    "Rotate": _rotate, "Solarize": _solarize, "SolarizeAdd": _solarize_add,
    "Posterize": _posterize,
    "Color": _enhance(ImageEnhance.Color),
    "Contrast": _enhance(ImageEnhance.Contrast),
    "Brightness": _enhance(ImageEnhance.Brightness),
    "Sharpness": _enhance(ImageEnhance.Sharpness),
    "ShearX": _shear_x, "ShearY": _shear_y,
    "TranslateX": _translate_x, "TranslateY": _translate_y,
    "Cutout": _cutout,
}
VARIANTS = {
    "paper": ("Identity", "AutoContrast", "Equalize", "Rotate", "Solarize",
              "Color", "Posterize", "Contrast", "Brightness", "Sharpness",
              "ShearX", "ShearY", "TranslateX", "TranslateY"),
    "efficientnet": ("AutoContrast", "Equalize", "Invert", "Rotate",
                     "Posterize", "Solarize", "Color", "Contrast",
                     "Brightness", "Sharpness", "ShearX", "ShearY",
                     "TranslateX", "TranslateY", "Cutout", "SolarizeAdd"),
    "uda": ("Invert", "Cutout", "Sharpness", "AutoContrast", "Posterize",
            "ShearX", "TranslateX", "TranslateY", "ShearY", "Rotate",
            "Equalize", "Contrast", "Color", "Solarize", "Brightness"),
}


def check_options(num_layers, magnitude, variant: str,
                  translate_fraction: float = 100 / 224,
                  cutout_fraction: float = 40 / 224) -> None:
  """``ValueError`` naming the bad RandAugment option and its value."""
  where = "randaugment"
  check_number(where, "num_layers (config.randaugment_layers)", num_layers,
               low=0, high=16, integer=True)
  check_number(where, "magnitude (config.randaugment_magnitude)", magnitude,
               low=0, high=30)
  check_number(where, "translate_fraction", translate_fraction, low=0, high=1)
  check_number(where, "cutout_fraction", cutout_fraction, low=0, high=1)
  if variant not in VARIANTS:
    raise ValueError(f"{where}: variant (config.randaugment_variant) must be "
                     f"one of {sorted(VARIANTS)}, got {variant!r}.")


def apply_op(name: str, image: np.ndarray, magnitude: float,
             rng: np.random.Generator, translate_fraction: float = 100 / 224,
             cutout_fraction: float = 40 / 224) -> np.ndarray:
  """One named op on a uint8 ``(H, W, C)`` image (C = 1 or 3)."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f"randaugment: image must be uint8 (0-255), got "
                     f"{image.dtype}; scale floats in [0, 1] by 255 first.")
  gray = image.shape[-1] == 1
  img = Image.fromarray(image[..., 0] if gray else image)
  width = image.shape[1]
  hp = {"translate": translate_fraction * width,
        "cutout": cutout_fraction * width}
  out = np.asarray(OPS[name](img, magnitude / 10.0, rng, hp))
  return out[..., None] if gray else out


def randaugment(image: np.ndarray, rng: np.random.Generator, num_layers: int,
                magnitude: float, variant: str = "paper",
                translate_fraction: float = 100 / 224,
                cutout_fraction: float = 40 / 224) -> np.ndarray:
  """``num_layers`` random ops at ``magnitude`` on one uint8 image."""
  check_options(num_layers, magnitude, variant, translate_fraction,
                cutout_fraction)
  ops = VARIANTS[variant]
  for _ in range(num_layers):
    name = ops[int(rng.integers(len(ops)))]
    level = float(rng.integers(1, 10)) if variant == "uda" else magnitude
    if not rng.random() < _APPLY[variant](rng):
      continue
    image = apply_op(name, image, level, rng, translate_fraction,
                     cutout_fraction)
  return image


# The probability of applying each drawn op, per variant.
_APPLY = {"paper": lambda rng: 1.0, "uda": lambda rng: 0.5,
          "efficientnet": lambda rng: rng.uniform(0.2, 0.8)}


def augment_record(record, rng: np.random.Generator, num_layers: int,
                   magnitude: float, variant: str = "paper",
                   translate_fraction: float = 100 / 224,
                   cutout_fraction: float = 40 / 224):
  """A grain ``random_map`` body: RandAugment on ``record['image']``; float
  images in [0, 1] go through uint8 and come back as floats."""
  image = np.asarray(record["image"])
  as_float = image.dtype != np.uint8
  if as_float:
    image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
  if image.ndim == 2:
    image = image[..., None]
  image = randaugment(image, rng, num_layers, magnitude, variant,
                      translate_fraction, cutout_fraction)
  if as_float:
    image = image.astype(np.float32) / 255.0
  return {**record, "image": image}
