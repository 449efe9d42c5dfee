"""Grad-CAM heatmaps of trained image classifiers (DropGraph Figure 6).

    python -m dropgraph_jax.analysis.gradcam --workdir RUN [RUN ...] \\
        --images 0,1,2,3 --out gradcam.png

For each run (a workdir of the image trainer: its ``config.json`` and
latest checkpoint) and each chosen test image, Grad-CAM (Selvaraju et al.
2017): the gradient of the predicted class's logit with respect to the
last convolutional feature map ``A`` (the output of the network's last
block, "the gradients flowed through the last convolutional layer", as the
paper's appendix E.1), averaged over space to one weight per channel,
``cam = relu(sum_k w_k A_k)``, scaled to [0, 1] and resized to the image.
One PNG: a row per image, the image then each run's heatmap over it.

The last feature map is read with Flax's ``capture_intermediates`` (the
output of the last ``stageS/blockB`` module) and the classifier head is
applied to its global average, so the models this supports are those
whose logits are ``head(mean(A))``: the ResNet, Wide ResNet and RegNetX
families. :func:`gradcam` is the function; the CLI wraps it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
from typing import List, Sequence

import jax
import jax.numpy as jnp
import matplotlib
import ml_collections
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dropgraph_jax.data import images as image_data  # noqa: E402
from dropgraph_jax.models import get_model  # noqa: E402
from dropgraph_jax.training import checkpointing  # noqa: E402
from dropgraph_jax.training.classifier import build_policy  # noqa: E402

BLOCK = re.compile(r"^(stage|layer)\d+/block\d+$|^block\d+$")


def _last_block(intermediates) -> str:
  names = [n for n in intermediates if BLOCK.match(n)]
  if not names:
    raise ValueError("gradcam: the model has no stageS/blockB module to "
                     "read the last feature map from.")
  return max(names, key=lambda n: [int(d) for d in re.findall(r"\d+", n)])


def gradcam(model, variables, images: jax.Array) -> np.ndarray:
  """``(N, H, W)`` heatmaps in [0, 1] for the predicted classes."""
  return np.asarray(_heatmaps(model, variables, images))


def heatmap_fn(model):
  """``fn(variables, images)``: :func:`gradcam` for ``model`` as one
  jitted function (for whole datasets)."""
  return jax.jit(functools.partial(_heatmaps, model))


def _heatmaps(model, variables, images: jax.Array) -> jax.Array:
  logits, state = model.apply(variables, images, train=False,
                              capture_intermediates=True,
                              mutable=["intermediates"])
  inter = state["intermediates"]
  features = inter[_last_block(inter)]["__call__"][0]
  head = variables["params"]["head"]
  predicted = jnp.argmax(logits, -1)

  def score(a):  # the network's tail: global average pool, then the head
    out = jnp.mean(a, axis=(1, 2)) @ head["kernel"] + head["bias"]
    return jnp.sum(jnp.take_along_axis(out, predicted[:, None], 1))

  grads = jax.grad(score)(features.astype(jnp.float32))
  weights = jnp.mean(grads, axis=(1, 2), keepdims=True)
  cam = jax.nn.relu(jnp.sum(weights * features, axis=-1))
  cam = jax.image.resize(cam, images.shape[:3], "bilinear")
  low = cam.min(axis=(1, 2), keepdims=True)
  high = cam.max(axis=(1, 2), keepdims=True)
  return (cam - low) / jnp.maximum(high - low, 1e-12)


def load_run(workdir: str):
  """``(config, model, variables)`` of a finished image run."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise ValueError(f"gradcam: {path} does not exist (runs write it since "
                     "0.2; pass the workdir of an image trainer's run).")
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  ckpt_dir = os.path.join(workdir, "checkpoints")
  steps = sorted(int(s) for s in os.listdir(ckpt_dir) if s.isdigit())
  if not steps:
    raise ValueError(f"gradcam: no checkpoint in {ckpt_dir}.")
  state = checkpointing.read_arrays(os.path.join(ckpt_dir, str(steps[-1])))
  split = image_data.load_split(config.dataset, config.eval_split,
                                config.data_dir, config.seed,
                                config.get("image_size", 0))
  shape = (1,) + tuple(split.image_shape)
  policy = build_policy(config, config.model, shape)
  model = get_model(config.model, policy=policy, **{
      "num_classes": split.num_classes, **config.model_kwargs})
  variables = {"params": state["params"],
               "batch_stats": state.get("batch_stats", {})}
  return config, split, model, variables


def _test_images(split, indices: Sequence[int]) -> np.ndarray:
  if max(indices) >= split.num_examples:
    raise ValueError(f"--images: index {max(indices)} is past the "
                     f"{split.num_examples} test images.")
  records = [split.source[i] for i in indices]
  batch = {"image": np.stack([np.asarray(r["image"]) for r in records]),
           "label": np.stack([r["label"] for r in records])}
  return image_data.preprocess_batch(batch, split, "none", 0, None)["image"]


def _display(image: np.ndarray, split) -> np.ndarray:
  raw = np.clip(image * np.asarray(split.std) + np.asarray(split.mean), 0, 1)
  return raw[..., 0] if raw.shape[-1] == 1 else raw


def render(workdirs: Sequence[str], indices: Sequence[int], out: str,
           labels: Sequence[str] = ()) -> str:
  runs = [load_run(w) for w in workdirs]
  split = runs[0][1]
  images = jnp.asarray(_test_images(split, indices))
  maps = [gradcam(model, variables, images) for _, _, model, variables
          in runs]
  names = list(labels) or [c.regularizer.name for c, _, _, _ in runs]
  fig, axes = plt.subplots(len(indices), 1 + len(runs), squeeze=False,
                           figsize=(1.8 * (1 + len(runs)),
                                    1.9 * len(indices)))
  for r in range(len(indices)):
    shown = _display(np.asarray(images[r]), split)
    axes[r][0].imshow(shown, cmap="gray", interpolation="nearest")
    for c, heat in enumerate(maps):
      axes[r][c + 1].imshow(shown, cmap="gray", interpolation="nearest")
      axes[r][c + 1].imshow(heat[r], cmap="jet", alpha=0.5,
                            interpolation="bilinear")
    for ax in axes[r]:
      ax.set_xticks([])
      ax.set_yticks([])
  for c, name in enumerate(["image"] + names):
    axes[0][c].set_title(name, fontsize=8)
  fig.savefig(out, dpi=110, bbox_inches="tight")
  plt.close(fig)
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", nargs="+", required=True)
  parser.add_argument("--images", default="0,1,2,3",
                      help="indices into the test split")
  parser.add_argument("--labels", default="",
                      help="comma-separated column titles (default: each "
                      "run's regularizer)")
  parser.add_argument("--out", required=True)
  args = parser.parse_args(argv)
  try:
    indices: List[int] = [int(i) for i in args.images.split(",")]
    if min(indices) < 0:
      raise ValueError(f"--images must be indices >= 0, got {args.images}.")
    labels = [s for s in args.labels.split(",") if s]
    print(render(args.workdir, indices, args.out, labels))
  except (ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
