"""ImageNet ResNet-50 (v1.5), DropGraph appendix B.1 settings (Table 2).

SGD momentum 0.9, weight decay 1e-4, batch 1024, lr 0.1 divided by 10 at
epochs 125, 200 and 250, 270 epochs, no warm-up; random-size crops to
224x224 and horizontal flips for training, resize to 256 and centre crop
224 for validation. Regularizers in every block of the last two groups at
the references' sites (``relu1, relu2, bn3``, shortcut), rho 0.1, alpha
0.2, block 7 (DropBlock's ImageNet size), ramped linearly over the whole
run with a quarter of the rate in group 3 (DropBlock's and Disout's
references); Disout with its reference's ImageNet settings (rate 0.07,
block 7, alpha 1).

ImageNet must be prepared for TFDS once (manual download):

    python -m dropgraph_jax.main --config configs/imagenet_resnet50.py:dropgraph \\
        --workdir runs/in_r50_dropgraph --config.data_dir=TFDS_DIR

Paper (Table 2, ImageNet top-1 / top-5 %): none 76.51 / 93.20, dropout
76.80 / 93.41, spatial dropout 77.41 / 93.74, DropBlock 78.13 / 94.02,
Disout 78.33 / 93.98, DropGraph 78.43 / 94.05. (AutoDropout Table 1 reports
none 76.5 / 93.4, DropBlock 78.3 / 94.3 and AutoDropout 78.7 / 94.3 for
the same network; pass its policy with ``:policy``.) ``:stochastic_depth``
is AutoDropout Table 1's ResNet-50 + stochastic depth row (77.5 / 93.7):
residual branches dropped with the linear rule up to 0.2 (the paper gives
no rate; 0.2 is its EfficientNet setting), no other regularizer.
``:policy_randaugment`` is AutoDropout Table 2's ResNet-50 row (80.3 /
95.1): the ImageNet policy with RandAugment N = 2, M = 9 (the RandAugment
paper's ResNet-50 setting; the AutoDropout paper gives none), the
reference code's op list and probabilities (``'efficientnet'`` variant),
after the random-size crop.
"""

from configs import default

REGULARIZERS = ("none", "dropout", "spatial_dropout", "drop_block", "disout",
                "dropgraph", "policy", "stochastic_depth",
                "policy_randaugment")


def get_config(regularizer: str = "dropgraph"):
  if regularizer not in REGULARIZERS:
    raise ValueError(f"imagenet_resnet50: regularizer must be one of "
                     f"{list(REGULARIZERS)}, got {regularizer!r}.")
  config = default.get_config()
  config.model = "resnet50"
  config.dataset = "imagenet2012"
  config.eval_split = "validation"
  config.image_size = 224
  config.augment = "inception_crop_flip"
  config.batch_size = 1024
  config.eval_batch_size = 1024
  config.num_epochs = 270.0
  config.learning_rate = 0.1
  config.lr_boundaries_epochs = (125, 200, 250)
  config.weight_decay = 1e-4
  config.regularizer.name = regularizer
  config.regularizer.block_size = 7
  default.use_reference_schedule(config, regularizer, "imagenet")
  if regularizer == "policy_randaugment":
    config.regularizer.name = "policy"
    config.randaugment_layers, config.randaugment_magnitude = 2, 9.0
    config.randaugment_variant = "efficientnet"
  if regularizer == "stochastic_depth":
    config.regularizer.name = "none"
    config.model_kwargs.stochastic_depth = 0.2
  config.input_threads = 16
  config.log_every_steps = 100
  config.eval_every_epochs = 10.0
  config.checkpoint_every_steps = 2500
  return config
