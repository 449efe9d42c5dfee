"""Point clouds: ModelNet40 in PointNet's HDF5 release, synthetic shapes.

ModelNet40 (Wu et al. 2015) as PointNet and DGCNN read it:
``ROOT/modelnet40_ply_hdf5_2048/ply_data_{train0..4,test0..1}.h5``, each with
``data`` (B, 2048, 3) float32 points sampled on the mesh surface and
``label`` (B, 1) uint8 class ids (and ``normal``, ``faceId``, unused), listed
by ``{train,test}_files.txt`` (lines ``data/modelnet40_ply_hdf5_2048/...``,
read by base name; without them, the sorted ``ply_data_{split}*.h5``).
9,843 train / 2,468 test clouds of 40 classes. ``root`` may be the folder
itself or its parent. :func:`load_modelnet40_h5` keeps the first 1,024
points (DGCNN's ``pointcloud[:num_points]``) and re-fits each cloud into the
unit sphere (:func:`normalize`, PointNet++'s ``pc_normalize``: centre at the
mean, divide by the largest norm). The release is already normalised over
its 2,048 points, and DGCNN's loader does no more, so this changes the
kept points by a few percent at most.

:func:`synthetic_shapes` makes a small offline stand-in: points uniform on
the surface of a sphere, cube, cylinder, cone or torus (area-weighted:
faces, caps and slopes by their share of the area; the torus by rejection
on the tube angle), scaled per axis by U(0.8, 1.25), rotated uniformly
(scipy's ``Rotation.random``), with N(0, 0.01) noise, then normalised as
ModelNet. :func:`write_modelnet40_h5` writes them in the release's layout
(PointNet's ``save_h5``: gzip, float32 ``data``, uint8 ``label``).

:func:`augment_point_cloud` is DGCNN's training augmentation
(``translate_pointcloud`` then ``np.random.shuffle``): per cloud, a scale
U(2/3, 3/2) per axis and a shift U(-0.2, 0.2) per axis, then the points in a
random order, drawn from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import glob
import os
from typing import List, Sequence, Tuple

import h5py
import numpy as np
from scipy.spatial.transform import Rotation

FOLDER = "modelnet40_ply_hdf5_2048"
SHAPES = ("sphere", "cube", "cylinder", "cone", "torus")


def normalize(points: np.ndarray) -> np.ndarray:
  """Each ``(..., P, 3)`` cloud centred at its mean, largest norm 1."""
  centred = points - points.mean(-2, keepdims=True)
  radius = np.linalg.norm(centred, axis=-1).max(-1)[..., None, None]
  return (centred / np.where(radius > 0, radius, 1)).astype(np.float32)


def _h5_files(root: str, split: str) -> List[str]:
  folder = os.path.join(root, FOLDER)
  folder = folder if os.path.isdir(folder) else root
  listing = os.path.join(folder, f"{split}_files.txt")
  if os.path.isfile(listing):
    with open(listing) as f:
      names = [os.path.basename(line.strip()) for line in f if line.strip()]
  else:
    names = sorted(os.path.basename(p) for p in glob.glob(
        os.path.join(folder, f"ply_data_{split}*.h5")))
  if not names:
    raise ValueError(f"load_modelnet40_h5: no {split} files in {folder!r}: "
                     f"expected {FOLDER}/ply_data_{split}*.h5 (unzip "
                     f"{FOLDER}.zip in root).")
  return [os.path.join(folder, name) for name in names]


def _read_h5(path: str) -> Tuple[np.ndarray, np.ndarray]:
  try:
    with h5py.File(path, "r") as f:
      data, label = np.asarray(f["data"]), np.asarray(f["label"])
  except (OSError, KeyError, ValueError, TypeError) as e:
    raise ValueError(f"load_modelnet40_h5: cannot read {path!r} "
                     f"({type(e).__name__}: {e}); it is missing, truncated or"
                     " not a ModelNet40 HDF5 file ('data', 'label').") from None
  if data.ndim != 3 or data.shape[2] != 3 or label.size != len(data):
    raise ValueError(f"load_modelnet40_h5: {path!r} holds data {data.shape} "
                     f"and label {label.shape}; expected (B, P, 3) and (B, 1).")
  return data, label.reshape(-1)


def load_modelnet40_h5(root: str, split: str, num_points: int = 1024
                       ) -> Tuple[np.ndarray, np.ndarray]:
  """``(points float32 (M, num_points, 3), labels int32 (M,))`` of a split."""
  if split not in ("train", "test"):
    raise ValueError(f"load_modelnet40_h5: split must be 'train' or 'test', "
                     f"got {split!r}.")
  parts = [_read_h5(path) for path in _h5_files(root, split)]
  points = np.concatenate([p for p, _ in parts])
  if not 0 < num_points <= points.shape[1]:
    raise ValueError(f"load_modelnet40_h5: num_points must be in [1, "
                     f"{points.shape[1]}] (the points per cloud), got "
                     f"{num_points}.")
  labels = np.concatenate([label for _, label in parts]).astype(np.int32)
  return normalize(points[:, :num_points]), labels


def _disk(rng: np.random.Generator, n: int) -> np.ndarray:
  """``(n, 2)`` points uniform in the unit disk."""
  radius, angle = np.sqrt(rng.random(n)), rng.uniform(0, 2 * np.pi, n)
  return np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)


def _cube(rng: np.random.Generator, n: int) -> np.ndarray:
  points = rng.uniform(-1, 1, (n, 3))  # six faces of equal area
  points[np.arange(n), rng.integers(0, 3, n)] = rng.choice([-1.0, 1.0], n)
  return points


def _cylinder(rng: np.random.Generator, n: int) -> np.ndarray:
  """Radius 1, z in [-1, 1]: the side holds 4pi of the 6pi area."""
  angle = rng.uniform(0, 2 * np.pi, n)
  side = np.stack([np.cos(angle), np.sin(angle), rng.uniform(-1, 1, n)], 1)
  cap = np.concatenate([_disk(rng, n), rng.choice([-1.0, 1.0], (n, 1))], 1)
  return np.where((rng.random(n) < 2 / 3)[:, None], side, cap)


def _cone(rng: np.random.Generator, n: int) -> np.ndarray:
  """Apex (0, 0, 1), base radius 1 at z = -1: side pi*sqrt(5), base pi."""
  t = np.sqrt(rng.random(n))  # distance from the apex, density ~ t
  angle = rng.uniform(0, 2 * np.pi, n)
  side = np.stack([t * np.cos(angle), t * np.sin(angle), 1 - 2 * t], 1)
  base = np.concatenate([_disk(rng, n), -np.ones((n, 1))], 1)
  share = np.sqrt(5) / (np.sqrt(5) + 1)
  return np.where((rng.random(n) < share)[:, None], side, base)


def _torus(rng: np.random.Generator, n: int, ring: float = 1.0,
           tube: float = 0.4) -> np.ndarray:
  """Tube angle by rejection: the area element is ~ ring + tube cos(a)."""
  tube_angle = np.empty(0)
  while len(tube_angle) < n:
    a = rng.uniform(0, 2 * np.pi, 2 * n)
    keep = rng.random(2 * n) < (ring + tube * np.cos(a)) / (ring + tube)
    tube_angle = np.concatenate([tube_angle, a[keep]])
  a, b = tube_angle[:n], rng.uniform(0, 2 * np.pi, n)
  distance = ring + tube * np.cos(a)
  return np.stack([distance * np.cos(b), distance * np.sin(b),
                   tube * np.sin(a)], 1)


def _sphere(rng: np.random.Generator, n: int) -> np.ndarray:
  points = rng.normal(size=(n, 3))
  return points / np.linalg.norm(points, axis=1, keepdims=True)


_SURFACES = {"sphere": _sphere, "cube": _cube, "cylinder": _cylinder,
             "cone": _cone, "torus": _torus}


def synthetic_shapes(num_per_class: int, num_points: int = 1024,
                     seed: int = 0, classes: Sequence[str] = SHAPES
                     ) -> Tuple[np.ndarray, np.ndarray]:
  """``(points float32 (C * num_per_class, num_points, 3), labels int32)``,
  class by class (label = position in ``classes``); the same per seed."""
  unknown = [c for c in classes if c not in _SURFACES]
  if unknown or not classes or num_per_class < 1 or num_points < 1:
    raise ValueError(f"synthetic_shapes: classes must be some of {SHAPES} "
                     f"(unknown: {unknown}), num_per_class and num_points >= "
                     f"1; got {num_per_class}, {num_points}.")
  rng = np.random.default_rng(seed)
  clouds = []
  for name in classes:
    for _ in range(num_per_class):
      points = _SURFACES[name](rng, num_points) * rng.uniform(0.8, 1.25, 3)
      points = points @ Rotation.random(rng=rng).as_matrix().T
      clouds.append(points + rng.normal(0, 0.01, points.shape))
  labels = np.repeat(np.arange(len(classes), dtype=np.int32), num_per_class)
  return normalize(np.stack(clouds)), labels


def write_modelnet40_h5(root: str, points: np.ndarray, labels: np.ndarray,
                        split: str, per_file: int = 2048) -> List[str]:
  """Writes ``root/modelnet40_ply_hdf5_2048/ply_data_{split}{i}.h5`` (at
  most ``per_file`` clouds each) and ``{split}_files.txt``; returns paths."""
  points, labels = np.asarray(points, np.float32), np.asarray(labels)
  if points.ndim != 3 or points.shape[2] != 3 or not len(points) or \
     len(labels) != len(points) or labels.min() < 0 or labels.max() > 255 \
     or per_file < 1:
    raise ValueError(f"write_modelnet40_h5: need points (B, P, 3), B labels "
                     f"in [0, 255] and per_file >= 1; got {points.shape}, "
                     f"{labels.shape}, {per_file}.")
  folder = os.path.join(root, FOLDER)
  os.makedirs(folder, exist_ok=True)
  paths = []
  for i, start in enumerate(range(0, len(points), per_file)):
    paths.append(os.path.join(folder, f"ply_data_{split}{i}.h5"))
    with h5py.File(paths[-1], "w") as f:
      f.create_dataset("data", data=points[start:start + per_file],
                       compression="gzip", compression_opts=4)
      f.create_dataset("label", data=labels[start:start + per_file, None],
                       dtype=np.uint8, compression="gzip", compression_opts=1)
  with open(os.path.join(folder, f"{split}_files.txt"), "w") as f:
    f.writelines(f"data/{FOLDER}/{os.path.basename(p)}\n" for p in paths)
  return paths


def augment_point_cloud(points: np.ndarray, rng: np.random.Generator
                        ) -> np.ndarray:
  """DGCNN's scale, shift and shuffle of a ``(P, 3)`` or ``(B, P, 3)`` cloud."""
  points = np.asarray(points, np.float32)
  if points.ndim not in (2, 3) or points.shape[-1] != 3 or \
     not isinstance(rng, np.random.Generator):
    raise ValueError(f"augment_point_cloud: need points (P, 3) or (B, P, 3) "
                     f"and rng = np.random.default_rng(seed); got "
                     f"{points.shape}, {type(rng).__name__}.")
  batch = points.reshape((-1,) + points.shape[-2:])
  scale = rng.uniform(2 / 3, 3 / 2, (len(batch), 1, 3))
  shift = rng.uniform(-0.2, 0.2, (len(batch), 1, 3))
  order = rng.permuted(np.tile(np.arange(batch.shape[1]), (len(batch), 1)),
                       axis=1)
  moved = np.take_along_axis(batch * scale + shift, order[..., None], axis=1)
  return moved.reshape(points.shape).astype(np.float32)
