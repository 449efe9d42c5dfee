"""Segmentation input: MoNuSeg and PASCAL VOC (DropGraph Table 3).

**MoNuSeg**, in BiO-Net's layout:
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
**PASCAL VOC 2012** (``load_voc``): ``ROOT/JPEGImages/ID.jpg``, masks
``ROOT/<mask_dir>/ID.png`` (``SegmentationClass``, or SBD's
``SegmentationClassAug`` for the 10,582-image ``train_aug`` list the paper
uses) as palette PNGs of class ids, 255 on object borders (ignored by the
metrics), and the id list ``ROOT/ImageSets/Segmentation/<split>.txt``.
Images are read when a batch needs them. Training, as the paper: random
horizontal flip, random scale in [0.5, 1.5], then the centre 224 x 224
crop (padded with mean-free zeros and label 255 when the scaled image is
smaller). Evaluation pads each image to ``eval_size`` (512 holds every VOC
image) with label 255, so whole images are scored in fixed-shape batches.

Files are read with PIL only (no pickle).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Optional, Sequence, Tuple

import grain
import jax
import numpy as np
from PIL import Image

from dropgraph_jax.data.hosts import HostRows, host_eval_batches, host_slice, this_host_rows


@dataclasses.dataclass
class SegSplit:
  """Random-access records ``{'image': (H, W, 3) uint8, 'mask': (H, W)
  uint8}`` and the fixed ``image_shape`` batches have: records are used as
  they are (MoNuSeg patches), or cropped for training and padded for
  evaluation to it (VOC, ``scale_range`` set)."""
  source: Sequence[dict]
  num_classes: int
  image_shape: Tuple[int, int, int]
  scale_range: Tuple[float, float] = ()

  @property
  def num_examples(self) -> int:
    return len(self.source)


class _Arrays:
  """Records from stacked arrays (MoNuSeg: read once, kept in memory)."""

  def __init__(self, images: np.ndarray, masks: np.ndarray):
    self.images, self.masks = images, masks

  def __len__(self) -> int:
    return len(self.images)

  def __getitem__(self, i: int) -> dict:
    return {"image": self.images[i], "mask": self.masks[i]}


class _VocFiles:
  """Records read from VOC's files when asked for."""

  def __init__(self, root: str, ids: Sequence[str], mask_dir: str):
    self.root, self.ids, self.mask_dir = root, list(ids), mask_dir

  def __len__(self) -> int:
    return len(self.ids)

  def __getitem__(self, i: int) -> dict:
    name = self.ids[i]
    image = _read(os.path.join(self.root, "JPEGImages", f"{name}.jpg"),
                  "RGB")
    with Image.open(os.path.join(self.root, self.mask_dir,
                                 f"{name}.png")) as im:
      mask = np.asarray(im)  # palette indices are the class ids
    if mask.shape != image.shape[:2]:
      raise ValueError(f"VOC: mask of {name} is {mask.shape}, its image "
                       f"{image.shape[:2]}.")
    return {"image": image, "mask": mask.astype(np.uint8)}


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
  images, masks = np.stack(images), np.stack(masks)
  return SegSplit(_Arrays(images, masks), 2, images.shape[1:])


VOC_CLASSES = 21


def load_voc(root: str, split: str, mask_dir: str = "SegmentationClass",
             crop: int = 224, eval_size: int = 512) -> SegSplit:
  """VOC's ``split`` list ('train', 'val', 'train_aug', ...) under
  ``root``; training splits (names starting with 'train') are cropped to
  ``crop``, others padded to ``eval_size``."""
  listing = os.path.join(root, "ImageSets", "Segmentation", f"{split}.txt")
  if not os.path.exists(listing):
    raise ValueError(f"VOC split {split!r}: {listing} does not exist (pass "
                     "the VOC2012 folder as --config.data_dir).")
  with open(listing) as f:
    ids = [line.strip() for line in f if line.strip()]
  if not ids:
    raise ValueError(f"VOC split {split!r}: {listing} lists no image.")
  train = split.startswith("train")
  size = crop if train else eval_size
  return SegSplit(_VocFiles(root, ids, mask_dir), VOC_CLASSES,
                  (size, size, 3), (0.5, 1.5) if train else ())


