"""Segmentation input: MoNuSeg in BiO-Net's layout (DropGraph Table 3).

``ROOT/{train,test}/x/NAME.png`` (RGB) and ``ROOT/{train,test}/y/NAME.png``
(the nucleus mask, 0 / 255) as in BiO-Net's loader (the code the paper
used) and ``../shared/datasets/monuseg2018.zip``. Each 1000 x 1000 image
gives its four ``patch`` x ``patch`` corner patches (512 in the paper: 120
training and 56 test patches); ``image_size`` > 0 then resizes every
patch (bilinear for the image, nearest for the mask), the reduced
protocol's knob. Images are scaled to [0, 1]; masks become class ids
(0 background, 1 nucleus).

Training batches (:func:`train_dataset`) are shuffled, repeated and
augmented per batch with random horizontal and vertical flips and
rotations by multiples of 90 degrees, the same draw for an image and its
mask. The paper's Keras recipe (rotation in [-15, 15] degrees, shifts,
shear, zoom, flips) is not reproduced beyond flips and right-angle
rotations: those keep every pixel and need no interpolation of the mask.
Files are read with PIL only (no pickle).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator

import grain
import jax
import numpy as np
from PIL import Image

from dropgraph_jax.data.images import host_slice


@dataclasses.dataclass
class SegSplit:
  images: np.ndarray  # (N, H, W, 3) uint8
  masks: np.ndarray   # (N, H, W) uint8 class ids
  num_classes: int

  @property
  def num_examples(self) -> int:
    return len(self.images)

  @property
  def image_shape(self):
    return self.images.shape[1:]


def _read(path: str, mode: str) -> np.ndarray:
  with Image.open(path) as im:
    return np.asarray(im.convert(mode))


def _corners(array: np.ndarray, patch: int):
  h, w = array.shape[:2]
  if h < patch or w < patch:
    raise ValueError(f"patch={patch} is larger than an image of {h}x{w}.")
  return [array[:patch, :patch], array[:patch, w - patch:],
          array[h - patch:, :patch], array[h - patch:, w - patch:]]


def _resize(array: np.ndarray, size: int, resample) -> np.ndarray:
  return np.asarray(Image.fromarray(array).resize((size, size), resample))


def load_monuseg(root: str, split: str, patch: int = 512,
                 image_size: int = 0) -> SegSplit:
  """The ``split`` ('train' or 'test') of MoNuSeg under ``root``."""
  folder = os.path.join(root, split)
  x_dir, y_dir = os.path.join(folder, "x"), os.path.join(folder, "y")
  if not os.path.isdir(x_dir) or not os.path.isdir(y_dir):
    raise ValueError(f"MoNuSeg split {split!r}: {x_dir} and {y_dir} must "
                     "exist (unzip monuseg2018.zip and pass its MoNuSeg "
                     "folder as --config.data_dir).")
  names = sorted(n for n in os.listdir(x_dir) if n.endswith(".png"))
  if not names:
    raise ValueError(f"MoNuSeg split {split!r}: no .png image in {x_dir}.")
  images, masks = [], []
  for name in names:
    image = _read(os.path.join(x_dir, name), "RGB")
    mask_path = os.path.join(y_dir, name)
    if not os.path.exists(mask_path):
      raise ValueError(f"MoNuSeg: image {name} has no mask {mask_path}.")
    mask = _read(mask_path, "L")
    if mask.shape != image.shape[:2]:
      raise ValueError(f"MoNuSeg: mask {mask_path} is {mask.shape}, its "
                       f"image {image.shape[:2]}.")
    if not np.isin(mask, (0, 255)).all():
      raise ValueError(f"MoNuSeg: mask {mask_path} holds values other than "
                       "0 and 255.")
    images += _corners(image, patch)
    masks += _corners((mask // 255).astype(np.uint8), patch)
  if image_size:
    images = [_resize(i, image_size, Image.BILINEAR) for i in images]
    masks = [_resize(m, image_size, Image.NEAREST) for m in masks]
  return SegSplit(np.stack(images), np.stack(masks), num_classes=2)


def load_split(dataset: str, split: str, data_dir: str, patch: int = 512,
               image_size: int = 0) -> SegSplit:
  if dataset != "monuseg":
    raise ValueError(f"config.dataset must be 'monuseg' for segmentation "
                     f"models, got {dataset!r}.")
  return load_monuseg(data_dir, split, patch, image_size)


def augment_batch(batch: dict, rng: np.random.Generator) -> dict:
  """Random flips and right-angle rotations, one draw per example, the
  same for its image and mask."""
  images, masks = batch["image"].copy(), batch["mask"].copy()
  for i in range(len(images)):
    turns, flip_h, flip_v = rng.integers(0, 4), rng.random(), rng.random()
    img, msk = np.rot90(images[i], turns), np.rot90(masks[i], turns)
    if flip_h < 0.5:
      img, msk = img[:, ::-1], msk[:, ::-1]
    if flip_v < 0.5:
      img, msk = img[::-1], msk[::-1]
    images[i], masks[i] = img, msk
  return {"image": images, "mask": masks}


def _to_float(batch: dict) -> dict:
  return {"image": batch["image"].astype(np.float32) / 255.0,
          "mask": batch["mask"].astype(np.int32)}


def train_dataset(split: SegSplit, *, global_batch: int, seed: int,
                  augment: bool = True) -> grain.MapDataset:
  """Infinite shuffled stream of this host's part of every global batch
  (:func:`dropgraph_jax.data.images.host_slice`)."""
  count = jax.process_count()
  if global_batch % count:
    raise ValueError(f"batch_size {global_batch} is not divisible by the "
                     f"number of hosts {count}.")
  if split.images.shape[1] != split.images.shape[2] and augment:
    raise ValueError("augmentation rotates by 90 degrees: patches must be "
                     f"square, got {split.images.shape[1:3]}.")
  records = grain.MapDataset.range(split.num_examples).map(
      lambda i: {"image": split.images[i], "mask": split.masks[i]})
  ds = records.shuffle(seed=seed).repeat(None)
  ds = host_slice(ds, global_batch, jax.process_index(), count)
  ds = ds.batch(global_batch // count, drop_remainder=True)
  if augment:
    ds = ds.random_map(lambda b, rng: augment_batch(b, rng), seed=seed + 1)
  return ds.map(_to_float)


def eval_batches(split: SegSplit, batch: int) -> Iterator[dict]:
  """This host's padded evaluation batches with a per-example ``valid``."""
  count, index = jax.process_count(), jax.process_index()
  order = np.arange(split.num_examples)[index::count]
  for start in range(0, len(order), batch):
    picked = order[start:start + batch]
    real = len(picked)
    picked = np.concatenate([picked, np.repeat(picked[-1:], batch - real)])
    out = _to_float({"image": split.images[picked],
                     "mask": split.masks[picked]})
    out["valid"] = np.arange(batch) < real
    yield out
