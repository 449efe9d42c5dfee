"""Word-level LM corpora and contiguous segment streams."""

import numpy as np
import pytest

from dropgraph_jax.data import text as text_data


@pytest.fixture
def corpus_dir(tmp_path):
  (tmp_path / "ptb.train.txt").write_text(
      " the cat sat \n on the mat \n the end \n")
  (tmp_path / "ptb.valid.txt").write_text(" the cat \n")
  (tmp_path / "ptb.test.txt").write_text(" on the dog \n")
  return tmp_path


def test_vocabulary_and_eos_counting(corpus_dir):
  with pytest.raises(ValueError, match="'dog' is not in the training"):
    text_data.load_corpus(str(corpus_dir))
  (corpus_dir / "ptb.train.txt").write_text(
      " the cat sat \n on the mat \n the <unk> \n")
  corpus = text_data.load_corpus(str(corpus_dir))
  # One <eos> per line, vocabulary in order of first appearance.
  assert list(corpus.vocab)[:4] == ["the", "cat", "sat", "<eos>"]
  assert len(corpus.splits["train"]) == 8 + 3  # 8 words, 3 lines
  assert corpus.splits["test"].tolist() == [
      corpus.vocab["on"], corpus.vocab["the"], corpus.vocab["<unk>"],
      corpus.vocab["<eos>"]]


def test_streams_are_contiguous_across_segments():
  ids = np.arange(103, dtype=np.int32)
  streams = text_data.batchify(ids, 4)
  assert streams.shape == (4, 25)
  assert streams[1, 0] == 25  # stream 1 continues where stream 0 ends
  segs = list(text_data.segments(streams, 7))
  assert len(segs) == text_data.num_segments(streams, 7) == 4
  joined = np.concatenate([inp for _, inp, _ in segs], axis=1)
  np.testing.assert_array_equal(joined, streams[:, :-1])
  for _, inp, tgt in segs:
    np.testing.assert_array_equal(tgt, inp + 1)  # next-token targets
  resumed = list(text_data.segments(streams, 7, start=2))
  assert [s for s, _, _ in resumed] == [2, 3]
  np.testing.assert_array_equal(resumed[0][1], segs[2][1])


def test_bad_corpus_errors(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    text_data.load_corpus(str(tmp_path / "missing"))
  with pytest.raises(ValueError, match="no train file.*unzip ptb.zip"):
    text_data.load_corpus(str(tmp_path))
  with pytest.raises(ValueError, match="too few"):
    text_data.batchify(np.arange(5), 4)


def test_wikitext2_layout_and_config(tmp_path):
  import importlib
  for split, text in (("train", " = Title = \n a b <unk> c\n"),
                      ("valid", " a b\n"), ("test", " c zz\n")):
    (tmp_path / f"wiki.{split}.tokens").write_text(text)
  corpus = text_data.load_corpus(str(tmp_path))
  # <eos> per line; an unseen test word maps to <unk> (in the vocabulary).
  assert corpus.vocab["<eos>"] == 2 and "<unk>" in corpus.vocab
  assert corpus.splits["test"].tolist() == [
      corpus.vocab[w] for w in ("c", "<unk>", "<eos>")]
  config = importlib.import_module(
      "configs.wikitext2_transformer_xl").get_config("autodropout_paper")
  assert config.dataset == "wikitext2"
  assert config.regularizer.name == "autodropout_paper"