def _fit(image: np.ndarray, mask: np.ndarray, size: int):
  """The centre ``size`` x ``size`` window, padded (image 0, label 255)
  where the record is smaller."""
  out_image = np.zeros((size, size, 3), np.uint8)
  out_mask = np.full((size, size), 255, np.uint8)
  h, w = mask.shape
  top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
  ch, cw = min(h, size), min(w, size)
  oy, ox = (size - ch) // 2, (size - cw) // 2
  out_image[oy:oy + ch, ox:ox + cw] = image[top:top + ch, left:left + cw]
  out_mask[oy:oy + ch, ox:ox + cw] = mask[top:top + ch, left:left + cw]
  return out_image, out_mask


def scale_flip_crop(record: dict, rng: np.random.Generator,
                    scale_range: Tuple[float, float], size: int) -> dict:
  """VOC training: random flip, random scale, the centre crop."""
  image, mask = record["image"], record["mask"]
  if rng.random() < 0.5:
    image, mask = image[:, ::-1], mask[:, ::-1]
  factor = rng.uniform(*scale_range)
  h, w = mask.shape
  new = (max(1, round(w * factor)), max(1, round(h * factor)))
  image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(
      new, Image.BILINEAR))
  mask = np.asarray(Image.fromarray(np.ascontiguousarray(mask)).resize(
      new, Image.NEAREST))
  image, mask = _fit(image, mask, size)
  return {"image": image, "mask": mask}


def load_split(config, split: str) -> SegSplit:
  """``config.dataset`` ('monuseg' or 'voc') split ``split``."""
  if config.dataset == "monuseg":
    return load_monuseg(config.data_dir, split, config.patch_size,
                        config.image_size)
  if config.dataset == "voc":
    return load_voc(config.data_dir, split, config.voc_mask_dir,
                    config.crop_size, config.eval_size)
  raise ValueError(f"config.dataset must be 'monuseg' or 'voc' for "
                   f"segmentation models, got {config.dataset!r}.")


def augment_batch(batch: dict, rng: np.random.Generator,
                  rows: Optional[HostRows] = None) -> dict:
  """Random flips and right-angle rotations, one draw per example, the
  same for its image and mask; the draws of ``rows`` of the global batch
  (default: the batch is the global batch)."""
  images, masks = batch["image"].copy(), batch["mask"].copy()
  rows = rows or HostRows(0, len(images), len(images))
  draws = [(rng.integers(0, 4), rng.random(), rng.random())
           for _ in range(rows.total)]
  for i, (turns, flip_h, flip_v) in enumerate(rows.of(draws)):
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
  (:func:`dropgraph_jax.data.hosts.host_slice`); VOC records are scaled,
  flipped and cropped one by one, MoNuSeg batches flipped and rotated."""
  count = jax.process_count()
  if global_batch % count:
    raise ValueError(f"batch_size {global_batch} is not divisible by the "
                     f"number of hosts {count}.")
  ds = grain.MapDataset.source(split.source).shuffle(seed=seed).repeat(None)
  if split.scale_range:  # before the host's slice: seeded by global place
    size = split.image_shape[0]
    ds = ds.random_map(lambda r, rng: scale_flip_crop(
        r, rng, split.scale_range, size), seed=seed + 2)
  ds = host_slice(ds, global_batch, jax.process_index(), count)
  ds = ds.batch(global_batch // count, drop_remainder=True)
  rows = this_host_rows(global_batch)
  if augment and not split.scale_range:
    if split.image_shape[0] != split.image_shape[1]:
      raise ValueError("augmentation rotates by 90 degrees: patches must be "
                       f"square, got {split.image_shape[:2]}.")
    ds = ds.random_map(lambda b, rng: augment_batch(b, rng, rows),
                       seed=seed + 1)
  return ds.map(_to_float)


def eval_batches(split: SegSplit, batch: int) -> Iterator[dict]:
  """This host's padded evaluation batches with a per-example ``valid``;
  VOC images are padded to the split's size with label 255."""
  size = split.image_shape[0]
  for picked, valid in host_eval_batches(split.num_examples, batch):
    records = [split.source[int(i)] for i in picked]
    if split.source and not isinstance(split.source, _Arrays):
      for r in records:
        if max(r["mask"].shape) > size:
          raise ValueError(f"an evaluation image of {r['mask'].shape} is "
                           f"larger than eval_size={size}.")
      records = [dict(zip(("image", "mask"), _fit(r["image"], r["mask"],
                                                  size))) for r in records]
    out = _to_float({"image": np.stack([r["image"] for r in records]),
                     "mask": np.stack([r["mask"] for r in records])})
    out["valid"] = valid
    yield out
