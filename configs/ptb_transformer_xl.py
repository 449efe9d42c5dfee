"""Transformer-XL on Penn Treebank, AutoDropout Table 4.

The PTB-sized Transformer-XL (``transformer_xl_ptb``: 16 layers, d_model
320, 24.6M parameters; the authors never released their PTB setup), batch
16, segment and memory length 70 (AutoDropout's search setting), Adam with
a cosine schedule, gradient clipping at 0.25 (the Transformer-XL
reference). The regularizer goes after the colon:

* ``variational_dropout``: the baseline of Transformer-XL (one mask per
  sequence at the embedding, every sub-layer output and the final state;
  attention-probability dropout), rates in ``regularizer.variational``;
* ``autodropout_paper``: the pattern shapes the AutoDropout paper reports
  for its best PTB policy (attention like variational dropout, feed-forward
  like word dropout; the searched policy itself was never published),
  rates in ``regularizer.autodropout``;
* ``policy``: any policy JSON, e.g. a search's ``best_policy.json``, with
  ``--config.regularizer.policy_file=FILE``;
* ``none``.

    unzip ../shared/datasets/ptb.zip -d /tmp/ptb
    python -m dropgraph_jax.main --config configs/ptb_transformer_xl.py:variational_dropout \\
        --workdir runs/ptb_vd --config.data_dir=/tmp/ptb

Paper (Table 4, PTB valid / test perplexity): Transformer-XL 59.1 / 56.0,
+ AutoDropout 58.1 / 54.9, after 300,000 steps.
"""

import ml_collections

from configs import default

REGULARIZERS = ("variational_dropout", "autodropout_paper", "policy", "none")


def get_config(regularizer: str = "variational_dropout"):
  if regularizer not in REGULARIZERS:
    raise ValueError(f"ptb_transformer_xl: regularizer must be one of "
                     f"{list(REGULARIZERS)}, got {regularizer!r}.")
  config = default.get_config()
  config.model = "transformer_xl_ptb"
  config.dataset = "ptb"
  config.data_dir = ""               # the directory of ptb.*.txt
  config.batch_size = 16
  config.eval_batch_size = 16
  config.seq_len = 70
  config.mem_len = 70
  config.num_train_steps = 300_000
  config.optimizer = "adam"
  config.learning_rate = 2.5e-4
  config.lr_schedule = "cosine"
  config.warmup_epochs = 0.0
  config.weight_decay = 0.0
  config.grad_clip_norm = 0.25
  config.regularizer.name = regularizer
  # 'autodropout_paper': the pattern rates (the embedding and final state
  # keep regularizer.variational's rates).
  config.regularizer.autodropout = ml_collections.ConfigDict(
      {"attention": 0.25, "feed_forward": 0.25})
  config.regularizer.schedule = "constant"
  config.log_every_steps = 200
  config.eval_every_epochs = 1.0
  config.checkpoint_every_steps = 4000
  return config
