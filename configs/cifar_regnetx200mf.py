"""CIFAR RegNetX-200MF, DropGraph appendix B.1 settings (Table 2).

The CIFAR ResNet-50 schedule (SGD momentum 0.9, weight decay 5e-4, batch
128, lr 0.1 / 10 at epochs 150 and 250, 300 epochs, crop + flip), with the
regularizer only at the last 3 blocks of the last group (inside each X
block at the references' sites: relu1, relu2, bn3, shortcut), rho 0.1, alpha 0.2, block 3.

    python -m dropgraph_jax.main --config configs/cifar_regnetx200mf.py:dropgraph \
        --workdir runs/c10_regnetx_dropgraph [--config.dataset=cifar100]

Paper (Table 2, CIFAR-10 / CIFAR-100 top-1 %): none 93.10 / 71.57, dropout
92.77 / 71.19, DropBlock 93.05 / 71.21, Disout 93.15 / 71.66, DropGraph
93.76 / 71.94. The model is the pytorch-cifar RegNetX-200MF the paper
used (stride-1 stem, last stage 8x8 at 32x32).
"""

from configs import cifar_resnet50

REGULARIZERS = ("none", "dropout", "drop_block", "disout", "dropgraph")


def get_config(regularizer: str = "dropgraph"):
  if regularizer not in REGULARIZERS:
    raise ValueError(f"cifar_regnetx200mf: regularizer must be one of "
                     f"{list(REGULARIZERS)}, got {regularizer!r}.")
  config = cifar_resnet50.get_config(regularizer)
  config.model = "regnetx_200mf_cifar"
  config.regularizer.stages = (4,)
  config.regularizer.blocks = (4, 5, 6)
  config.regularizer.stage_rate_scales = ()  # one stage: no group scaling
  return config
