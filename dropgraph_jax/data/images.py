"""Deterministic, checkpointable image input with grain.

Sources (``config.dataset``):
* ``'digits'``: scikit-learn's ``load_digits`` (1,797 real 8x8 images,
  shipped in the wheel): a fixed, seeded 80/20 train/test split, images
  scaled to [0, 1] as ``(8, 8, 1)``.
* ``'folder:ROOT'``: a local ImageFolder tree ``ROOT/<split>/<class>/*.jpg``
  (e.g. the offline CIFAR-10 copy), classes in sorted order, decoded once
  into memory (meant for CIFAR-sized data; use TFDS for ImageNet).
* any TFDS image-classification name (``'cifar10'``, ``'cifar100'``,
  ``'imagenet2012'``, ...) through ``tfds.data_source`` (random access over
  the prepared ArrayRecord files in ``config.data_dir``; works offline with
  ``tfds.testing.mock_data``). A missing dataset raises ``ValueError``
  saying how to prepare it or how to point at a local copy.

Augmentation (``config.augment``):

* ``'crop_flip'``: CIFAR's random 32x32 crop of the 4-pixel padded image and
  a horizontal flip with probability 0.5 (vectorised over the batch).
* ``'inception_crop_flip'``: ImageNet's training crop (He et al. 2016;
  Szegedy et al. 2015): a random rectangle covering a uniform fraction in
  [0.08, 1] of the image with aspect ratio log-uniform in [3/4, 4/3]
  (10 tries, then the central crop), resized bilinearly to
  ``image_size``, then flipped with probability 0.5.
* ``'none'``.

Evaluation images, and training images with ``'crop_flip'``/``'none'``
when ``image_size`` is set, are resized so that the shorter side is
``image_size / 0.875`` (256 for 224) and centre-cropped to ``image_size``
(the DropGraph appendix B.1 ImageNet protocol). Variable-size sources
(TFDS ``imagenet2012``) need ``image_size``; records are then cropped one by
one before batching.

The training stream is ``source -> shuffle(seed) -> repeat -> slice for this
host -> [per-record crop] -> batch -> random augmentation (per-batch seed)``, a grain
``MapDataset``: the batch at step s is a pure function of (seed, s), and the
iterator's state (``get_state()``, a small dict) is saved in every
checkpoint, so a resumed run sees exactly the batches an uninterrupted run
would (tested). Every epoch is a fresh permutation. The trainer reads it
through ``to_iter_dataset`` with threaded prefetch (``config.input_threads``,
``config.prefetch_batches``), which keeps that state exact.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Dict, Optional, Sequence

import grain
import jax
import numpy as np
from PIL import Image

from dropgraph_jax.data import randaugment as randaugment_lib
from dropgraph_jax.data.hosts import HostRows, host_eval_batches, host_slice, this_host_rows

# Per-channel mean / std for the normalisation of known datasets (0-1 scale).
NORMALIZATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet2012": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


@dataclasses.dataclass
class Split:
  """A random-access split: ``source[i] -> {'image': uint8/float, 'label'}``."""
  source: Any
  num_examples: int
  image_shape: Sequence[int]
  num_classes: int
  mean: np.ndarray
  std: np.ndarray


class _ArraySource:
  """Random access over in-memory arrays (grain's source protocol)."""

  def __init__(self, images: np.ndarray, labels: np.ndarray):
    self.images, self.labels = images, labels

  def __len__(self) -> int:
    return len(self.labels)

  def __getitem__(self, i):
    return {"image": self.images[i], "label": self.labels[i]}


def _digits(split: str, seed: int = 0) -> Split:
  # Imported here: scikit-learn costs ~1.7 s a process, which every
  # trainer launch not reading digits (most CLI and multi-host runs) saves.
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  data = load_digits()
  images = (data.images.astype(np.float32) / 16.0)[..., None]
  labels = data.target.astype(np.int32)
  order = np.random.default_rng(seed).permutation(len(labels))
  cut = int(0.8 * len(labels))
  idx = order[:cut] if split == "train" else order[cut:]
  mean = np.array([images[order[:cut]].mean()], np.float32)
  std = np.array([images[order[:cut]].std()], np.float32)
  return Split(_ArraySource(images[idx], labels[idx]), len(idx), (8, 8, 1),
               10, mean, std)


# Eval resize: shorter side = image_size / CENTER_CROP_FRACTION.
CENTER_CROP_FRACTION = 0.875
AUGMENTATIONS = ("crop_flip", "inception_crop_flip", "none")


def _tfds(name: str, split: str, data_dir: Optional[str]) -> Split:
  # TFDS imports TensorFlow (seconds, ~1 GB): loaded only when a TFDS
  # dataset is named, so digits and ImageFolder runs never pay for it.
  import tensorflow_datasets as tfds
  try:
    data_dir = data_dir or None
    builder = tfds.builder(name, data_dir=data_dir)
    # Never download: an unprepared dataset is an error that says how to
    # prepare it, not a silent fetch into data_dir.
    source = tfds.data_source(name, split=split, data_dir=data_dir,
                              download=False)
  except Exception as e:  # TFDS raises several kinds for a missing dataset.
    reason = (str(e).splitlines() or [""])[0][:200]
    raise ValueError(
        f"dataset {name!r} split {split!r} is not available "
        f"({type(e).__name__}: {reason}). Prepare it once with `tfds build {name}"
        f" --data_dir DIR` (with internet; imagenet2012 needs the manual "
        "download, see the TFDS catalog) and pass --config.data_dir=DIR."
    ) from None
  info = builder.info
  shape = tuple(info.features["image"].shape)
  mean, std = NORMALIZATION.get(name, ((0.5,) * shape[-1], (0.25,) * shape[-1]))
  return Split(source, len(source), shape,
               info.features["label"].num_classes,
               np.array(mean, np.float32), np.array(std, np.float32))


def _folder(root: str, split: str) -> Split:
  split_dir = os.path.join(root, split)
  if not os.path.isdir(split_dir):
    raise ValueError(f"ImageFolder split directory {split_dir!r} does not "
                     f"exist; expected ROOT/<split>/<class>/*.jpg.")
  classes = sorted(d for d in os.listdir(split_dir)
                   if os.path.isdir(os.path.join(split_dir, d)))
  if not classes:
    raise ValueError(f"ImageFolder {split_dir!r} has no class directories.")
  images, labels = [], []
  for label, name in enumerate(classes):
    folder = os.path.join(split_dir, name)
    for file in sorted(os.listdir(folder)):
      with Image.open(os.path.join(folder, file)) as im:
        images.append(np.asarray(im.convert("RGB"), np.uint8))
      labels.append(label)
  shapes = {im.shape for im in images}
  if len(shapes) != 1:
    raise ValueError(f"ImageFolder {split_dir!r} mixes image sizes {shapes}; "
                     "resize them first or use TFDS.")
  stacked = np.stack(images)
  mean = (stacked.reshape(-1, 3).mean(0) / 255.0).astype(np.float32)
  std = (stacked.reshape(-1, 3).std(0) / 255.0).astype(np.float32)
  known = NORMALIZATION.get("cifar10") if len(classes) == 10 and \
      stacked.shape[1:] == (32, 32, 3) else None
  if known is not None:  # use the standard statistics for CIFAR-10 layouts
    mean, std = (np.array(v, np.float32) for v in known)
  return Split(_ArraySource(stacked, np.array(labels, np.int32)), len(labels),
               stacked.shape[1:], len(classes), mean, std)


class _Subset:
  """Random access to chosen ``indices`` of another source."""

  def __init__(self, source, indices: np.ndarray):
    self.source, self.indices = source, indices

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, i):
    return self.source[int(self.indices[i])]


