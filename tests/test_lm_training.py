"""Language-model training: Transformer-XL on a tiny corpus (issue 6)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import ptb_transformer_xl
from dropgraph_jax.data import text as text_data
from dropgraph_jax.models import get_model
from dropgraph_jax.training import language_model as lm_train
from dropgraph_jax.training import trainers as train


def _write_corpus(root, words=40, lines=(120, 20, 20), seed=0):
  """A corpus with learnable structure: each line counts up from a random
  word (w, w+1, w+2, ...), so the next word is predictable in context."""
  rng = np.random.default_rng(seed)
  for split, count in zip(("train", "valid", "test"), lines):
    with open(os.path.join(root, f"toy.{split}.txt"), "w") as f:
      for _ in range(count):
        start = int(rng.integers(0, words))
        f.write(" ".join(f"w{(start + i) % words}"
                         for i in range(int(rng.integers(4, 9)))) + "\n")
  return str(root)


def _config(data_dir, **overrides):
  config = ptb_transformer_xl.get_config("variational_dropout")
  config.model = "transformer_xl_tiny"
  config.data_dir = data_dir
  config.batch_size = 8
  config.eval_batch_size = 8
  config.seq_len = 6
  config.mem_len = 6
  config.num_train_steps = 10
  config.learning_rate = 3e-3
  config.warmup_epochs = 0.0
  config.log_every_steps = 5
  config.eval_every_epochs = 0.0
  config.checkpoint_every_steps = 4
  config.async_checkpointing = False
  config.update_from_flattened_dict(overrides)
  return config


@pytest.mark.slow
def test_lm_training_lowers_perplexity_and_writes_results(tmp_path):
  data = _write_corpus(tmp_path)
  short = train.train_and_evaluate(_config(data, num_train_steps=1),
                                   str(tmp_path / "short"))
  longer = train.train_and_evaluate(_config(data, num_train_steps=60),
                                    str(tmp_path / "long"))
  assert longer["policy_sites"] > 0
  assert longer["valid_perplexity"] < 0.7 * short["valid_perplexity"]
  saved = json.loads((tmp_path / "long" / "results.json").read_text())
  assert saved["test_perplexity"] == pytest.approx(longer["test_perplexity"])
  # The synthetic corpus repeats one text: the trained model fits its
  # training head better than the untrained one, in eval mode.
  assert longer["train_eval_perplexity"] < 0.7 * short["train_eval_perplexity"]
  lines = [json.loads(row) for row in
           (tmp_path / "long" / "log.txt").read_text().splitlines()]
  assert {"train/perplexity", "train/tokens_per_sec",
          "train/learning_rate"} <= set(lines[0])
  assert "test/perplexity" in lines[-1]


@pytest.mark.slow
def test_lm_kill_and_resume_gives_the_uninterrupted_parameters(tmp_path):
  data = _write_corpus(tmp_path)
  straight = train.train_and_evaluate(_config(data), str(tmp_path / "a"))
  killed = str(tmp_path / "b")
  with pytest.raises(train.Preempted):
    train.train_and_evaluate(_config(data, preempt_at_step=7), killed)
  resumed = train.train_and_evaluate(_config(data), killed)
  for a, b in zip(jax.tree.leaves(straight["state"]),
                  jax.tree.leaves(resumed["state"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert straight["test_perplexity"] == resumed["test_perplexity"]


@pytest.mark.slow
def test_memory_is_carried_between_steps_and_reset_each_epoch(tmp_path):
  data = _write_corpus(tmp_path)
  streams = text_data.batchify(text_data.load_corpus(data).splits["train"], 8)
  per_epoch = (streams.shape[1] - 1) // 6
  # mem_len 12 > seq_len 6: without the reset at the first segment of
  # epoch 2, mem_valid would be 12 after this step, not 6.
  result = train.train_and_evaluate(
      _config(data, mem_len=12, num_train_steps=per_epoch + 1),
      str(tmp_path / "r"))
  state = result["state"]
  assert int(state.mem_valid) == 6
  assert all(m.shape == (8, 12, 32) for m in state.mems)
  assert all(float(jnp.abs(m[:, -6:]).sum()) > 0 for m in state.mems)


@pytest.mark.slow
def test_zero_memory_with_mem_valid_zero_equals_no_memory():
  model = get_model("transformer_xl_tiny")
  tokens = jax.random.randint(jax.random.key(0), (2, 12), 0, 97)
  # Compiled whole (op by op is slower).
  variables = jax.jit(lambda k: model.init(k, tokens, train=False))(
      jax.random.key(1))
  plain, _ = jax.jit(lambda v: model.apply(v, tokens, train=False))(
      variables)
  zeros = model.initial_mems(2, 12)
  masked, _ = jax.jit(lambda v, m: model.apply(
      v, tokens, train=False, mems=m, mem_valid=jnp.int32(0)))(
          variables, zeros)
  np.testing.assert_allclose(np.asarray(plain), np.asarray(masked),
                             rtol=1e-5, atol=1e-5)


def test_lm_bad_input(tmp_path):
  data = _write_corpus(tmp_path)
  with pytest.raises(ValueError, match="for language models"):
    train.train_and_evaluate(_config(data, **{"regularizer.name":
                                              "drop_block"}),
                             str(tmp_path / "x"))
  with pytest.raises(ValueError, match="corpus directory"):
    train.train_and_evaluate(_config(""), str(tmp_path / "y"))
  with pytest.raises(ValueError, match="too short"):
    train.train_and_evaluate(_config(data, batch_size=8, seq_len=4000),
                             str(tmp_path / "z"))
  with pytest.raises(ValueError, match="policy_file is empty"):
    lm_train.build_lm_policy(_config(data, **{"regularizer.name": "policy"}),
                             40)


def test_autodropout_paper_policy_has_the_reported_shapes():
  from dropgraph_jax.models import list_sites
  from dropgraph_jax.models.transformer_xl import autodropout_paper_policy
  from dropgraph_jax.patterns import RegularizerSpec, TransformerPattern
  sites = list_sites(get_model("transformer_xl_tiny"), (1, 12),
                     dtype=jnp.int32)
  policy = autodropout_paper_policy(sites, 12)
  attn = policy.sites["layer1/attn/key"]
  assert isinstance(attn, TransformerPattern)
  assert (attn.size, attn.stride, attn.share_t, attn.share_c) == (
      12, 0, True, False)  # variational-like: one mask per sequence
  ffn = policy.sites["layer0/residual"]
  assert (ffn.size, ffn.stride, ffn.share_c) == (1, 0, True)  # word dropout
  assert policy.sites["embeddings"] == RegularizerSpec(
      "variational_dropout", {"rate": 0.4})
  assert len(policy) == len(sites)  # every site regularized
  # The trainer takes the rates from the config.
  config = _config("unused", **{"regularizer.name": "autodropout_paper",
                                "regularizer.autodropout.attention": 0.125,
                                "regularizer.variational.embedding": 0.2})
  built = lm_train.build_lm_policy(config, vocab_size=97)
  assert built.sites["layer1/attn/key"].rate == 0.125
  assert built.sites["layer0/residual"].rate == 0.25
  assert built.sites["embeddings"].options["rate"] == 0.2


@pytest.mark.slow
def test_a_zero_rate_site_is_the_identity_under_a_traced_rate_factor():
  """Regression: a rate-0 site used to become a traced rate 0 * factor and
  fail with 'key is required' (a variational config with one rate at 0)."""
  from dropgraph_jax.models import list_sites
  from dropgraph_jax.models.transformer_xl import variational_policy
  tokens = jnp.arange(12, dtype=jnp.int32).reshape(2, 6)
  sites = list_sites(get_model("transformer_xl_tiny"), (2, 6),
                     dtype=jnp.int32)
  plain = get_model("transformer_xl_tiny")
  zero = get_model("transformer_xl_tiny", policy=variational_policy(
      sites, embedding=0.0, hidden=0.0, attention=0.0, final=0.0))
  variables = plain.init(jax.random.key(0), tokens, train=False)
  expected, _ = plain.apply(variables, tokens, train=True)
  got, _ = jax.jit(lambda f: zero.apply(variables, tokens, train=True,
                                        rate_factor=f))(jnp.float32(0.5))
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_a_policy_keeps_the_baselines_embedding_and_final_dropout(tmp_path):
  """A searched policy covers the Transformer sub-layers; the embedding and
  the final state keep the variational baseline's dropout unless the
  policy names them, so policy vs baseline compares the patterns alone."""
  from dropgraph_jax.patterns import Policy, RegularizerSpec, TransformerPattern
  pattern = TransformerPattern(size=2, stride=1, share_t=True, rate=0.1)
  path = tmp_path / "policy.json"
  Policy({"layer0/attn/softmax": pattern}).save(str(path))
  config = _config("unused", **{"regularizer.name": "policy",
                                "regularizer.policy_file": str(path),
                                "regularizer.variational.embedding": 0.3})
  built = lm_train.build_lm_policy(config, vocab_size=97)
  assert built.sites["layer0/attn/softmax"] == pattern
  assert built.sites["embeddings"] == RegularizerSpec(
      "variational_dropout", {"rate": 0.3})
  assert built.sites["final"] == RegularizerSpec(
      "variational_dropout", {"rate": 0.4})
  # A policy that names a site keeps its own choice.
  Policy({"embeddings": pattern}).save(str(path))
  assert lm_train.build_lm_policy(config, 97).sites["embeddings"] == pattern
