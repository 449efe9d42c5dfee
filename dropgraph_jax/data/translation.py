"""Parallel text for translation: readers, sentencepiece, batches.

``config.dataset = 'parallel:ROOT'`` names a folder of sentence-aligned
plain-text files, one sentence per line, ``{split}.{lang}`` or
``{split}.{lang}.gz`` (the layout of fairseq's ``prepare-iwslt14.sh`` and
WMT's prepared files), also looked for under ``ROOT/raw/`` (Multi30k's
release: ``raw/train.de.gz``, ``raw/val.de.gz``,
``raw/test_2016_flickr.de.gz``).

Subwords: one sentencepiece model (BPE, ``vocab_size`` pieces, character
coverage 1.0) trained on both sides of the training split, as fairseq's
joint BPE for IWSLT; ids 0 pad, 1 unk, 2 bos, 3 eos. The trainer saves it
beside the checkpoints and reuses it on resume. Sentences are encoded once
into fixed-length arrays (source + eos; target input bos + target, target
output target + eos, padded to ``max_len``), which fits corpora of IWSLT's
size in memory; WMT-14 needs about 4 GB of host memory this way.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
from typing import List, Sequence, Tuple

import grain
import jax
import numpy as np

from dropgraph_jax.data import hosts

PAD, UNK, BOS, EOS = 0, 1, 2, 3


def _path(root: str, split: str, lang: str) -> str:
  for folder in (root, os.path.join(root, "raw")):
    for name in (f"{split}.{lang}", f"{split}.{lang}.gz"):
      if os.path.isfile(os.path.join(folder, name)):
        return os.path.join(folder, name)
  raise ValueError(f"read_parallel: no {split}.{lang}[.gz] under {root!r} "
                   f"or {root!r}/raw; config.dataset='parallel:ROOT' must "
                   "hold sentence-aligned files per split and language.")


def _lines(path: str) -> List[str]:
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rt", encoding="utf-8") as f:
    return [line.rstrip("\n") for line in f]


def read_parallel(root: str, split: str, src: str, tgt: str
                  ) -> Tuple[List[str], List[str]]:
  """The split's source and target sentences, checked to align."""
  a, b = _path(root, split, src), _path(root, split, tgt)
  source, target = _lines(a), _lines(b)
  if len(source) != len(target):
    raise ValueError(f"read_parallel: {a} has {len(source)} lines but {b} "
                     f"has {len(target)}; the files must be aligned.")
  if not source:
    raise ValueError(f"read_parallel: {a} is empty.")
  return source, target


def train_sentencepiece(texts: Sequence[str], vocab_size: int,
                        model_path: str) -> None:
  """A joint BPE model of ``texts`` written to ``model_path``."""
  import sentencepiece as spm  # pylint: disable=import-outside-toplevel
  prefix = model_path[:-len(".model")] if model_path.endswith(
      ".model") else model_path
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(texts), model_prefix=prefix,
      vocab_size=vocab_size, model_type="bpe", character_coverage=1.0,
      pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
      input_sentence_size=2_000_000, shuffle_input_sentence=False,
      num_threads=1, minloglevel=2)


def load_sentencepiece(model_path: str):
  import sentencepiece as spm  # pylint: disable=import-outside-toplevel
  return spm.SentencePieceProcessor(model_file=model_path)


@dataclasses.dataclass
class Encoded:
  """Fixed-length id arrays of one split (``kept`` of ``total`` pairs)."""
  src: np.ndarray
  tgt_in: np.ndarray
  tgt_out: np.ndarray
  references: List[str]
  total: int


def _pad(rows: Sequence[Sequence[int]], length: int) -> np.ndarray:
  out = np.full((len(rows), length), PAD, np.int32)
  for i, row in enumerate(rows):
    out[i, :len(row)] = row
  return out


def encode(sp, source: Sequence[str], target: Sequence[str], max_len: int,
           drop_long: bool) -> Encoded:
  """Ids of each pair; a pair longer than ``max_len`` is dropped
  (``drop_long``, for training) or truncated (for evaluation, where every
  sentence must be translated)."""
  src_ids = [s + [EOS] for s in sp.encode(list(source))]
  tgt_ids = sp.encode(list(target))
  keep = [i for i in range(len(src_ids)) if not drop_long or (
      len(src_ids[i]) <= max_len and len(tgt_ids[i]) + 1 <= max_len)]
  if not keep:
    raise ValueError(f"encode: no sentence pair fits max_len={max_len}.")
  src = _pad([src_ids[i][:max_len] for i in keep], max_len)
  tgt_in = _pad([([BOS] + tgt_ids[i])[:max_len] for i in keep], max_len)
  tgt_out = _pad([(tgt_ids[i] + [EOS])[:max_len] for i in keep], max_len)
  return Encoded(src, tgt_in, tgt_out, [target[i] for i in keep],
                 len(src_ids))


class _PairSource:
  """grain's random-access protocol over an :class:`Encoded` split."""

  def __init__(self, data: Encoded):
    self.data = data

  def __len__(self) -> int:
    return len(self.data.src)

  def __getitem__(self, i):
    d = self.data
    return {"src": d.src[i], "tgt_in": d.tgt_in[i], "tgt_out": d.tgt_out[i]}


def train_dataset(data: Encoded, *, global_batch: int, seed: int
                  ) -> grain.MapDataset:
  """Infinite shuffled batches of this host's part of each global batch."""
  count = jax.process_count()
  if global_batch % count:
    raise ValueError(f"batch_size {global_batch} is not divisible by the "
                     f"number of hosts {count}.")
  ds = grain.MapDataset.source(_PairSource(data)).shuffle(seed=seed).repeat(
      None)
  ds = hosts.host_slice(ds, global_batch, jax.process_index(), count)
  return ds.batch(global_batch // count, drop_remainder=True)


def eval_batches(data: Encoded, batch: int):
  """This host's share of the pairs (each once over all hosts, see
  :func:`~dropgraph_jax.data.hosts.host_eval_batches`), padded batches
  with a ``mask`` of real pairs."""
  for idx, valid in hosts.host_eval_batches(len(data.src), batch):
    yield {"src": data.src[idx], "tgt_in": data.tgt_in[idx],
           "tgt_out": data.tgt_out[idx], "mask": valid.astype(np.int32)}


__all__ = ["read_parallel", "train_sentencepiece", "load_sentencepiece",
           "encode", "train_dataset", "eval_batches", "Encoded"]