def _labels(source) -> np.ndarray:
  labels = getattr(source, "labels", None)  # in-memory sources
  if labels is None:
    labels = [source[i]["label"] for i in range(len(source))]
  return np.asarray(labels)


def subset(split: Split, count: int, seed: int, balanced: bool = True
           ) -> Split:
  """``count`` examples of ``split`` drawn with ``seed``: the same number of
  each class when ``balanced`` (the remainder to the first classes), else
  the first ``count`` of a seeded permutation. Mean and std stay those of
  the whole split."""
  if not 0 < count <= split.num_examples:
    raise ValueError(f"subset: count must be in [1, {split.num_examples}] "
                     f"(the split's size), got {count}.")
  rng = np.random.default_rng(seed)
  order = rng.permutation(split.num_examples)
  if balanced:
    labels = _labels(split.source)[order]
    per_class = [order[labels == c] for c in range(split.num_classes)]
    quota = [count // split.num_classes + (c < count % split.num_classes)
             for c in range(split.num_classes)]
    if any(q > len(idx) for q, idx in zip(quota, per_class)):
      raise ValueError(f"subset: a class has fewer than {max(quota)} "
                       f"examples; use balanced=False or a smaller count.")
    order = np.sort(np.concatenate([idx[:q] for q, idx in
                                    zip(quota, per_class)]))
  else:
    order = np.sort(order[:count])
  return dataclasses.replace(split, source=_Subset(split.source, order),
                             num_examples=count)


