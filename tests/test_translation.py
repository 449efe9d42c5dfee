"""Translation: the parallel-text reader, sentencepiece ids, the
encoder-decoder's masks and sites, beam search, and the trainer (BLEU,
exact resume, the tokenizer kept across a resume)."""

import gzip
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from dropgraph_jax.data import translation as data
from dropgraph_jax.models import get_model, list_sites, model_kind
from dropgraph_jax.models.transformer_seq2seq import vanilla_policy
from dropgraph_jax.training import beam_search
from dropgraph_jax.training import trainers as train

WORDS = ("haus katze hund baum auto ball buch tisch stuhl fenster tuer "
         "garten").split()
ENGLISH = dict(zip(WORDS, ("house cat dog tree car ball book table chair "
                           "window door garden").split()))


def _corpus(root, sizes=(("train", 400), ("val", 40), ("test", 40)),
            gz=True):
  """A word-for-word 'German' -> 'English' corpus in Multi30k's layout."""
  rng = np.random.default_rng(0)
  os.makedirs(os.path.join(root, "raw"), exist_ok=True)
  for split, n in sizes:
    de = [" ".join(rng.choice(WORDS, rng.integers(2, 6))) for _ in range(n)]
    en = [" ".join(ENGLISH[w] for w in s.split()) for s in de]
    for lang, lines in (("de", de), ("en", en)):
      path = os.path.join(root, "raw", f"{split}.{lang}")
      with (gzip.open(path + ".gz", "wt") if gz else open(path, "w")) as f:
        f.write("\n".join(lines) + "\n")
  return root


def test_reader_finds_both_layouts_and_refuses_misaligned_files(tmp_path):
  root = _corpus(str(tmp_path / "a"))
  src, tgt = data.read_parallel(root, "val", "de", "en")
  assert len(src) == len(tgt) == 40
  assert " ".join(ENGLISH[w] for w in src[0].split()) == tgt[0]
  plain = _corpus(str(tmp_path / "b"), gz=False)
  assert data.read_parallel(plain, "val", "de", "en") == (src, tgt)
  with open(os.path.join(plain, "raw", "val.en"), "a") as f:
    f.write("one more line\n")
  with pytest.raises(ValueError, match="has 40 lines but .*val.en has 41"):
    data.read_parallel(plain, "val", "de", "en")
  with pytest.raises(ValueError, match=r"no test\.fr"):
    data.read_parallel(plain, "test", "de", "fr")


def test_sentencepiece_ids_and_fixed_length_encoding(tmp_path):
  root = _corpus(str(tmp_path))
  src, tgt = data.read_parallel(root, "train", "de", "en")
  path = str(tmp_path / "spm.model")
  data.train_sentencepiece(src + tgt, 64, path)
  sp = data.load_sentencepiece(path)
  assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (0, 1, 2, 3)
  enc = data.encode(sp, src, tgt, 12, drop_long=True)
  assert enc.total == 400 and 0 < len(enc.src) <= 400
  row = enc.tgt_out[0][enc.tgt_out[0] != data.PAD].tolist()
  assert row[-1] == data.EOS and sp.decode(row[:-1]) == enc.references[0]
  np.testing.assert_array_equal(enc.tgt_in[:, 0], data.BOS)
  np.testing.assert_array_equal(enc.tgt_in[:, 1:][enc.tgt_out[:, :-1] > 3],
                                enc.tgt_out[:, :-1][enc.tgt_out[:, :-1] > 3])
  short = data.encode(sp, src, tgt, 6, drop_long=False)  # truncates
  assert len(short.src) == 400 and short.src.shape == (400, 6)


def _tiny(policy=None):
  return get_model("transformer_seq2seq_tiny", policy=policy)


@pytest.mark.slow
def test_decoder_is_causal_and_padding_is_invisible():
  model = _tiny()
  src = jnp.array([[5, 6, 7, 3, 0, 0]])
  tgt = jnp.array([[2, 8, 9, 10]])
  # Compiled whole (op by op is slower).
  v = jax.jit(lambda k: model.init(k, src, tgt, train=False))(
      jax.random.key(0))
  forward = jax.jit(lambda s, t: model.apply(v, s, t, train=False))
  base = forward(src, tgt)
  later = forward(src, tgt.at[0, 2].set(11))
  np.testing.assert_allclose(base[0, :2], later[0, :2], atol=1e-6)
  assert not np.allclose(base[0, 2:], later[0, 2:])
  longer = forward(jnp.pad(src, ((0, 0), (0, 3))), tgt)
  np.testing.assert_allclose(base, longer, atol=1e-5)
  memory, mask = jax.jit(lambda s: model.apply(v, s, method="encode"))(src)
  decoded = jax.jit(lambda m, k, t: model.apply(v, m, k, t, method="decode"))
  np.testing.assert_allclose(decoded(memory, mask, tgt), base, atol=1e-6)
  assert model_kind("transformer_seq2seq_tiny") == "translation"


def test_sites_and_vaswani_dropout_placement():
  tokens = jnp.zeros((1, 8), jnp.int32)
  sites = list_sites(_tiny(), tokens.shape, jnp.int32, tgt_in=tokens)
  assert "encoder/embeddings" in sites and "decoder/embeddings" in sites
  assert "decoder/layer1/cross_attn/softmax" in sites
  assert len(sites) == 2 + 2 * 6 + 2 * 11
  policy = vanilla_policy(sites, 0.3)
  assert sorted(policy.sites) == sorted(
      s for s in sites if s.endswith(("embeddings", "output", "residual")))
  assert len(vanilla_policy(sites, 0.3, attention=0.1).sites) == 12 + 6


