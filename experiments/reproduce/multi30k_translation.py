"""AutoDropout Table 4 (translation), reduced: Multi30k De-En on a CPU.

    unzip ../shared/datasets/multi30k_de_en.zip -d /tmp/m30k
    python -m experiments.reproduce.multi30k_translation \
        --data /tmp/m30k/Multi30k_de_en --seeds 0,1,2 --steps 2000 \
        --workdir runs/repro_m30k \
        --out experiments/results/repro_multi30k_transformer_cpu.md

Rows: Vaswani's vanilla dropout (``dropout``, the paper's baseline) and
``autodropout_paper`` (the Transformer patterns the AutoDropout paper
describes, at the same rate) on ``configs/multi30k_transformer.py`` with
a smaller model (``--model``, default ``transformer_mini``: 2 + 2 layers
of width 128, a 4,000-piece vocabulary), ``--steps`` steps of
``--batch`` pairs and BLEU (sacrebleu, beam ``--beam``) on the first
``--bleu-examples`` test sentences. Each row also reports BLEU and
perplexity on 500 training pairs, so the reader sees whether the model
could overfit. The paper's numbers are IWSLT-14 De-En BLEU (34.4 -> 35.8):
the expected ordering, not values to match.
"""

from __future__ import annotations

import argparse

from configs import multi30k_transformer
from experiments.reproduce import grid

PAPER = {"dropout": "34.4 (IWSLT-14)", "autodropout_paper": "35.8 (IWSLT-14)"}


def make(regularizer: str, args):
  def config_for(seed: int):
    config = multi30k_transformer.get_config(regularizer)
    config.update_from_flattened_dict({
        "dataset": f"parallel:{args.data}", "model": args.model,
        "vocab_size": args.vocab, "max_len": args.max_len, "seed": seed,
        "num_train_steps": args.steps, "batch_size": args.batch,
        "beam_size": args.beam, "bleu_examples": args.bleu_examples,
        "train_eval_examples": 500, "eval_every_epochs": 0.0,
        "checkpoint_every_steps": 500, "regularizer.rate": args.rate})
    return config
  return config_for


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--data", required=True)
  parser.add_argument("--model", default="transformer_mini")
  parser.add_argument("--vocab", type=int, default=4000)
  parser.add_argument("--max-len", type=int, default=48)
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--rate", type=float, default=0.3)
  parser.add_argument("--beam", type=int, default=4)
  parser.add_argument("--bleu-examples", type=int, default=500)
  parser.add_argument("--regularizers", default="dropout,autodropout_paper")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--out", required=True)
  args = parser.parse_args()
  names = args.regularizers.split(",")
  results = grid.run_grid({n: make(n, args) for n in names},
                          [int(s) for s in args.seeds.split(",")],
                          args.workdir, "test_bleu")
  grid.table(f"Multi30k De-En, {args.model}, {args.steps} steps of "
             f"{args.batch} pairs, dropout rate {args.rate}", results,
             "test_bleu", "test BLEU", PAPER,
             f"BLEU on the first {args.bleu_examples} sentences of "
             f"test_2016_flickr, beam {args.beam}.", args.out, scale=1.0,
             extra={"train_eval_bleu": "train BLEU (500 pairs)",
                    "test_perplexity": "test perplexity"},
             pairs=[(n, "dropout") for n in names if n != "dropout"])


if __name__ == "__main__":
  main()
