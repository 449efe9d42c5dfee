"""ImageNet RegNetX-200MF, DropGraph appendix B.1 settings (Table 2).

The ImageNet ResNet-50 schedule (``imagenet_resnet50``), with the
regularizer only at the last 3 blocks of the last group (inside each X
block at the references' sites: relu1, relu2, bn3, shortcut), as the paper places it on RegNetX.

    python -m dropgraph_jax.main --config configs/imagenet_regnetx200mf.py:dropgraph \\
        --workdir runs/in_regnetx_dropgraph --config.data_dir=TFDS_DIR

Paper (Table 2, ImageNet top-1 / top-5 %): none 67.54 / 88.29, dropout
67.59 / 88.28, DropBlock 67.94 / 88.44, Disout 68.25 / 88.56, DropGraph
68.77 / 88.65.
"""

from configs import imagenet_resnet50

REGULARIZERS = ("none", "dropout", "drop_block", "disout", "dropgraph")


def get_config(regularizer: str = "dropgraph"):
  if regularizer not in REGULARIZERS:
    raise ValueError(f"imagenet_regnetx200mf: regularizer must be one of "
                     f"{list(REGULARIZERS)}, got {regularizer!r}.")
  config = imagenet_resnet50.get_config(regularizer)
  config.model = "regnetx_200mf"
  config.regularizer.stages = (4,)
  config.regularizer.blocks = (4, 5, 6)
  config.regularizer.stage_rate_scales = ()  # one stage: no group scaling
  return config
