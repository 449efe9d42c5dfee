"""Tiny AutoDropout search: ConvNet patterns for a small ResNet on digits.

The proxy child is ``resnet_digits`` trained for 150 steps on 90% of the
digits training split; the reward is accuracy on the held-out 10%. 32
children with REINFORCE (C = 8, M = 4) and 32 with random search, 2 local
worker processes: minutes on a laptop CPU.

    python -m dropgraph_jax.search --config configs/search/digits.py --workdir runs/search_digits

Then train with the best policy:

    python -m dropgraph_jax.main --config configs/digits.py --workdir runs/digits_ad \\
        --config.regularizer.name=policy \\
        --config.regularizer.policy_file=runs/search_digits/reinforce/best_policy.json
"""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.space = ml_collections.ConfigDict()
  config.space.kind = "conv"
  config.space.model = "resnet_digits"
  config.space.input_shape = (1, 8, 8, 1)
  config.space.site_regex = r"^stage2/.*/bn\d$"  # the last stage's BN outputs
  config.space.choices = ml_collections.ConfigDict(
      {"size": (0, 1, 2, 3), "stride": (1, 2, 4), "repeat": (1, 2)})

  config.controller = ml_collections.ConfigDict(
      {"d_model": 32, "n_layer": 2, "n_head": 4, "d_ff": 64})

  config.search = ml_collections.ConfigDict()
  config.search.method = "reinforce"
  config.search.num_jobs = 32
  config.search.capacity = 8            # C
  config.search.minibatch = 4           # M
  config.search.learning_rate = 3e-3
  config.search.baseline_decay = 0.9
  config.search.entropy_weight = 0.0
  config.search.max_importance_weight = 0.0  # 0: unclipped (the paper)
  config.search.backend = "local"
  config.search.num_workers = 2
  config.search.children_per_job = 1    # > 1: vmapped children per job
  config.search.job_timeout_s = 600.0
  config.search.max_attempts = 3
  config.search.ray_address = ""
  config.search.poll_s = 1.0
  config.search.checkpoint_every = 1    # finished jobs between checkpoints
  config.search.seed = 0
  config.search.compare_random = True
  config.search.preempt_after_jobs = 0  # testing hook: simulate a kill

  config.proxy = ml_collections.ConfigDict()
  config.proxy.name = "image"
  config.proxy.model = "resnet_digits"
  config.proxy.dataset = "digits"
  config.proxy.data_dir = ""
  config.proxy.steps = 150
  config.proxy.batch_size = 64
  config.proxy.learning_rate = 0.05
  config.proxy.weight_decay = 5e-4
  config.proxy.augment = "none"          # as configs/digits.py trains
  config.proxy.crop_padding = 4
  config.proxy.val_fraction = 0.1
  config.proxy.seed = 0
  config.proxy.group_mode = "auto"      # 'vmap', 'loop' (auto: loop on CPU)
  config.proxy.halving_eta = 1          # > 1: successive halving in a group
  config.proxy.halving_min_steps = 0    # steps of the first rung
  return config
