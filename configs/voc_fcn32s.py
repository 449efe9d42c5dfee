"""DropGraph Table 3 (PASCAL VOC 2012): FCN-32s on ResNet-50, from scratch.

The paper's setting (appendix B.2): Adam, weight decay 1e-4, lr 1e-3
annealed by a cosine to 1e-5 over 400 epochs, batch 64, per-pixel cross
entropy; training images flipped, scaled by [0.5, 1.5] and centre-cropped
to 224 x 224 (``dropgraph_jax/data/segmentation.py``); the SBD-augmented
10,582-image ``train_aug`` list with ``SegmentationClassAug`` masks;
evaluation on ``val`` (1,449 images) padded to 512 x 512. Regularizers in
the last two ResNet groups at the references' sites, alpha 0.2, rho 0.1,
block 7 (the classification settings). VOC cannot be had offline here, so
no run of this config exists yet.

    python -m dropgraph_jax.main --config configs/voc_fcn32s.py:dropgraph \\
        --workdir runs/voc_fcn32s_dropgraph --config.data_dir=/data/VOC2012

Paper (Table 3, VOC val, mIoU / mAcc %): FCN-32s 47.1 +- 0.4 / 81.2 +- 0.3,
+ DropBlock 50.6 +- 0.3 / 82.1 +- 0.2, + Disout 50.7 +- 0.4 / 82.0 +- 0.3,
+ DropGraph 51.0 +- 0.4 / 82.4 +- 0.2. Ours: ``test_miou`` / ``test_macc``.
"""

from configs import default

REGULARIZERS = ("none", "drop_block", "disout", "dropgraph")
MODEL = "fcn32s_resnet50"


def get_config(regularizer: str = "dropgraph"):
  if regularizer not in REGULARIZERS:
    raise ValueError(f"{MODEL} config: regularizer must be one of "
                     f"{list(REGULARIZERS)}, got {regularizer!r}.")
  config = default.get_config()
  config.model = MODEL
  config.dataset = "voc"
  config.train_split = "train_aug"
  config.eval_split = "val"
  config.voc_mask_dir = "SegmentationClassAug"
  config.crop_size = 224
  config.eval_size = 512
  config.augment = "scale_flip_crop"
  config.batch_size = 64
  config.eval_batch_size = 16
  config.num_epochs = 400.0
  config.optimizer = "adam"
  config.learning_rate = 1e-3
  config.lr_schedule = "cosine"
  config.lr_min = 1e-5
  config.weight_decay = 1e-4
  config.regularizer.name = regularizer
  config.regularizer.rate = 0.1
  config.regularizer.alpha = 0.2
  config.regularizer.block_size = 7
  config.regularizer.stages = (3, 4)
  config.regularizer.ramp_epochs = -1.0
  config.log_every_steps = 100
  config.eval_every_epochs = 0.0
  config.checkpoint_every_steps = 1000
  return config
