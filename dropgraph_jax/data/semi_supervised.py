"""Labelled + unlabelled image streams for semi-supervised training (UDA).

UDA (Xie et al. 2019, google-research/uda) trains on a labelled batch of
``B`` images and an unlabelled batch of ``r B`` images (``r`` the
``unsup_ratio``), the latter seen twice: as it is (the *original*, whose
predictions are the targets) and strongly augmented (RandAugment, then crop
and flip; the *augmented* view, which is trained to match). The unlabelled
pool is the whole training split, labelled images included, as in the
reference; its labels are dropped here, so nothing downstream can use them.

The combined stream is a grain ``MapDataset`` indexed by step: step ``s``'s
batch is a pure function of (seed, s), and its iterator state is saved in
every checkpoint like the supervised stream's. Each host reads its own
contiguous part of both global batches (:func:`hosts.host_slice`).
"""

from __future__ import annotations

import sys
from typing import Any, Dict

import grain
import jax
import numpy as np

from dropgraph_jax.data import hosts, images
from dropgraph_jax.data import randaugment as randaugment_lib

# Stream offsets of the unlabelled pool's shuffle, RandAugment and crop, so
# they never share a seed with the labelled stream's (seed, seed+1, ...).
UNLABELLED_SEED = 1000


def _views(record, rng: np.random.Generator, randaugment: Dict[str, Any],
           augment: str, image_size: int):
  """One unlabelled image -> its original and RandAugment-ed views; with
  ``image_size`` (variable-size sources) the original is centre-cropped and
  the augmented view cropped by ``augment`` first."""
  original = record
  if image_size:
    original = images.crop_record(record, image_size, "none", None)
    record = images.crop_record(record, image_size, augment, rng)
  augmented = randaugment_lib.augment_record(record, rng, **randaugment)
  return {"original": np.asarray(original["image"]),
          "augmented": augmented["image"]}


def _normalised(batch, split: images.Split, augment: str, pad: int,
                rng: np.random.Generator, rows: hosts.HostRows):
  """The batch's two views as the model's inputs: the original normalised,
  the augmented one also augmented by ``augment`` (crop and flip)."""
  labels = np.zeros(len(batch["original"]), np.int32)  # not read
  original = images.preprocess_batch({"image": batch["original"],
                                      "label": labels}, split, "none", pad,
                                     None)["image"]
  augmented = images.preprocess_batch({"image": batch["augmented"],
                                       "label": labels}, split, augment, pad,
                                      rng, rows)["image"]
  return {"unlabelled": original, "unlabelled_aug": augmented}


def unlabelled_dataset(split: images.Split, *, global_batch: int, seed: int,
                       augment: str, pad: int, randaugment: Dict[str, Any],
                       image_size: int = 0) -> grain.MapDataset:
  """Infinite stream of ``{'unlabelled', 'unlabelled_aug'}`` batches of
  this host's part of ``global_batch`` unlabelled images; the augmented
  view is RandAugment then ``augment`` (``'crop_flip'``, or
  ``'inception_crop_flip'`` with ``image_size``)."""
  count = jax.process_count()
  if global_batch % count:
    raise ValueError(f"unlabelled_dataset: global_batch {global_batch} is "
                     f"not divisible by the number of hosts {count}.")
  base = seed + UNLABELLED_SEED
  ds = grain.MapDataset.source(split.source).shuffle(seed=base).repeat(None)
  ds = ds.random_map(  # before the host's slice: seeded by global place
      lambda r, rng: _views(r, rng, randaugment, augment, image_size),
      seed=base + 1)
  ds = hosts.host_slice(ds, global_batch, jax.process_index(), count)
  ds = ds.batch(global_batch // count, drop_remainder=True)
  rows = hosts.this_host_rows(global_batch)
  return ds.random_map(
      lambda b, rng: _normalised(b, split, augment, pad, rng, rows),
      seed=base + 2)


def uda_dataset(labelled: images.Split, unlabelled: images.Split, *,
                global_batch: int, unsup_ratio: int, seed: int, augment: str,
                pad: int, randaugment: Dict[str, Any], image_size: int = 0
                ) -> grain.MapDataset:
  """Step ``s`` -> the labelled batch ``{'image', 'label'}`` (``augment``)
  and the unlabelled views of ``unsup_ratio * global_batch`` images."""
  sup = images.train_dataset(labelled, global_batch=global_batch, seed=seed,
                             augment=augment, pad=pad, image_size=image_size)
  unsup = unlabelled_dataset(
      unlabelled, global_batch=global_batch * unsup_ratio, seed=seed,
      augment="crop_flip" if augment == "none" else augment, pad=pad,
      randaugment=randaugment, image_size=image_size)
  return grain.MapDataset.range(sys.maxsize).map(
      lambda step: {**sup[step], **unsup[step]})
