"""AutoDropout's CIFAR-10-4K search (Table 3): WRN-28-2 on 4,000 images.

"On CIFAR-10, we repeat our AutoDropout search with 3,600 training
examples and 400 validation examples": the image proxy takes a
class-balanced subset of 4,000 training images (``proxy.examples``, drawn
with ``proxy.data_seed``; the UDA configs' labelled set is drawn the same
way from the same seed, so the search sees the labelled images only) and
holds out 10% of it for the reward. Otherwise the full CIFAR-10 search
(``cifar_wrn28_2.py``): 8 tokens at every batch-norm output, 32,000 steps
a child, C = 64 unfinished jobs on Ray.

    python -m dropgraph_jax.search --config configs/search/cifar10_4k_wrn28_2.py \\
        --workdir runs/search_c10_4k --config.proxy.dataset=folder:/tmp/cifar10

The best policy then goes into UDA (``configs/cifar10_4k_uda.py:policy``).
"""

from configs.search import cifar_wrn28_2


def get_config():
  config = cifar_wrn28_2.get_config()
  config.proxy.examples = 4000
  config.proxy.data_seed = 0
  config.proxy.val_fraction = 0.1
  return config
