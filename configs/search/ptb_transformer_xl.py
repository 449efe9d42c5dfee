"""AutoDropout's PTB search: Transformer-XL children, the paper's settings.

"We train every configuration from scratch for 160,000 steps, using a batch
size of 16 and a segment length of 70 ... Perf(r) = 80 / ValidPPL(r)."
The space: size, stride, share_t, share_c for each of the six sub-layers
(query, key, value, softmax, output, residual), shared by all 16 layers
(24 tokens). The proxy is the full trainer on
``configs/ptb_transformer_xl.py:policy``.

    unzip ../shared/datasets/ptb.zip -d /tmp/ptb
    python -m dropgraph_jax.search --config configs/search/ptb_transformer_xl.py \\
        --workdir runs/search_ptb --config.proxy.overrides.data_dir=/tmp/ptb \\
        [--config.search.ray_address=HEAD:6379]

Paper (Figure 5): after 512 patterns, AutoDropout's best validation
perplexity is more than 3 points better than random search's.
"""

import os

import ml_collections

from configs.search import digits

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def get_config():
  config = digits.get_config()
  config.space.kind = "transformer"
  config.space.model = "transformer_xl_ptb"
  config.space.input_shape = (1, 70)
  config.space.choices = {}
  config.space.transformer_rate = 0.1
  config.search.num_jobs = 4096
  config.search.capacity = 64
  config.search.minibatch = 16
  config.search.learning_rate = 1e-3
  config.search.baseline_decay = 0.95
  config.search.backend = "ray"
  config.search.num_workers = 64
  config.search.job_timeout_s = 4 * 3600.0
  config.search.compare_random = False
  config.proxy = ml_collections.ConfigDict()
  config.proxy.name = "trainer"
  config.proxy.config_file = os.path.join(ROOT, "configs",
                                          "ptb_transformer_xl.py")
  config.proxy.config_arg = "policy"
  config.proxy.overrides = ml_collections.ConfigDict(
      {"data_dir": "", "num_train_steps": 160_000, "eval_every_epochs": 0.0,
       "checkpoint_every_steps": 10_000})
  return config
