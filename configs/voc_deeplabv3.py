"""DropGraph Table 3 (PASCAL VOC 2012): DeepLabV3 on ResNet-50 (output
stride 8, see ``dropgraph_jax/models/resnet_segmentation.py``), from
scratch; everything else as ``configs/voc_fcn32s.py``.

    python -m dropgraph_jax.main --config configs/voc_deeplabv3.py:dropgraph \\
        --workdir runs/voc_deeplabv3_dropgraph --config.data_dir=/data/VOC2012

Paper (Table 3, VOC val, mIoU / mAcc %): DeepLabV3 53.8 +- 0.3 / 83.5 +-
0.3, + DropBlock 56.9 +- 0.4 / 83.7 +- 0.3, + Disout 57.2 +- 0.4 / 84.0 +-
0.4, + DropGraph 58.0 +- 0.2 / 84.6 +- 0.3.
"""

from configs import voc_fcn32s

REGULARIZERS = voc_fcn32s.REGULARIZERS


def get_config(regularizer: str = "dropgraph"):
  config = voc_fcn32s.get_config(regularizer)
  config.model = "deeplabv3_resnet50"
  return config
