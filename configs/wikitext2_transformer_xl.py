"""Transformer-XL on WikiText-2, AutoDropout Table 4 (transfer).

The paper transfers its PTB pattern to WikiText-2 and compares it with
variational dropout, without giving the model or training settings; this
config takes ``configs/ptb_transformer_xl.py``'s (the PTB-sized
Transformer-XL, batch 16, segment and memory 70, Adam + cosine, clipping
0.25, 300,000 steps) with WikiText-2's corpus (``wiki.*.tokens``,
vocabulary 33,278, built from the training split). Variants as the PTB
config: ``variational_dropout``, ``autodropout_paper``, ``policy``,
``none``.

    unzip ../shared/datasets/wikitext2.zip -d /tmp/wikitext2
    python -m dropgraph_jax.main \\
        --config configs/wikitext2_transformer_xl.py:autodropout_paper \\
        --workdir runs/wt2_autodropout --config.data_dir=/tmp/wikitext2/WikiText2

Paper (Table 4, WikiText-2 valid / test perplexity): Transformer-XL with
variational dropout 63.9 / 61.4, + AutoDropout 62.7 / 59.9.
"""

from configs import ptb_transformer_xl

REGULARIZERS = ptb_transformer_xl.REGULARIZERS


def get_config(regularizer: str = "variational_dropout"):
  config = ptb_transformer_xl.get_config(regularizer)
  config.dataset = "wikitext2"
  return config
