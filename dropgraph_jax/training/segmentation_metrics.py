"""Segmentation metrics from a confusion matrix (DropGraph Table 3).

One ``(C, C)`` confusion matrix (rows: true class, columns: predicted) is
accumulated over the whole evaluation set, pixels labelled
``ignore_label`` (255, VOC's object borders) left out; every metric is
then read from it:

1. IoU of class c = TP_c / (TP_c + FP_c + FN_c); ``miou`` is its mean over
   the classes that occur (in the labels or the predictions).
2. Accuracy of class c = TP_c / (TP_c + FN_c); ``macc`` is its mean over
   the classes present in the labels ("pixel accuracy averaged across the
   21 classes" on VOC).
3. Dice of class c = 2 TP_c / (2 TP_c + FP_c + FN_c).

The paper does not define MoNuSeg's "mIoU" and "DICE"; its numbers fit
the foreground (nucleus) class's IoU and Dice (Dice = 2 IoU / (1 + IoU):
2 * 0.682 / 1.682 = 0.811 against the reported 0.807), which is what
:func:`scores` reports as ``iou_fg`` and ``dice_fg`` for binary tasks, the
dataset-level values (not a mean over images).
"""

from __future__ import annotations

from typing import Dict

import jax
import jax.numpy as jnp
import numpy as np

IGNORE_LABEL = 255


def confusion_matrix(labels: jax.Array, predictions: jax.Array,
                     num_classes: int, ignore_label: int = IGNORE_LABEL,
                     mask=None) -> jax.Array:
  """``(C, C)`` int32 counts; ``mask`` (per example) drops padded ones."""
  labels = labels.astype(jnp.int32)
  valid = labels != ignore_label
  if mask is not None:
    valid &= mask.reshape(mask.shape + (1,) * (labels.ndim - 1))
  index = jnp.where(valid, labels * num_classes + predictions, 0)
  counts = jnp.bincount(index.reshape(-1),
                        weights=valid.reshape(-1).astype(jnp.int32),
                        length=num_classes * num_classes)
  return counts.reshape(num_classes, num_classes).astype(jnp.int32)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
  return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def scores(cm) -> Dict[str, float]:
  """``miou``, ``macc`` and ``pixel_accuracy``; for two classes also
  ``iou_fg`` and ``dice_fg`` (class 1)."""
  cm = np.asarray(cm, np.float64)
  tp = np.diag(cm)
  fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
  iou = _ratio(tp, tp + fp + fn)
  acc = _ratio(tp, tp + fn)
  out = {"miou": float(np.nanmean(iou)), "macc": float(np.nanmean(acc)),
         "pixel_accuracy": float(tp.sum() / max(cm.sum(), 1))}
  if cm.shape[0] == 2:
    out["iou_fg"] = float(np.nan_to_num(iou[1]))
    out["dice_fg"] = float(np.nan_to_num(_ratio(2 * tp[1:],
                                                2 * tp[1:] + fp[1:] +
                                                fn[1:])[0]))
  return out
