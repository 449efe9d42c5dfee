"""WMT-14 En-Fr, Transformer base: AutoDropout Table 4 (translation).

Vaswani et al.'s base model (6 + 6 layers, width 512, feed-forward 2048, 8
heads, shared embeddings; a 37k joint subword vocabulary here, where the
paper used 32k word pieces): Adam (0.9, 0.98), the learning rate
``512^-0.5 * min(step^-0.5, step * 4000^-1.5)`` (peak 7e-4 at step
4,000), label smoothing 0.1, dropout 0.1, 100,000 steps, beam 4 with
length penalty 0.6. Batches of 512 sentence pairs stand in for the paper's
25,000 source + 25,000 target tokens. The data (36M pairs, ``train.en`` /
``train.fr``, ``newstest2013`` for validation, ``newstest2014`` for BLEU)
is not available offline.

    python -m dropgraph_jax.main --config configs/wmt14_transformer.py:dropout \\
        --workdir runs/wmt_enfr_vanilla --config.dataset=parallel:DATA/wmt14_en_fr

Paper (Table 4, WMT-14 En-Fr BLEU): Transformer 38.1, + AutoDropout 40.0.
"""

from configs import iwslt14_transformer

REGULARIZERS = iwslt14_transformer.REGULARIZERS
TRAIN_PAIRS = 35_762_532


def get_config(regularizer: str = "dropout"):
  config = iwslt14_transformer.get_config(regularizer, "wmt14_transformer")
  config.model = "transformer_base"
  config.dataset = "parallel:wmt14_en_fr"
  config.source_lang, config.target_lang = "en", "fr"
  config.eval_split, config.test_split = "newstest2013", "newstest2014"
  config.vocab_size, config.max_len = 37000, 256
  config.batch_size, config.eval_batch_size = 512, 256
  config.num_train_steps = 100_000
  config.learning_rate = 7e-4
  config.warmup_epochs = 4000 / (TRAIN_PAIRS // 512)
  config.weight_decay = 0.0
  config.beam_size, config.length_penalty = 4, 0.6
  config.regularizer.rate = 0.1
  config.log_every_steps, config.eval_every_epochs = 500, 0.1
  config.checkpoint_every_steps = 5000
  return config
