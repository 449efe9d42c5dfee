"""DropGraph Table 2 (CIFAR-10, ResNet), reduced: the regularizers x seeds.

    unzip ../shared/datasets/cifar10-jpeg.zip -d /tmp/cifar10
    python -m experiments.reproduce.cifar_regularizers \
        --dataset folder:/tmp/cifar10 --model resnet18_cifar --width 16 \
        --train-examples 4000 --augment none --epochs 25 --seeds 0,1,2 \
        --workdir runs/repro_overfit \
        --out experiments/results/repro_cifar_overfit_resnet18w16_cpu.md

The configs are ``configs/cifar_resnet50.py`` (appendix B.1 settings: SGD
0.9, weight decay 5e-4, batch 128; the regularizers in every block of the
last two groups at DropBlock's and Disout's reference sites, rho 0.1,
alpha 0.2, block 3; the references' schedule, a linear ramp over the whole
run with a quarter of the rate in group 3; Disout with its reference's
CIFAR settings) with a shorter run: ``--epochs`` epochs, lr 0.1 divided by
10 at 50% and 75% of them. ``--ramp early`` gives this project's earlier
schedule (ramp over the first 30%, no group scaling).

The command above is the reduced protocol where the unregularized model
overfits: a class-balanced 4,000-image subset of the training split (drawn
once, the same for every seed), no augmentation, 25 epochs. Its training
accuracy (eval mode, on 2,000 of the training images) is far above its test
accuracy, so there is something for a regularizer to win back; every row
reports both. ``dropgraph_rescale`` is DropGraph with ``rescale=True``.
Hypothesis from the paper: DropGraph > Disout > DropBlock >
SpatialDropout > Dropout > none (ResNet-50, 300 epochs).
"""

from __future__ import annotations

import argparse

from configs import cifar_resnet50
from experiments.reproduce import grid

PAPER = {"none": "93.67", "dropout": "94.81", "spatial_dropout": "94.92",
         "drop_block": "95.14", "disout": "95.25", "dropgraph": "95.35",
         "dropgraph_rescale": ""}


def make(variant: str, args):
  regularizer = variant.split("_rescale")[0]

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
    if args.ramp == "early":
      config.regularizer.ramp_epochs = 0.3 * args.epochs
      config.regularizer.stage_rate_scales = ()
    config.batch_size = args.batch
    config.augment = args.augment
    config.eval_every_epochs = 0.0
    config.checkpoint_every_steps = 1000
    config.log_every_steps = 50
    config.train_examples = args.train_examples
    if variant.endswith("_rescale"):
      config.regularizer.options.rescale = True
    return config
  return config_for


def add_protocol_args(parser: argparse.ArgumentParser) -> None:
  """The options shared with the ablation script."""
  parser.add_argument("--dataset", default="cifar10")
  parser.add_argument("--model", default="resnet18_cifar")
  parser.add_argument("--width", type=int, default=0,
                      help="the ResNet's first-stage width (0: the model's "
                      "own, 64 for resnet18_cifar); 16 is a quarter-width "
                      "ResNet-18, about 1/16 of the compute, for CPU runs")
  parser.add_argument("--epochs", type=float, default=15)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--train-examples", type=int, default=0,
                      help="> 0: a class-balanced subset of the training "
                      "split, the same for every seed")
  parser.add_argument("--augment", default="crop_flip",
                      choices=("crop_flip", "none"))
  parser.add_argument("--ramp", default="reference",
                      choices=("reference", "early"))
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--out", default="")


def title(args, what: str) -> str:
  width = f" width {args.width}" if args.width else ""
  data = (f", {args.train_examples} training images"
          if args.train_examples else "")
  return (f"{what}, {args.model}{width}, {args.epochs:g} epochs{data}, "
          f"augment {args.augment}, ramp {args.ramp}")


TRAIN_COLUMN = {"train_eval_accuracy": "train accuracy, eval mode %"}


def main():
  parser = argparse.ArgumentParser()
  add_protocol_args(parser)
  parser.add_argument("--regularizers", default=",".join(PAPER))
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  names = args.regularizers.split(",")
  variants = {r: make(r, args) for r in names}
  results = grid.run_grid(variants, seeds, args.workdir, "test_accuracy")
  pairs = [(r, "none") for r in names if r != "none"] + [
      ("dropgraph", "disout"), ("dropgraph", "drop_block"),
      ("dropgraph_rescale", "dropgraph")]
  grid.table(title(args, "CIFAR regularizers"), results, "test_accuracy",
             "test accuracy %", PAPER,
             "Paper column: DropGraph Table 2, ResNet-50, 300 epochs.",
             args.out, extra=TRAIN_COLUMN, pairs=pairs)


if __name__ == "__main__":
  main()
