"""ImageNet EfficientNet-B3 / B5 / B7, AutoDropout Table 1's wider columns.

``--config configs/imagenet_efficientnet.py:b5,policy``: the variant
(``b0`` .. ``b7``; B3 when left out) and the regularizer (``stochastic_depth``, the family's
default; ``none``; ``policy``, an AutoDropout policy JSON). Everything as
``configs/imagenet_efficientnet_b0.py`` with the variant's resolution and
stochastic-depth rate from the EfficientNet paper (B3 300 px / 0.3, B5
456 px / 0.4, B7 600 px / 0.5; width and depth multipliers in
``dropgraph_jax/models/efficientnet.py``), and a batch of 2048 (B5) or
1024 (B7), as memory allows on 8 accelerators. The paper scales the found
pattern's sizes and strides with the resolution; pass the scaled policy
(``Policy.scaled``) as the policy file.

    python -m dropgraph_jax.main --config configs/imagenet_efficientnet.py:b3,policy \\
        --workdir runs/in_b3_autodropout --config.data_dir=TFDS_DIR \\
        --config.regularizer.policy_file=POLICY.json

Paper (Table 1, ImageNet top-1 / top-5 %; no ``none`` or DropBlock row
for these): stochastic depth B3 80.2 / 95.0, B5 82.5 / 96.2, B7 84.1 /
96.9; AutoDropout B3 80.9 / 95.6, B5 83.1 / 96.5, B7 84.7 / 97.1.
"""

from configs import imagenet_efficientnet_b0
from dropgraph_jax.models.efficientnet import VARIANTS

REGULARIZERS = ("stochastic_depth", "none", "policy")
BATCH = {"b5": 2048, "b6": 1024, "b7": 1024}


def get_config(arg: str = "b3,stochastic_depth"):
  if arg in REGULARIZERS:  # a regularizer alone: B3
    arg = f"b3,{arg}"
  variant, _, regularizer = arg.partition(",")
  regularizer = regularizer or "stochastic_depth"
  if variant not in VARIANTS or regularizer not in REGULARIZERS:
    raise ValueError(f"imagenet_efficientnet: the argument must be "
                     f"VARIANT[,REGULARIZER] with VARIANT in "
                     f"{sorted(VARIANTS)} and REGULARIZER in "
                     f"{list(REGULARIZERS)}, got {arg!r}.")
  config = imagenet_efficientnet_b0.get_config(regularizer)
  _, _, resolution, stochastic_depth = VARIANTS[variant]
  config.model = f"efficientnet_{variant}"
  config.image_size = resolution
  if regularizer != "none":
    config.model_kwargs.stochastic_depth = stochastic_depth
  config.batch_size = BATCH.get(variant, 4096)
  return config
