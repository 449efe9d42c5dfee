"""IWSLT-14 De-En, Transformer: AutoDropout Table 4 (translation).

fairseq's ``transformer_iwslt_de_en`` recipe (6 + 6 layers, width 512,
feed-forward 1024, 4 heads, shared embeddings over a 10k joint subword
vocabulary): Adam (0.9, 0.98), lr 5e-4 after a 4,000-step linear warm-up
then inverse square root, label smoothing 0.1, weight decay 1e-4, vanilla
dropout 0.3, beam 5; batches of 128 sentence pairs (fairseq counts 4,096
tokens) for 60,000 steps. The data is fairseq's ``prepare-iwslt14.sh``
output (``train.de`` / ``train.en``, ``valid.*``, ``test.*``), which needs
a download; it is not available offline.

Variants: ``dropout`` (the vanilla baseline), ``autodropout_paper`` (the
Transformer patterns the AutoDropout paper describes, transferred from its
language-model search) and ``policy`` (a searched policy JSON):

    python -m dropgraph_jax.main --config configs/iwslt14_transformer.py:dropout \\
        --workdir runs/iwslt_vanilla --config.dataset=parallel:DATA/iwslt14.tokenized.de-en

Paper (Table 4, IWSLT-14 De-En BLEU): Transformer 34.4, + AutoDropout 35.8.
"""

from configs import default

REGULARIZERS = ("dropout", "autodropout_paper", "policy", "none")
TRAIN_PAIRS = 160_239  # after prepare-iwslt14.sh


def get_config(regularizer: str = "dropout", name: str = "iwslt14_transformer"):
  """The IWSLT recipe; ``name`` (the config that builds on it) for errors."""
  if regularizer not in REGULARIZERS:
    raise ValueError(f"{name}: regularizer must be one of "
                     f"{list(REGULARIZERS)}, got {regularizer!r}.")
  config = default.get_config()
  config.model = "transformer_iwslt"
  config.dataset = "parallel:iwslt14.tokenized.de-en"
  config.source_lang, config.target_lang = "de", "en"
  config.eval_split, config.test_split = "valid", "test"
  config.vocab_size, config.max_len = 10000, 128
  config.batch_size, config.eval_batch_size = 128, 128
  config.num_train_steps = 60_000
  config.optimizer, config.adam_b2 = "adam", 0.98
  config.learning_rate, config.lr_schedule = 5e-4, "inverse_sqrt"
  config.warmup_epochs = 4000 / (TRAIN_PAIRS // 128)
  config.weight_decay, config.label_smoothing = 1e-4, 0.1
  config.beam_size, config.length_penalty = 5, 1.0
  config.regularizer.name = regularizer
  config.regularizer.rate = 0.3
  config.log_every_steps = 200
  config.eval_every_epochs = 5.0
  config.checkpoint_every_steps = 2000
  return config
