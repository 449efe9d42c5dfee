"""Multi30k De-En, a small Transformer: the reduced stand-in for Table 4's
translation rows on a CPU.

Multi30k task 1 (29,000 training pairs, ``val`` 1,014, ``test_2016_flickr``
1,000; ``../shared/datasets/multi30k_de_en.zip``, raw text) with the
``transformer_small`` model (3 + 3 layers, width 256, feed-forward 1024, 4
heads, an 8,000-piece joint vocabulary) and the IWSLT recipe otherwise
(Adam (0.9, 0.98), inverse square root after a one-epoch warm-up at peak
1e-3, label smoothing 0.1, dropout 0.3, beam 4). Its BLEU is not
comparable with the paper's IWSLT numbers.

    unzip ../shared/datasets/multi30k_de_en.zip -d /tmp/m30k
    python -m dropgraph_jax.main --config configs/multi30k_transformer.py:dropout \\
        --workdir runs/m30k_vanilla --config.dataset=parallel:/tmp/m30k/Multi30k_de_en
"""

from configs import default

REGULARIZERS = ("dropout", "autodropout_paper", "policy", "none")


def get_config(regularizer: str = "dropout"):
  if regularizer not in REGULARIZERS:
    raise ValueError(f"multi30k_transformer: regularizer must be one of "
                     f"{list(REGULARIZERS)}, got {regularizer!r}.")
  config = default.get_config()
  config.model = "transformer_small"
  config.dataset = "parallel:multi30k_de_en"
  config.source_lang, config.target_lang = "de", "en"
  config.eval_split, config.test_split = "val", "test_2016_flickr"
  config.vocab_size, config.max_len = 8000, 64
  config.batch_size, config.eval_batch_size = 128, 128
  config.num_epochs = 20.0
  config.optimizer, config.adam_b2 = "adam", 0.98
  config.learning_rate, config.lr_schedule = 1e-3, "inverse_sqrt"
  config.warmup_epochs = 1.0
  config.weight_decay, config.label_smoothing = 1e-4, 0.1
  config.beam_size, config.length_penalty = 4, 0.6
  config.regularizer.name = regularizer
  config.regularizer.rate = 0.3
  config.train_eval_examples = 1000
  config.log_every_steps = 100
  config.eval_every_epochs = 5.0
  config.checkpoint_every_steps = 1000
  return config
