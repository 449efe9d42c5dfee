"""DropGraph Table 3 (MoNuSeg): U-Net, the paper's recipe.

BiO-Net's training setting as the paper gives it (appendix B.2): Adam, lr
0.01 decayed per step as 0.01 / (1 + 3e-5 step), per-pixel cross
entropy, batch 2, the four 512 x 512 corner patches of each image (120
training, 56 test), the regularizer after both activations of the
deepest encoder level only (alpha 0.1, rho 0.1, block 7; see
``dropgraph_jax/models/unet.py`` for the placement and what the paper
leaves open). The paper gives no epoch count; 300 is ours. Augmentation:
flips and right-angle rotations (the paper's Keras recipe also rotates by
up to 15 degrees, shifts, shears and zooms; see
``dropgraph_jax/data/segmentation.py``).

    unzip ../shared/datasets/monuseg2018.zip -d /tmp/monuseg
    python -m dropgraph_jax.main --config configs/monuseg_unet.py:dropgraph \\
        --workdir runs/monuseg_unet_dropgraph --config.data_dir=/tmp/monuseg/MoNuSeg

Paper (Table 3, MoNuSeg, mIoU / Dice %, mean +- std): U-Net 68.2 +- 0.3 /
80.7 +- 0.3, + DropBlock 67.6 +- 0.8 / 80.2 +- 0.7, + Disout 68.1 +- 0.8 /
80.0 +- 0.8, + DropGraph 68.5 +- 0.7 / 81.4 +- 0.6. Our ``test_iou_fg``
and ``test_dice_fg`` are these two metrics (see
``dropgraph_jax/training/segmentation_metrics.py``).
"""

from configs import default

REGULARIZERS = ("none", "drop_block", "disout", "dropgraph")
MODEL = "unet"


def get_config(regularizer: str = "dropgraph"):
  if regularizer not in REGULARIZERS:
    raise ValueError(f"{MODEL} config: regularizer must be one of "
                     f"{list(REGULARIZERS)}, got {regularizer!r}.")
  config = default.get_config()
  config.model = MODEL
  config.dataset = "monuseg"
  config.eval_split = "test"
  config.patch_size = 512
  config.image_size = 0          # > 0: resize the patches (reduced runs)
  config.augment = "flip_rot90"
  config.batch_size = 2
  config.eval_batch_size = 4
  config.num_epochs = 300.0
  config.optimizer = "adam"
  config.learning_rate = 0.01
  config.lr_schedule = "inverse_time"
  config.lr_decay = 3e-5
  config.weight_decay = 0.0
  config.regularizer.name = regularizer
  config.regularizer.rate = 0.1
  config.regularizer.alpha = 0.1
  config.regularizer.block_size = 7
  config.regularizer.level = ""  # '': the deepest encoder level
  config.regularizer.ramp_epochs = 0.0
  config.log_every_steps = 60
  config.eval_every_epochs = 0.0
  config.checkpoint_every_steps = 600
  return config
