"""CIFAR ResNet-50 (3x3 stem), DropGraph appendix B.1 settings (Table 2).

SGD momentum 0.9, weight decay 5e-4, batch 128, lr 0.1 divided by 10 at
epochs 150 and 250, 300 epochs, random crop (4-pixel padding) and flip;
regularizers in every block of the last two groups, rho 0.1, alpha 0.2,
block 3. Inside a block, where DropBlock's and Disout's references put them
(``relu1, relu2, bn3`` and the shortcut), with their schedule: the rate
ramped linearly over the whole run, a quarter of it in group 3. Disout with
its reference's CIFAR settings (rate 0.09, block 6, alpha 5, the noise
scaled by the next convolution's weights). ``configs.default.
use_reference_schedule`` says how to get the previous setting back.

Pass the regularizer after a colon; CIFAR-100 with --config.dataset:

    python -m dropgraph_jax.main --config configs/cifar_resnet50.py:dropgraph \
        --workdir runs/c10_dropgraph [--config.dataset=cifar100] \
        [--config.data_dir=DIR]

Paper (Table 2, CIFAR-10 / CIFAR-100 top-1 %): none 93.67 / 77.73, dropout
94.81 / 77.96, spatial dropout 94.92 / 78.27, DropBlock 95.14 / 78.71,
Disout 95.25 / 78.91, DropGraph 95.35 / 79.58.
"""

from configs import default

REGULARIZERS = ("none", "dropout", "spatial_dropout", "drop_block", "disout",
                "dropgraph")


def get_config(regularizer: str = "dropgraph"):
  if regularizer not in REGULARIZERS:
    raise ValueError(f"cifar_resnet50: regularizer must be one of "
                     f"{list(REGULARIZERS)}, got {regularizer!r}.")
  config = default.get_config()
  config.model = "resnet50_cifar"
  config.dataset = "cifar10"
  config.regularizer.name = regularizer
  config.regularizer.block_size = 3
  default.use_reference_schedule(config, regularizer, "cifar")
  config.log_every_steps = 100
  config.eval_every_epochs = 10.0
  config.checkpoint_every_steps = 2000
  return config
