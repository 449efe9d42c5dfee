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

from configs import iwslt14_transformer

REGULARIZERS = iwslt14_transformer.REGULARIZERS


def get_config(regularizer: str = "dropout"):
  config = iwslt14_transformer.get_config(regularizer,
                                          "multi30k_transformer")
  config.model = "transformer_small"
  config.dataset = "parallel:multi30k_de_en"
  config.eval_split, config.test_split = "val", "test_2016_flickr"
  config.vocab_size, config.max_len = 8000, 64
  config.num_train_steps, config.num_epochs = 0, 20.0
  config.learning_rate, config.warmup_epochs = 1e-3, 1.0
  config.beam_size, config.length_penalty = 4, 0.6
  config.train_eval_examples = 1000
  config.log_every_steps, config.eval_every_epochs = 100, 5.0
  config.checkpoint_every_steps = 1000
  return config
