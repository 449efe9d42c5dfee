"""CIFAR-10 with 4,000 labels, UDA on WRN-28-2: AutoDropout Table 3.

UDA's released CIFAR-10 GPU script (google-research/uda
``image/scripts/run_cifar10_gpu.sh`` and ``image/main.py``): 4,000
labelled images (400 per class, drawn with ``data_seed``), the whole
training split as the unlabelled pool, labelled batch 64 and 7 unlabelled
images per labelled one, 500,000 steps, SGD with Nesterov momentum 0.9,
weight decay 5e-4, lr 0.03 warmed up over 20,000 steps then cosine to 0.004
of it, confidence threshold 0.8, target temperature 0.4, no TSA, consistency
weight 1. The unlabelled images' strong view is UDA's RandAugment (15 ops,
two per image, each applied with probability 0.5 at a random magnitude
1-9; translation and cutout up to 10 of 32 pixels), then crop and flip
(UDA's preprocessing adds a 16-pixel cutout; ours does not). Labelled
images get crop and flip.

Variants: ``none`` (UDA alone) and ``policy`` (UDA with the AutoDropout
pattern of the CIFAR-10-4K search, ``configs/search/cifar10_4k_wrn28_2.py``,
in the student pass; see :mod:`dropgraph_jax.training.uda`):

    unzip ../shared/datasets/cifar10-jpeg.zip -d /tmp/cifar10
    python -m dropgraph_jax.main --config configs/cifar10_4k_uda.py:policy \\
        --workdir runs/c10_4k_uda_autodropout \\
        --config.dataset=folder:/tmp/cifar10 \\
        --config.regularizer.policy_file=runs/search_c10_4k/best_policy.json

Paper (Table 3, CIFAR-10-4K top-1 %): UDA 94.9 +- 0.12, UDA + AutoDropout
95.8 +- 0.04. (UDA's own script reports 95.68 +- 0.08 with ratio 7.)
"""

from configs import default

REGULARIZERS = ("none", "policy")


def get_config(regularizer: str = "policy"):
  if regularizer not in REGULARIZERS:
    raise ValueError(f"cifar10_4k_uda: regularizer must be one of "
                     f"{list(REGULARIZERS)}, got {regularizer!r}.")
  config = default.get_config()
  config.trainer = "uda"
  config.model = "wrn28_2"
  config.dataset = "cifar10"
  config.train_examples = 4000
  config.batch_size = 64
  config.uda_unsup_ratio = 7
  config.uda_confidence, config.uda_temperature = 0.8, 0.4
  config.uda_tsa, config.uda_coefficient = "", 1.0
  config.randaugment_layers, config.randaugment_variant = 2, "uda"
  config.randaugment_translate = config.randaugment_cutout = 10 / 32
  config.num_train_steps = 500_000
  config.optimizer, config.nesterov = "sgd", True
  config.learning_rate, config.weight_decay = 0.03, 5e-4
  config.lr_schedule, config.lr_min = "cosine", 0.03 * 0.004
  config.warmup_epochs = 20_000 / (4000 / 64)  # 20,000 steps
  config.regularizer.name = regularizer
  config.log_every_steps = 500
  config.eval_every_epochs = 1000.0
  config.checkpoint_every_steps = 5000
  return config