def load_split(dataset: str, split: str, data_dir: Optional[str] = None,
               seed: int = 0, image_size: int = 0) -> Split:
  """The split, with ``image_shape`` after cropping to ``image_size``."""
  if dataset.startswith("folder:"):
    data = _folder(dataset[len("folder:"):], split)
  elif dataset == "digits":
    if split not in ("train", "test"):
      raise ValueError(f"digits has splits 'train' and 'test', got {split!r}.")
    data = _digits(split, seed)
  else:
    data = _tfds(dataset, split, data_dir)
  if image_size:
    if image_size < 1:
      raise ValueError(f"image_size must be >= 0, got {image_size}.")
    data.image_shape = (image_size, image_size, data.image_shape[-1])
  elif None in tuple(data.image_shape):
    raise ValueError(
        f"dataset {dataset!r} has images of varying size "
        f"{tuple(data.image_shape)}; set --config.image_size (e.g. 224).")
  return data


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """Bilinear resize of one ``(h, w, c)`` uint8 or float image."""
  if image.shape[:2] == (height, width):
    return image
  if image.dtype == np.uint8 and image.shape[-1] in (1, 3):
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    out = np.asarray(pil.resize((width, height), Image.BILINEAR))
    return out.reshape(height, width, image.shape[-1])
  chans = [np.asarray(Image.fromarray(image[..., c].astype(np.float32)).resize(
      (width, height), Image.BILINEAR)) for c in range(image.shape[-1])]
  return np.stack(chans, -1).astype(image.dtype)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """Resize the shorter side to ``size / 0.875``, then the central
  ``size x size`` window: ``(h, w, c) -> (size, size, c)``."""
  h, w = image.shape[:2]
  short = int(round(size / CENTER_CROP_FRACTION))
  scale = short / min(h, w)
  nh, nw = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
  image = _resize(image, nh, nw)
  top, left = (nh - size) // 2, (nw - size) // 2
  return image[top:top + size, left:left + size]


def inception_crop(image: np.ndarray, size: int, rng: np.random.Generator,
                   area=(0.08, 1.0), ratio=(3 / 4, 4 / 3), tries: int = 10
                   ) -> np.ndarray:
  """Random-size, random-aspect crop resized to ``(size, size, c)``."""
  h, w = image.shape[:2]
  for _ in range(tries):
    target = rng.uniform(*area) * h * w
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
    cw = int(round(np.sqrt(target * aspect)))
    ch = int(round(np.sqrt(target / aspect)))
    if 0 < cw <= w and 0 < ch <= h:
      top = int(rng.integers(0, h - ch + 1))
      left = int(rng.integers(0, w - cw + 1))
      return _resize(image[top:top + ch, left:left + cw], size, size)
  return center_crop(image, size)


def crop_record(record: Dict[str, Any], size: int, augment: str,
                rng: Optional[np.random.Generator]) -> Dict[str, Any]:
  """One record cropped to ``size``: ImageNet's random-size crop for
  ``'inception_crop_flip'`` with a generator, else the centre crop."""
  image = np.asarray(record["image"])
  if image.ndim == 2:
    image = image[..., None]
  if rng is not None and augment == "inception_crop_flip":
    image = inception_crop(image, size, rng)
  else:
    image = center_crop(image, size)
  return {"image": image, "label": record["label"]}


