"""Word-level language-modelling corpora (PTB, WikiText) for Transformer-XL.

A corpus directory holds ``<prefix>.train.txt``, ``<prefix>.valid.txt`` and
``<prefix>.test.txt`` (PTB: ``ptb.*.txt``; WikiText: ``wiki.*.tokens``
named likewise). Tokens are whitespace-separated words plus one ``<eos>`` at
the end of every line, as Mikolov's PTB and the Transformer-XL reference
``data_utils.py`` count them. The vocabulary is built from the training
split, in order of first appearance; a word outside it in valid/test maps to
``<unk>`` when the vocabulary has it, else it is an error.

For segment-level recurrence the token stream is cut into ``batch``
contiguous streams, ``streams[i]`` continuing ``streams[i]`` of the previous
segment, as the reference ``LMOrderedIterator``: segment ``s`` is
``streams[:, s*T : s*T + T]`` with targets shifted by one. The iterator's
position (one integer) is what a checkpoint stores.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Dict, Iterator, List, Tuple

import numpy as np

EOS = "<eos>"
UNK = "<unk>"
SPLITS = ("train", "valid", "test")


@dataclasses.dataclass
class Corpus:
  vocab: Dict[str, int]
  splits: Dict[str, np.ndarray]  # split -> int32 token ids

  @property
  def vocab_size(self) -> int:
    return len(self.vocab)


def _split_file(directory: str, split: str) -> str:
  matches = sorted(glob.glob(os.path.join(directory, f"*.{split}.txt")) +
                   glob.glob(os.path.join(directory, f"*.{split}.tokens")))
  if not matches:
    raise ValueError(
        f"no {split} file in {directory!r}: expected e.g. ptb.{split}.txt "
        f"(unzip ptb.zip there, or point --config.data_dir at the corpus).")
  if len(matches) > 1:
    raise ValueError(f"several {split} files in {directory!r}: {matches}.")
  return matches[0]


def _words(path: str) -> List[str]:
  words = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      words.extend(line.split() + [EOS])
  return words


def load_corpus(directory: str) -> Corpus:
  """Reads the three splits and builds the vocabulary from ``train``."""
  if not os.path.isdir(directory):
    raise ValueError(f"corpus directory {directory!r} does not exist.")
  words = {split: _words(_split_file(directory, split)) for split in SPLITS}
  vocab: Dict[str, int] = {}
  for w in words["train"]:
    vocab.setdefault(w, len(vocab))
  splits = {}
  for split, ws in words.items():
    ids = np.empty(len(ws), np.int32)
    for i, w in enumerate(ws):
      if w in vocab:
        ids[i] = vocab[w]
      elif UNK in vocab:
        ids[i] = vocab[UNK]
      else:
        raise ValueError(f"{split} word {w!r} is not in the training "
                         f"vocabulary and the corpus has no {UNK} token.")
    splits[split] = ids
  return Corpus(vocab, splits)


def batchify(ids: np.ndarray, batch: int) -> np.ndarray:
  """``(batch, L)`` contiguous streams; the ragged tail is dropped."""
  length = len(ids) // batch
  if length < 2:
    raise ValueError(f"{len(ids)} tokens are too few for {batch} streams.")
  return ids[:batch * length].reshape(batch, length)


def num_segments(streams: np.ndarray, seg_len: int) -> int:
  return (streams.shape[1] - 1 + seg_len - 1) // seg_len


def segments(streams: np.ndarray, seg_len: int, start: int = 0
             ) -> Iterator[Tuple[int, np.ndarray, np.ndarray]]:
  """Yields ``(index, inputs, targets)`` from segment ``start`` on.

  ``targets`` are ``inputs`` shifted by one token; the last segment may be
  shorter. ``index`` is the position to store for an exact resume.
  """
  total = streams.shape[1] - 1
  for s in range(start, num_segments(streams, seg_len)):
    lo = s * seg_len
    hi = min(lo + seg_len, total)
    yield s, streams[:, lo:hi], streams[:, lo + 1:hi + 1]
