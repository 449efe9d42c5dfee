"""AutoDropout's CIFAR-10 search: WRN-28-2 proxy, the paper's settings.

"For CIFAR-10, we search with a WRN-28-2 on the entire dataset, reserving
10% of the original training set for validation ... We train each dropout
pattern on CIFAR-10 for 32,000 steps" and M = 16. The space: 8 tokens at
every batch-norm output of WRN-28-2 (24 sites), patterns fitted to each
site's map. The proxy is the compact image trainer (``proxy.name='image'``:
the held-out 10% gives the reward). Children run on Ray workers (one GPU
each when the cluster has them); C = 64 unfinished jobs.

    unzip ../shared/datasets/cifar10-jpeg.zip -d /tmp/cifar10
    python -m dropgraph_jax.search --config configs/search/cifar_wrn28_2.py \\
        --workdir runs/search_wrn --config.proxy.dataset=folder:/tmp/cifar10 \\
        [--config.search.ray_address=HEAD:6379]

The best policy then trains WRN-28-10 (``configs/cifar_wrn28_10.py:policy``).
Paper (Figure 5): the best of the first 512 patterns beats random search by
more than 0.2% accuracy; the search explores 16,384 patterns.
"""

from configs.search import digits


def get_config():
  config = digits.get_config()
  config.space.model = "wrn28_2"
  config.space.input_shape = (1, 32, 32, 3)
  config.space.site_regex = r"/bn\d$"
  config.space.choices = {}             # the default value lists
  config.controller.d_model = 64
  config.controller.n_head = 4
  config.controller.d_ff = 128
  config.search.num_jobs = 16384
  config.search.capacity = 64
  config.search.minibatch = 16
  config.search.learning_rate = 1e-3
  config.search.baseline_decay = 0.95
  config.search.backend = "ray"
  config.search.num_workers = 64
  config.search.job_timeout_s = 4 * 3600.0
  config.search.compare_random = False
  config.proxy.model = "wrn28_2"
  config.proxy.dataset = "cifar10"
  config.proxy.steps = 32000
  config.proxy.batch_size = 128
  config.proxy.learning_rate = 0.1
  config.proxy.augment = "crop_flip"     # as the final CIFAR training
  return config