@pytest.mark.slow
def test_eval_output_is_independent_of_the_policy_and_training_is_not():
  tokens = jnp.zeros((1, 8), jnp.int32)
  sites = list_sites(_tiny(), tokens.shape, jnp.int32, tgt_in=tokens)
  regularized = _tiny(vanilla_policy(sites, 0.3, attention=0.2))
  src = jax.random.randint(jax.random.key(0), (2, 8), 4, 64)
  tgt = jax.random.randint(jax.random.key(1), (2, 8), 4, 64)
  v = regularized.init(jax.random.key(2), src, tgt, train=False)
  v = {k: x for k, x in v.items() if k != "sites"}
  np.testing.assert_array_equal(regularized.apply(v, src, tgt, train=False),
                                _tiny().apply(v, src, tgt, train=False))
  noisy = regularized.apply(v, src, tgt, train=True,
                            rngs={"dropout": jax.random.key(3)})
  assert not np.allclose(noisy, _tiny().apply(v, src, tgt, train=False))


def _table_logits(table):
  """A decoder whose next-token scores depend only on the last token."""
  table = jnp.log(jnp.asarray(table, jnp.float32))

  def logits_fn(prefixes):
    return table[prefixes]
  return logits_fn


@pytest.mark.slow
def test_beam_search_finds_what_greedy_misses():
  # Tokens: 0 pad, 1 bos, 2 eos, 3 'a', 4 'b'. From bos, 'a' (0.6) beats
  # 'b' (0.4); but 'a' then spreads out while 'b' -> eos is certain.
  p = np.full((5, 5), 1e-6)
  p[1, 3], p[1, 4] = 0.6, 0.4
  p[3, 3], p[3, 4], p[3, 2] = 0.35, 0.35, 0.3
  p[4, 2] = 1.0
  p[2, 2] = 1.0
  fn = _table_logits(p)
  greedy = beam_search.beam_search(fn, 1, 4, 1, 1, 2, 0, alpha=0.0)
  beam = beam_search.beam_search(fn, 1, 4, 3, 1, 2, 0, alpha=0.0)
  assert greedy[0, 0] == 3
  np.testing.assert_array_equal(beam[0], [4, 2, 0])
  # Two sentences of a batch are searched independently.
  both = beam_search.beam_search(fn, 2, 4, 3, 1, 2, 0, alpha=0.0)
  np.testing.assert_array_equal(both, np.stack([beam[0], beam[0]]))


def _config(root, **overrides):
  config = default.get_config()
  config.update_from_flattened_dict({
      "model": "transformer_seq2seq_tiny", "dataset": f"parallel:{root}",
      "eval_split": "val", "test_split": "test", "vocab_size": 64,
      "max_len": 12, "batch_size": 16, "eval_batch_size": 16,
      "num_train_steps": 8, "optimizer": "adam", "learning_rate": 3e-3,
      "lr_schedule": "constant", "weight_decay": 0.0, "label_smoothing": 0.1,
      "log_every_steps": 2, "eval_every_epochs": 0.0,
      "checkpoint_every_steps": 3, "async_checkpointing": False,
      "train_eval_examples": 16, "bleu_examples": 8, "beam_size": 2,
      "regularizer.name":
      "dropout", **overrides})
  return config


@pytest.mark.slow
def test_trainer_writes_bleu_and_resumes_exactly(tmp_path):
  root = _corpus(str(tmp_path / "corpus"))
  straight = train.train_and_evaluate(_config(root), str(tmp_path / "a"))
  with open(tmp_path / "a" / "results.json") as f:
    saved = json.load(f)
  assert 0.0 <= saved["test_bleu"] <= 100.0
  assert saved["policy_sites"] == 12 and saved["vocab_size"] == 64
  assert {"valid_perplexity", "train_eval_bleu", "test_examples"} <= set(
      saved)
  killed = str(tmp_path / "b")
  with pytest.raises(train.Preempted):
    train.train_and_evaluate(_config(root, preempt_at_step=5), killed)
  spm_time = os.path.getmtime(os.path.join(killed, "spm.model"))
  resumed = train.train_and_evaluate(_config(root), killed)
  assert os.path.getmtime(os.path.join(killed, "spm.model")) == spm_time
  chex.assert_trees_all_equal(straight["state"].params,
                              resumed["state"].params)


def test_bad_translation_configs_name_the_field(tmp_path):
  root = _corpus(str(tmp_path / "corpus"), sizes=(("train", 40),))
  with pytest.raises(ValueError, match="config.dataset must be 'parallel"):
    train.train_and_evaluate(_config(root, dataset="digits"),
                             str(tmp_path / "a"))
  with pytest.raises(ValueError, match="regularizer.name must be one of"):
    train.train_and_evaluate(_config(root, **{"regularizer.name":
                                              "drop_block"}),
                             str(tmp_path / "b"))
  with pytest.raises(ValueError, match="config.beam_size"):
    train.train_and_evaluate(_config(root, beam_size=0), str(tmp_path / "c"))
