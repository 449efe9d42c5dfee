"""CIFAR-10 WRN-28-10, AutoDropout Table 1 (control experiment).

SGD with Nesterov momentum 0.9, weight decay 5e-4, batch 128, lr 0.1 with a
cosine decay over 200 epochs, crop (4-pixel padding) and flip. The AutoDropout
appendix with its exact settings is not part of the text we have; these
are the common WRN settings (Zagoruyko & Komodakis used steps, not
cosine). Variants after the colon:

* ``none``;
* ``drop_block``: rate 0.1, block 3, on the batch-norm sites and shortcuts
  of the last two groups (WRN is pre-activation: its sites are ``bn1``,
  ``bn2`` and ``shortcut``), ramped over the first 50 epochs;
* ``stochastic_depth``: residual branches dropped with the linear rule up to
  0.2 at the last block;
* ``policy``: an AutoDropout policy JSON (e.g. the ``best_policy.json`` of
  ``configs/search/cifar_wrn28_2.py``, scaled as needed) with
  ``--config.regularizer.policy_file=FILE``;
* ``policy_randaugment``: the same policy with RandAugment (Table 2, 97.9
  +- 0.06): N = 3, M = 5, the RandAugment paper's setting for WRN-28-10
  on CIFAR-10 (the AutoDropout paper gives no N, M), the 14 ops of its
  Figure 2, translation up to 10 of 32 pixels as UDA's CIFAR code, before
  the crop and flip.

    python -m dropgraph_jax.main --config configs/cifar_wrn28_10.py:policy \\
        --workdir runs/c10_wrn_autodropout --config.data_dir=DIR \\
        --config.regularizer.policy_file=runs/search_wrn/best_policy.json

Paper (Table 1, CIFAR-10 top-1 %): none 96.1 +- 0.12, DropBlock 96.2 +- 0.07,
stochastic depth 96.2 +- 0.07, AutoDropout 96.8 +- 0.09.
"""

from configs import default

REGULARIZERS = ("none", "drop_block", "stochastic_depth", "policy",
                "policy_randaugment")


def get_config(regularizer: str = "policy"):
  if regularizer not in REGULARIZERS:
    raise ValueError(f"cifar_wrn28_10: regularizer must be one of "
                     f"{list(REGULARIZERS)}, got {regularizer!r}.")
  config = default.get_config()
  config.model = "wrn28_10"
  config.dataset = "cifar10"
  config.num_epochs = 200.0
  config.lr_schedule = "cosine"
  config.nesterov = True
  config.regularizer.name = regularizer
  config.regularizer.stages = (2, 3)
  config.regularizer.site_labels = r"bn\d|shortcut"
  config.regularizer.block_size = 3
  config.regularizer.ramp_epochs = 50.0
  if regularizer == "policy_randaugment":
    config.regularizer.name = "policy"
    config.randaugment_layers, config.randaugment_magnitude = 3, 5.0
    config.randaugment_translate = 10 / 32
  if regularizer == "stochastic_depth":
    config.regularizer.name = "none"
    config.model_kwargs.stochastic_depth = 0.2
  config.log_every_steps = 100
  config.eval_every_epochs = 10.0
  config.checkpoint_every_steps = 2000
  return config
