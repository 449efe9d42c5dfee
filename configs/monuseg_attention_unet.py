"""DropGraph Table 3 (MoNuSeg): Attention U-Net, the U-Net recipe.

Everything as ``configs/monuseg_unet.py`` with Oktay et al.'s attention
gates on the skip connections.

    python -m dropgraph_jax.main \\
        --config configs/monuseg_attention_unet.py:dropgraph \\
        --workdir runs/monuseg_attunet_dropgraph \\
        --config.data_dir=/tmp/monuseg/MoNuSeg

Paper (Table 3, MoNuSeg, mIoU / Dice %): Attention U-Net 68.3 +- 0.2 /
81.1 +- 0.2, + DropBlock 68.0 +- 0.6 / 81.0 +- 0.4, + Disout 68.3 +- 0.6
/ 81.2 +- 0.5, + DropGraph 68.7 +- 0.5 / 81.5 +- 0.5.
"""

from configs import monuseg_unet

REGULARIZERS = monuseg_unet.REGULARIZERS


def get_config(regularizer: str = "dropgraph"):
  config = monuseg_unet.get_config(regularizer)
  config.model = "attention_unet"
  return config
