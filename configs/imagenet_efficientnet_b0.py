"""ImageNet EfficientNet-B0, AutoDropout Table 1 (control experiment).

The EfficientNet recipe (Tan & Le 2019): RMSProp (decay 0.9, momentum 0.9,
eps 1e-3), weight decay 1e-5, batch 4096, lr 0.256 decayed by 0.97 every
2.4 epochs after a 5-epoch warm-up, 350 epochs, label smoothing 0.1,
random-size crops to 224 with flips. (The reference also keeps an
exponential moving average of the weights and uses AutoAugment; neither is
in this config.) Variants after the colon:

* ``stochastic_depth``: the family's default regularizer, rate growing
  linearly with block index up to 0.2 (the model's default);
* ``none``: stochastic depth off;
* ``policy``: an AutoDropout policy JSON at the batch-norm sites (with the
  model's stochastic depth kept), ``--config.regularizer.policy_file=FILE``;
* ``drop_block``: DropBlock (rho 0.1, block 7, the ResNet ImageNet
  settings) on the residual branch's output (``bn_project``) of every
  block at 14 x 14 and 7 x 7 (blocks 8-15), the analogue of ResNet's last
  two groups, with stochastic depth off. The paper gives no placement for
  this row; this one is ours.

    python -m dropgraph_jax.main --config configs/imagenet_efficientnet_b0.py:policy \\
        --workdir runs/in_b0_autodropout --config.data_dir=TFDS_DIR \\
        --config.regularizer.policy_file=POLICY.json

Paper (Table 1, ImageNet top-1 / top-5 %): none 76.2 / 92.9, DropBlock
76.3 / 92.8, stochastic depth 76.8 / 93.1, AutoDropout 77.5 / 93.8.
"""

from configs import imagenet_resnet50

REGULARIZERS = ("stochastic_depth", "none", "policy", "drop_block")


def get_config(regularizer: str = "stochastic_depth"):
  if regularizer not in REGULARIZERS:
    raise ValueError(f"imagenet_efficientnet_b0: regularizer must be one of "
                     f"{list(REGULARIZERS)}, got {regularizer!r}.")
  config = imagenet_resnet50.get_config("none")
  config.model = "efficientnet_b0"
  config.batch_size = 4096
  config.eval_batch_size = 1024
  config.num_epochs = 350.0
  config.optimizer = "rmsprop"
  config.learning_rate = 0.256
  config.lr_schedule = "exponential"
  config.lr_decay = 0.97
  config.lr_decay_epochs = 2.4
  config.warmup_epochs = 5.0
  config.weight_decay = 1e-5
  config.label_smoothing = 0.1
  config.regularizer.name = regularizer if regularizer in (
      "policy", "drop_block") else "none"
  config.regularizer.ramp_epochs = 0.0
  config.model_kwargs.stochastic_depth = 0.0 if regularizer in (
      "none", "drop_block") else 0.2
  if regularizer == "drop_block":
    config.regularizer.placement = "regex"
    config.regularizer.site_labels = r"block([89]|1[0-5])/bn_project"
    config.regularizer.rate = 0.1
    config.regularizer.ramp_epochs = -1.0
  return config
