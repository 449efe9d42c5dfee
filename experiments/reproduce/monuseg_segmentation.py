"""DropGraph Table 3 (MoNuSeg), reduced: U-Net and Attention U-Net x
{none, DropBlock, Disout, DropGraph} x seeds.

    unzip ../shared/datasets/monuseg2018.zip -d /tmp/monuseg
    python -m experiments.reproduce.monuseg_segmentation \\
        --data /tmp/monuseg/MoNuSeg --image-size 128 --width 16 \\
        --epochs 20 --seeds 0,1,2 --workdir runs/repro_monuseg \\
        --out experiments/results/repro_monuseg_unet_cpu.md

The configs are ``configs/monuseg_unet.py`` and
``configs/monuseg_attention_unet.py`` (the paper's recipe: Adam 0.01 with
its per-step decay, batch 2, the four corner patches of each image, the
regularizer after both activations of the deepest encoder level, alpha
0.1, rho 0.1, block 7) made smaller for a CPU: every 512 x 512 patch
resized to ``--image-size``, ``--width`` features at the first level
instead of 64, ``--epochs`` epochs instead of 300, and the block size
scaled with the patch (7 at 512, at least 3). ``--augment none`` drops
the flips and rotations (a regime where the U-Net can overfit its 120
training patches). The table reports the
foreground IoU and Dice on the 56 test patches (the paper's "mIoU" and
"DICE", see ``dropgraph_jax/training/segmentation_metrics.py``), the
training patches' IoU in eval mode beside it, Welch's t-test of every
row against its model's ``none``, a bar plot, and a PNG of example test
predictions (image, ground truth, each row's prediction, seed 0).
"""

from __future__ import annotations

import argparse
import os
from typing import Dict, List

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

import dropgraph_jax as dg
from configs import monuseg_attention_unet, monuseg_unet
from dropgraph_jax.data import segmentation as seg_data
from dropgraph_jax.models import get_model
from dropgraph_jax.training import checkpointing
from experiments.reproduce import grid

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CONFIGS = {"unet": monuseg_unet, "attention_unet": monuseg_attention_unet}
PAPER = {  # Table 3, mIoU / Dice %
    "unet none": "68.2 / 80.7", "unet drop_block": "67.6 / 80.2",
    "unet disout": "68.1 / 80.0", "unet dropgraph": "68.5 / 81.4",
    "attention_unet none": "68.3 / 81.1",
    "attention_unet drop_block": "68.0 / 81.0",
    "attention_unet disout": "68.3 / 81.2",
    "attention_unet dropgraph": "68.7 / 81.5"}


def make(model: str, regularizer: str, args):
  def config_for(seed: int):
    config = CONFIGS[model].get_config(regularizer)
    config.unlock()
    config.data_dir = args.data
    config.patch_size = args.patch
    config.image_size = args.image_size
    config.model_kwargs.width = args.width
    config.num_epochs = float(args.epochs)
    config.seed = seed
    config.regularizer.block_size = max(3, round(7 * args.image_size / 512))
    config.log_every_steps = 30
    config.checkpoint_every_steps = 600
    config.batch_size = args.batch
    config.eval_batch_size = 8
    config.augment = args.augment
    return config
  return config_for


def predictions_png(workdirs: Dict[str, str], args, out: str,
                    count: int = 2) -> str:
  """Image, ground truth and each run's prediction for ``count`` test
  patches, one row each."""
  config = make("unet", "none", args)(0)
  split = seg_data.load_split(config, "test")
  batch = next(seg_data.eval_batches(split, count))
  columns = {"image": batch["image"], "truth": batch["mask"]}
  for name, workdir in workdirs.items():
    model_name, regularizer = name.split(" ")
    run = make(model_name, regularizer, args)(0)
    steps = sorted(int(s) for s in os.listdir(
        os.path.join(workdir, "checkpoints")) if s.isdigit())
    state = checkpointing.read_arrays(os.path.join(workdir, "checkpoints",
                                                   str(steps[-1])))
    model = get_model(run.model, num_classes=split.num_classes,
                      **run.model_kwargs)  # no policy: inference
    logits = model.apply({"params": dg.strip_graph_params(state["params"]),
                          "batch_stats": state["batch_stats"]},
                         jnp.asarray(batch["image"]), train=False)
    columns[name] = np.asarray(jnp.argmax(logits, -1))
  fig, axes = plt.subplots(count, len(columns), squeeze=False,
                           figsize=(1.6 * len(columns), 1.7 * count))
  for c, (name, images) in enumerate(columns.items()):
    for r in range(count):
      axes[r][c].imshow(images[r], cmap=None if name == "image" else "gray",
                        interpolation="nearest")
      axes[r][c].set_xticks([])
      axes[r][c].set_yticks([])
    axes[0][c].set_title(name.replace("attention_unet", "att-unet"),
                         fontsize=6)
  fig.savefig(out, dpi=120, bbox_inches="tight")
  plt.close(fig)
  return out


def main(argv=None):
  parser = argparse.ArgumentParser()
  parser.add_argument("--data", required=True)
  parser.add_argument("--models", default="unet,attention_unet")
  parser.add_argument("--regularizers",
                      default="none,drop_block,disout,dropgraph")
  parser.add_argument("--patch", type=int, default=512,
                      help="the corner patches' size (the paper's 512)")
  parser.add_argument("--image-size", type=int, default=128)
  parser.add_argument("--width", type=int, default=16)
  parser.add_argument("--epochs", type=float, default=20)
  parser.add_argument("--batch", type=int, default=2,
                      help="the paper's 2; a multiple of the device count")
  parser.add_argument("--augment", default="flip_rot90",
                      choices=("flip_rot90", "none"),
                      help="the training patches' augmentation (the "
                      "paper's recipe: flips and right-angle rotations)")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--out", default="")
  args = parser.parse_args(argv)
  seeds = [int(s) for s in args.seeds.split(",")]
  models = args.models.split(",")
  regs = args.regularizers.split(",")
  variants = {f"{m} {r}": make(m, r, args) for m in models for r in regs}
  results = grid.run_grid(variants, seeds, args.workdir, "test_iou_fg")
  pairs: List[tuple] = [(f"{m} {r}", f"{m} none") for m in models
                        for r in regs if r != "none"]
  title = (f"MoNuSeg (Table 3) reduced: {args.image_size}px patches, width "
           f"{args.width}, {args.epochs:g} epochs" +
           (", no augmentation" if args.augment == "none" else ""))
  grid.table(title, results, "test_iou_fg", "test foreground IoU %", PAPER,
             "Paper column: Table 3, mIoU / Dice %, 512px, width 64.",
             args.out, extra={"test_dice_fg": "test Dice %",
                              "train_eval_iou_fg": "train IoU, eval mode %"},
             pairs=pairs)
  if args.out:
    workdirs = {name: os.path.join(args.workdir, name.replace(" ", "_"),
                                   f"seed{seeds[0]}") for name in variants}
    print(predictions_png(workdirs, args,
                          os.path.splitext(args.out)[0] + "_examples.png"))
  jax.clear_caches()


if __name__ == "__main__":
  main()
