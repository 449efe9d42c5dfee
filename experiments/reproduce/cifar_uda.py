"""AutoDropout Table 3 (UDA on CIFAR-10-4K), reduced to a 2-core CPU.

    unzip ../shared/datasets/cifar10-jpeg.zip -d /tmp/cifar10
    python -m experiments.reproduce.cifar_uda --dataset folder:/tmp/cifar10 \
        --steps 800 --seeds 0,1,2 --workdir runs/repro_uda \
        --out experiments/results/repro_cifar10_4k_uda_cpu.md

``configs/cifar10_4k_uda.py`` (4,000 labels drawn by ``data_seed``, UDA's
confidence 0.8 and temperature 0.4, UDA's RandAugment) made small enough
for a CPU: ``--model`` (default the quarter-width ResNet-18 of the
reduced Table 2, instead of WRN-28-2), ``--steps`` steps of ``--batch``
labelled and ``--ratio`` times as many unlabelled images from a pool of
``--unlabelled`` training images, lr 0.03 with a cosine decay and no
warm-up. Rows:

* ``supervised``: the same stream and steps with the consistency loss off
  (``uda_coefficient=0``), so the table shows what UDA adds at this size;
* ``uda``: UDA;
* ``uda_pattern``: UDA with a fixed ConvPattern (2x2 blocks, stride 2,
  2x2 repeats, rotated 15 degrees, prob 0.1: the GPU suite's AutoDropout
  row shrunk to fit the 4x4 maps of the last stage) at every batch-norm
  site of the last two stages, in the student pass. It is not a searched pattern: the
  CIFAR-10-4K search (3,600 / 400) is a cluster job.

Paper (Table 3, WRN-28-2, full UDA schedule): UDA 94.9 +- 0.12, UDA +
AutoDropout 95.8 +- 0.04.

The README's run: ``--steps 500 --rows uda,uda_pattern`` (6 runs, 64 min
on the 2-core VM). At that size the 0.8 confidence mask keeps under 1%
of the unlabelled images, so the consistency term barely acts; watch
``train/confident`` in ``log.txt`` before reading a UDA row.
"""

from __future__ import annotations

import argparse
import os
import re

from configs import cifar10_4k_uda
from dropgraph_jax.models import get_model, list_sites
from dropgraph_jax.patterns import ConvPattern, Policy
from experiments.reproduce import grid

PAPER = {"uda": "94.9", "uda_pattern": "95.8"}
PATTERN = ConvPattern(height=2, width=2, stride_h=2, stride_w=2, repeats_h=2,
                      repeats_w=2, rotate=15.0, prob=0.1)


def pattern_file(args) -> str:
  """The fixed pattern at the model's stage-3/4 batch-norm sites, as JSON."""
  model = get_model(args.model, **({"width": args.width} if args.width
                                   else {}))
  sites = [s for s in list_sites(model, (1, 32, 32, 3))
           if re.match(r"^stage[34]/block\d+/bn\d$", s)]
  path = os.path.join(args.workdir, "pattern.json")
  os.makedirs(args.workdir, exist_ok=True)
  Policy({s: PATTERN for s in sites}).save(path)
  return path


def make(row: str, args, policy_path: str):
  def config_for(seed: int):
    config = cifar10_4k_uda.get_config("policy" if row == "uda_pattern"
                                       else "none")
    config.update_from_flattened_dict({
        "dataset": args.dataset, "model": args.model, "seed": seed,
        "num_train_steps": args.steps, "batch_size": args.batch,
        "eval_batch_size": 500, "uda_unsup_ratio": args.ratio,
        "uda_unlabelled_examples": args.unlabelled, "warmup_epochs": 0.0,
        "lr_min": 0.0, "uda_coefficient": 0.0 if row == "supervised" else
        1.0, "eval_every_epochs": 0.0, "checkpoint_every_steps": 200,
        "log_every_steps": 50, "regularizer.policy_file": policy_path})
    if args.width:
      config.model_kwargs.width = args.width
    return config
  return config_for


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--dataset", default="folder:/tmp/cifar10")
  parser.add_argument("--model", default="resnet18_cifar")
  parser.add_argument("--width", type=int, default=16)
  parser.add_argument("--steps", type=int, default=800)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--ratio", type=int, default=3)
  parser.add_argument("--unlabelled", type=int, default=20000)
  parser.add_argument("--rows", default="supervised,uda,uda_pattern")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--out", required=True)
  args = parser.parse_args()
  path = pattern_file(args)
  rows = args.rows.split(",")
  results = grid.run_grid({r: make(r, args, path) for r in rows},
                          [int(s) for s in args.seeds.split(",")],
                          args.workdir, "test_accuracy")
  grid.table(f"CIFAR-10-4K UDA, {args.model} width {args.width}, "
             f"{args.steps} steps of {args.batch} + {args.ratio}x"
             f"{args.batch} images", results, "test_accuracy",
             "test accuracy %", PAPER,
             "Paper column: Table 3, WRN-28-2, full schedule.", args.out,
             extra={"train_eval_accuracy": "labelled train accuracy, eval "
                    "mode %"},
             pairs=[(a, b) for a, b in (("uda", "supervised"),
                                        ("uda_pattern", "uda"))
                    if a in rows and b in rows])


if __name__ == "__main__":
  main()