def _to_float(images: np.ndarray) -> np.ndarray:
  if images.dtype == np.uint8:
    return images.astype(np.float32) / 255.0
  images = images.astype(np.float32)
  return images[..., None] if images.ndim == 3 else images


def preprocess_batch(batch: Dict[str, Any], split: Split, augment: str,
                     pad: int, rng: Optional[np.random.Generator],
                     rows: Optional[HostRows] = None):
  """Vectorised over the batch: crop + flip (if asked), then normalise;
  the draws are those of ``rows`` of the global batch (default: the batch
  is the whole global batch)."""
  images = _to_float(np.asarray(batch["image"]))
  if augment not in AUGMENTATIONS:
    raise ValueError(f"train_dataset: augment (config.augment) must be one "
                     f"of {list(AUGMENTATIONS)}, got "
                     f"{augment!r}.")
  n = images.shape[0]
  rows = rows or HostRows(0, n, n)
  if rng is not None and augment == "crop_flip":
    _, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dy = rows.of(rng.integers(0, 2 * pad + 1, size=rows.total))
    dx = rows.of(rng.integers(0, 2 * pad + 1, size=rows.total))
    ys = (dy[:, None] + np.arange(h))[:, :, None]
    xs = (dx[:, None] + np.arange(w))[:, None, :]
    images = padded[np.arange(n)[:, None, None], ys, xs]
    flip = rows.of(rng.random(rows.total)) < 0.5
    images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
  if rng is not None and augment == "inception_crop_flip":
    flip = rows.of(rng.random(rows.total)) < 0.5
    images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
  images = (images - split.mean) / split.std
  return {"image": images.astype(np.float32),
          "label": np.asarray(batch["label"]).astype(np.int32)}


def train_dataset(split: Split, *, global_batch: int, seed: int,
                  augment: str = "crop_flip", pad: int = 4,
                  image_size: int = 0,
                  randaugment: Optional[Dict[str, Any]] = None
                  ) -> grain.MapDataset:
  """Infinite, shuffled, augmented, batched stream for this host.

  Each host reads ``global_batch / process_count`` examples per step: its
  contiguous part of the step's global batch (:func:`host_slice`), so
  the global batch, augmentations included, is the same for any number
  of hosts (:class:`HostRows`). Augmentation runs on whole batches
  (vectorised NumPy, seeded per batch index), which keeps small images from
  being bound by per-record Python overhead. ``randaugment`` (the
  keywords of :func:`randaugment.augment_record`: ``num_layers``,
  ``magnitude``, ...) runs per record, after the crop, before batching.
  """
  count = jax.process_count()
  if global_batch % count:
    raise ValueError(f"batch_size {global_batch} is not divisible by the "
                     f"number of hosts {count}.")
  ds = grain.MapDataset.source(split.source).shuffle(seed=seed).repeat(None)
  # Per-record draws are seeded by the record's place in the global stream
  # (mapped before the host's slice, computed lazily for its records only).
  if image_size:
    ds = ds.random_map(
        lambda r, rng: crop_record(r, image_size, augment, rng), seed=seed + 2)
  if randaugment and randaugment.get("num_layers"):
    ds = ds.random_map(functools.partial(randaugment_lib.augment_record,
                                         **randaugment), seed=seed + 3)
  ds = host_slice(ds, global_batch, jax.process_index(), count)
  ds = ds.batch(global_batch // count, drop_remainder=True)
  rows = this_host_rows(global_batch)  # batch k of every host is global step k
  return ds.random_map(
      lambda b, rng: preprocess_batch(b, split, augment, pad, rng, rows),
      seed=seed + 1)


def eval_batches(split: Split, batch: int, image_size: int = 0):
  """Yields padded eval batches with a ``mask`` of real examples (this host,
  :func:`host_eval_batches`); with ``image_size``, each image is resized
  and centre-cropped first."""
  ds = grain.MapDataset.source(split.source)
  for indices, valid in host_eval_batches(split.num_examples, batch):
    items = [ds[int(i)] for i in indices]
    if image_size:
      items = [crop_record(it, image_size, "none", None) for it in items]
    out = preprocess_batch(
        {"image": np.stack([np.asarray(it["image"]) for it in items]),
         "label": np.stack([it["label"] for it in items])},
        split, "none", 0, None)
    out["mask"] = valid
    yield out
