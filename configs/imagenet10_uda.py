"""ImageNet with 10% of the labels, UDA on ResNet-50: AutoDropout Table 3.

The labelled set is 10% of each class of the training split (128,116
images, drawn with ``data_seed``; the paper makes sure it holds the 80,000
images its ImageNet search used, which we cannot know), the unlabelled pool
the whole split. UDA's ImageNet code is not released and neither paper
lists every setting, so these are ours, from the CIFAR script and the
ImageNet ResNet-50 recipe of ``imagenet_resnet50.py``: labelled batch 512
and 3 unlabelled images per labelled one, 100,000 steps, SGD momentum 0.9
(Nesterov), weight decay 1e-4, lr 0.2 warmed up over 5 epochs of the
labelled set then cosine to 0, confidence 0.5, target temperature 0.4,
linear TSA (the UDA paper's Section 3.2 anneals on ImageNet), consistency
weight 1; RandAugment (the EfficientNet reference's ops, N = 2, M = 9) on
the unlabelled images' random-size crops.

    python -m dropgraph_jax.main --config configs/imagenet10_uda.py:policy \\
        --workdir runs/in10_uda_autodropout --config.data_dir=TFDS_DIR \\
        --config.regularizer.policy_file=runs/search_in/best_policy.json

Paper (Table 3, ImageNet-10% top-1 / top-5 %): UDA 68.8 / 88.8, UDA +
AutoDropout 72.9 / 91.4.
"""

from configs import default

REGULARIZERS = ("none", "policy")


def get_config(regularizer: str = "policy"):
  if regularizer not in REGULARIZERS:
    raise ValueError(f"imagenet10_uda: regularizer must be one of "
                     f"{list(REGULARIZERS)}, got {regularizer!r}.")
  config = default.get_config()
  config.trainer = "uda"
  config.model = "resnet50"
  config.dataset = "imagenet2012"
  config.eval_split = "validation"
  config.image_size = 224
  config.augment = "inception_crop_flip"
  config.train_examples = 128_116
  config.batch_size, config.eval_batch_size = 512, 1024
  config.uda_unsup_ratio = 3
  config.uda_confidence, config.uda_temperature = 0.5, 0.4
  config.uda_tsa, config.uda_coefficient = "linear", 1.0
  config.randaugment_layers, config.randaugment_magnitude = 2, 9.0
  config.randaugment_variant = "efficientnet"
  config.num_train_steps = 100_000
  config.nesterov, config.weight_decay = True, 1e-4
  config.learning_rate, config.lr_schedule = 0.2, "cosine"
  config.warmup_epochs = 5.0
  config.regularizer.name = regularizer
  config.input_threads = 16
  config.log_every_steps = 100
  config.eval_every_epochs = 20.0
  config.checkpoint_every_steps = 2500
  return config
