"""DropGraph Table 2 (CIFAR-10, ResNet), reduced: six regularizers x seeds.

    unzip ../shared/datasets/cifar10-jpeg.zip -d /tmp/cifar10
    python -m experiments.reproduce.cifar_regularizers \
        --dataset folder:/tmp/cifar10 --model resnet18_cifar --epochs 15 \
        --seeds 0,1,2 --workdir runs/repro_cifar \
        --out experiments/results/repro_cifar_regularizers.md

The configs are ``configs/cifar_resnet50.py`` (appendix B.1 settings:
SGD 0.9, weight decay 5e-4, batch 128, crop + flip; the regularizer at every
activation and shortcut of the last two groups, rho 0.1, alpha 0.2,
block 3) with a shorter schedule: ``--epochs`` epochs, lr 0.1 divided by
10 at 50% and 75% of them, the rate ramped over the first 30%.
Hypothesis from the paper: DropGraph > Disout > DropBlock >
SpatialDropout > Dropout > none (ResNet-50, 300 epochs).
"""

from __future__ import annotations

import argparse

from configs import cifar_resnet50
from experiments.reproduce import grid

PAPER = {"none": "93.67", "dropout": "94.81", "spatial_dropout": "94.92",
         "drop_block": "95.14", "disout": "95.25", "dropgraph": "95.35"}


def make(regularizer: str, args):
  def config_for(seed: int):
    config = cifar_resnet50.get_config(regularizer)
    config.unlock()
    config.model = args.model
    if args.width:
      config.model_kwargs.width = args.width
    config.dataset = args.dataset
    config.seed = seed
    config.num_epochs = float(args.epochs)
    config.lr_boundaries_epochs = (0.5 * args.epochs, 0.75 * args.epochs)
    config.regularizer.ramp_epochs = 0.3 * args.epochs
    config.batch_size = args.batch
    config.eval_every_epochs = 0.0
    config.checkpoint_every_steps = 1000
    config.log_every_steps = 50
    if args.train_examples:
      config.train_split = f"train[:{args.train_examples}]"
    return config
  return config_for


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--dataset", default="cifar10")
  parser.add_argument("--model", default="resnet18_cifar")
  parser.add_argument("--width", type=int, default=0,
                      help="the ResNet's first-stage width (0: the model's "
                      "own, 64 for resnet18_cifar); 16 is a quarter-width "
                      "ResNet-18, about 1/16 of the compute, for CPU runs")
  parser.add_argument("--epochs", type=float, default=15)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--regularizers", default=",".join(PAPER))
  parser.add_argument("--train-examples", type=int, default=0)
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  variants = {r: make(r, args) for r in args.regularizers.split(",")}
  results = grid.run_grid(variants, seeds, args.workdir, "test_accuracy")
  width = f" width {args.width}" if args.width else ""
  grid.table(f"CIFAR regularizers, {args.model}{width}, {args.epochs:g} "
             "epochs",
             results, "test_accuracy", "test accuracy %",
             PAPER, "Paper column: DropGraph Table 2, ResNet-50, 300 epochs.",
             args.out)


if __name__ == "__main__":
  main()
