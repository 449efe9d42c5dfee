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

The training stream is ``source -> shuffle(seed) -> repeat -> slice for this
host -> random augmentation (per-record seed) -> batch``, a grain
``MapDataset``: the batch at step s is a pure function of (seed, s), and the
iterator's state (``get_state()``, a small dict) is saved in every
checkpoint, so a resumed run sees exactly the batches an uninterrupted run
would (tested). Every epoch is a fresh permutation. The trainer reads it
through ``to_iter_dataset`` with threaded prefetch (``config.input_threads``,
``config.prefetch_batches``), which keeps that state exact.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Sequence

import grain
import jax
import numpy as np

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
  from sklearn.datasets import load_digits
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


def _tfds(name: str, split: str, data_dir: Optional[str]) -> Split:
  import tensorflow_datasets as tfds
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    source = tfds.data_source(name, split=split, data_dir=data_dir)
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
  import os

  from PIL import Image
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


def load_split(dataset: str, split: str, data_dir: Optional[str] = None,
               seed: int = 0) -> Split:
  if dataset.startswith("folder:"):
    return _folder(dataset[len("folder:"):], split)
  if dataset == "digits":
    if split not in ("train", "test"):
      raise ValueError(f"digits has splits 'train' and 'test', got {split!r}.")
    return _digits(split, seed)
  return _tfds(dataset, split, data_dir)


def _to_float(images: np.ndarray) -> np.ndarray:
  if images.dtype == np.uint8:
    return images.astype(np.float32) / 255.0
  images = images.astype(np.float32)
  return images[..., None] if images.ndim == 3 else images


def _preprocess_batch(batch: Dict[str, Any], split: Split, augment: str,
                      pad: int, rng: Optional[np.random.Generator]):
  """Vectorised over the batch: crop + flip (if asked), then normalise."""
  images = _to_float(np.asarray(batch["image"]))
  if rng is not None and augment == "crop_flip":
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dy = rng.integers(0, 2 * pad + 1, size=n)
    dx = rng.integers(0, 2 * pad + 1, size=n)
    rows = (dy[:, None] + np.arange(h))[:, :, None]
    cols = (dx[:, None] + np.arange(w))[:, None, :]
    images = padded[np.arange(n)[:, None, None], rows, cols]
    flip = rng.random(n) < 0.5
    images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
  images = (images - split.mean) / split.std
  return {"image": images.astype(np.float32),
          "label": np.asarray(batch["label"]).astype(np.int32)}


def train_dataset(split: Split, *, global_batch: int, seed: int,
                  augment: str = "crop_flip", pad: int = 4
                  ) -> grain.MapDataset:
  """Infinite, shuffled, augmented, batched stream for this host.

  Each host reads ``global_batch / process_count`` examples per step from
  its slice of the shuffled stream. Augmentation runs on whole batches
  (vectorised NumPy, seeded per batch index), which keeps small images from
  being bound by per-record Python overhead.
  """
  count = jax.process_count()
  if global_batch % count:
    raise ValueError(f"batch_size {global_batch} is not divisible by the "
                     f"number of hosts {count}.")
  ds = grain.MapDataset.source(split.source).shuffle(seed=seed).repeat(None)
  ds = ds[jax.process_index()::count]
  ds = ds.batch(global_batch // count, drop_remainder=True)
  return ds.random_map(
      lambda b, rng: _preprocess_batch(b, split, augment, pad, rng),
      seed=seed + 1)


def eval_batches(split: Split, batch: int):
  """Yields padded eval batches with a ``mask`` of real examples (this host)."""
  count, index = jax.process_count(), jax.process_index()
  ds = grain.MapDataset.source(split.source)[index::count]
  n = len(ds)
  for start in range(0, n, batch):
    items = [ds[i] for i in range(start, min(start + batch, n))]
    real = len(items)
    items += [items[-1]] * (batch - real)
    out = _preprocess_batch(
        {"image": np.stack([np.asarray(it["image"]) for it in items]),
         "label": np.stack([it["label"] for it in items])},
        split, "none", 0, None)
    out["mask"] = np.arange(batch) < real
    yield out
