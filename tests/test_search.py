"""AutoDropout search: estimator, controller, queues, workers, resume (issue 7)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs.search import digits as digits_search
from dropgraph_jax.models import get_model, list_sites
from dropgraph_jax.patterns import Policy
from dropgraph_jax.search import controller as ctrl
from dropgraph_jax.search import engine, reinforce, run
from dropgraph_jax.search import space as space_lib


class _Bandit:
  """A one-token space (an n-armed bandit) for controller checks."""
  sites = ()

  def __init__(self, arms):
    self.arms = arms

  def vocab_sizes(self):
    return [self.arms]

  def decode(self, tokens):
    return Policy({})


def _search_config(**overrides):
  config = digits_search.get_config()
  config.search.backend = "inline"
  config.search.compare_random = False
  config.proxy.name = "synthetic"
  config.proxy.noise = 0.05
  config.update_from_flattened_dict(overrides)
  return config


def test_reinforce_gradient_matches_a_hand_computed_case():
  theta = jnp.array([[0.2, -0.1, 0.4], [0.0, 0.3, -0.5]])

  def log_prob(params, tokens):  # independent categoricals per position
    logp = jax.nn.log_softmax(params, -1)
    return jnp.sum(logp[jnp.arange(2)[None], tokens], -1)

  tokens = jnp.array([[2, 1], [0, 0]])
  rewards = jnp.array([0.9, 0.3])
  baseline = 0.5
  p = np.asarray(jax.nn.softmax(theta, -1))

  def hand(weights):
    grad = np.zeros((2, 3))
    for i, (r, w) in enumerate(zip(np.asarray(rewards), weights)):
      onehot = np.eye(3)[np.asarray(tokens[i])]  # (2, 3)
      grad += (r - baseline) * w * (onehot - p)
    return -grad / 2  # gradient of the loss = -grad J

  # Nothing stale: old log-probs are the current ones, every weight is 1.
  current = log_prob(theta, tokens)
  grad, aux = jax.grad(reinforce.surrogate_loss, argnums=1, has_aux=True)(
      log_prob, theta, tokens, current, rewards, baseline)
  np.testing.assert_allclose(np.asarray(aux["importance_weight"]), [1, 1],
                             rtol=1e-6)
  np.testing.assert_allclose(np.asarray(grad), hand([1.0, 1.0]), rtol=1e-5,
                             atol=1e-7)
  # Stale samples: weights P(r; theta) / P(r; theta_i), computed by hand.
  old = current + jnp.array([np.log(2.0), -np.log(4.0)])
  grad, aux = jax.grad(reinforce.surrogate_loss, argnums=1, has_aux=True)(
      log_prob, theta, tokens, old, rewards, baseline)
  np.testing.assert_allclose(np.asarray(aux["importance_weight"]), [0.5, 4.0],
                             rtol=1e-5)
  np.testing.assert_allclose(np.asarray(grad), hand([0.5, 4.0]), rtol=1e-5,
                             atol=1e-7)
  _, aux = reinforce.surrogate_loss(log_prob, theta, tokens, old, rewards,
                                    baseline, max_weight=2.0)
  np.testing.assert_allclose(np.asarray(aux["importance_weight"]), [0.5, 2.0],
                             rtol=1e-5)
  assert reinforce.update_baseline(None, [1.0, 3.0], 0.9) == 2.0
  assert reinforce.update_baseline(2.0, [4.0], 0.5) == 3.0


@pytest.mark.slow
def test_controller_samples_valid_tokens_with_their_log_probs():
  cfg = ctrl.ControllerConfig(vocab_sizes=(3, 1, 5, 2), d_model=16,
                              n_layer=1, n_head=2, d_ff=16)
  params = ctrl.init(cfg, jax.random.key(0))
  tokens, lp = ctrl.sample(cfg, params, jax.random.key(1), 64)
  assert tokens.shape == (64, 4)
  assert np.all(np.asarray(tokens) < np.array([3, 1, 5, 2]))
  np.testing.assert_allclose(np.asarray(lp),
                             np.asarray(ctrl.log_prob(cfg, params, tokens)),
                             rtol=1e-5, atol=1e-5)
  # Near-uniform at initialisation: log P close to -log(3 * 1 * 5 * 2).
  assert abs(float(jnp.mean(lp)) + np.log(30)) < 0.1
  # Causality: position t's distribution ignores tokens at t and later.
  logits = ctrl.Controller(cfg).apply({"params": params}, tokens)
  changed = tokens.at[:, 2:].set(0)
  logits2 = ctrl.Controller(cfg).apply({"params": params}, changed)
  np.testing.assert_allclose(np.asarray(logits[:, :3]),
                             np.asarray(logits2[:, :3]), rtol=1e-5)


@pytest.mark.slow
def test_controller_learns_the_better_arm(tmp_path):
  config = _search_config(**{"search.num_jobs": 800, "search.capacity": 8,
                             "search.minibatch": 4,
                             "search.learning_rate": 0.01,
                             "search.checkpoint_every": 400,
                             "proxy.noise": 0.3})
  space = _Bandit(2)
  pcfg = config.proxy.to_dict()
  pcfg["target"] = [1]  # arm 1 pays 1 (+ noise), arm 0 pays 0 (+ noise)
  search = engine.Search(space, config.search, config.controller.to_dict(),
                         pcfg, str(tmp_path))
  result = search.run()
  assert result.updates == 200
  cfg = search.ccfg
  p_arm1 = float(jnp.exp(ctrl.log_prob(cfg, result.params,
                                       jnp.array([[1]], jnp.int32))[0]))
  assert p_arm1 > 0.9
  late = [j["tokens"][0] for j in result.jobs[-100:]]
  assert np.mean(late) > 0.85
  updates = [json.loads(row) for row in
             (tmp_path / "updates.jsonl").read_text().splitlines()]
  # C = 8 > M = 4: some updates use stale samples, reweighted (not all 1).
  assert max(u["staleness_mean"] for u in updates) > 0
  assert any(abs(u["importance_weight_mean"] - 1) > 1e-3 for u in updates)


@pytest.mark.slow
def test_search_killed_midway_resumes_to_the_same_result(tmp_path):
  config = _search_config(**{"search.num_jobs": 24, "search.capacity": 6,
                             "search.minibatch": 4,
                             "search.checkpoint_every": 3})
  straight = run.run_search(config, str(tmp_path / "a"))
  killed = _search_config(**{"search.num_jobs": 24, "search.capacity": 6,
                             "search.minibatch": 4,
                             "search.checkpoint_every": 3,
                             "search.preempt_after_jobs": 11})
  with pytest.raises(engine.SearchPreempted):
    run.run_search(killed, str(tmp_path / "b"))
  partial = engine.read_jobs(str(tmp_path / "b" / "reinforce" /
                                 "jobs.jsonl"))
  assert len(partial) == 11
  resumed = run.run_search(config, str(tmp_path / "b"))
  assert resumed == {k: {**v, "best_policy": v["best_policy"].replace(
      str(tmp_path / "a"), str(tmp_path / "b"))} for k, v in
                     straight.items()}
  a = engine.read_jobs(str(tmp_path / "a" / "reinforce" / "jobs.jsonl"))
  b = engine.read_jobs(str(tmp_path / "b" / "reinforce" / "jobs.jsonl"))
  assert [(j["id"], j["tokens"], j["reward"]) for j in a] == [
      (j["id"], j["tokens"], j["reward"]) for j in b]
  assert sorted(j["id"] for j in b) == list(range(24))  # none twice
  upd_a = (tmp_path / "a" / "reinforce" / "updates.jsonl").read_text()
  upd_b = (tmp_path / "b" / "reinforce" / "updates.jsonl").read_text()
  assert upd_a == upd_b


@pytest.mark.slow
def test_tiny_digits_search_end_to_end(tmp_path):
  config = digits_search.get_config()
  config.search.backend = "inline"
  config.search.num_jobs = 3
  config.search.capacity = 2
  config.search.minibatch = 2
  config.search.children_per_job = 2  # the vmapped path in the engine
  config.proxy.steps = 4
  config.proxy.batch_size = 32
  summary = run.run_search(config, str(tmp_path))
  assert set(summary) == {"reinforce", "random"}
  assert summary["reinforce"]["updates"] == 1
  assert all(0.0 <= s["best_reward"] <= 1.0 for s in summary.values())
  lines = (tmp_path / "best_so_far.csv").read_text().splitlines()
  assert lines[0] == "job,reinforce,random" and len(lines) == 4
  assert (tmp_path / "best_so_far.png").stat().st_size > 1000
  policy = Policy.load(summary["reinforce"]["best_policy"])
  sites = list_sites(get_model("resnet_digits"), (1, 8, 8, 1))
  policy.validate_sites(sites)  # loadable by the training configs
  jobs = engine.read_jobs(str(tmp_path / "reinforce" / "jobs.jsonl"))
  assert all(Policy.from_dict(j["policy"]) is not None for j in jobs)


def test_spaces_decode_to_the_papers_patterns():
  conv = space_lib.ConvSpace(("a/bn1", "b/bn2"))
  assert conv.vocab_sizes() == [6, 4, 4, 6, 4, 4, 2, 2] * 2
  policy = conv.decode([3, 1, 2, 2, 1, 0, 1, 1] + [0] * 8)
  assert list(policy.sites) == ["a/bn1"]  # size 0: no pattern at b/bn2
  p = policy.sites["a/bn1"]
  assert (p.height, p.width, p.stride_h, p.repeats_w, p.rotate, p.shear_x,
          p.share_c, p.residual) == (3, 3, 2, 3, 30.0, 0.1, True, True)
  sites = list_sites(get_model("transformer_xl_tiny"), (1, 12),
                     dtype=jnp.int32)
  tspace = space_lib.transformer_space_for(sites)
  assert len(tspace.vocab_sizes()) == 24  # 4 tokens x 6 sub-layers
  tokens = [2, 1, 1, 0] + [0, 0, 0, 0] * 5
  tpolicy = tspace.decode(tokens)
  assert set(tpolicy.sites) == {"layer0/attn/query", "layer1/attn/query"}
  q = tpolicy.sites["layer1/attn/query"]
  assert (q.size, q.stride, q.share_t, q.share_c) == (2, 1, True, False)
  with pytest.raises(ValueError, match="expected 24 tokens"):
    tspace.decode([0])
  with pytest.raises(ValueError, match="token 0 must be in"):
    tspace.decode([99] + [0] * 23)


@pytest.mark.slow
def test_bad_search_input_is_refused_before_any_job(tmp_path):
  with pytest.raises(ValueError, match="larger than the capacity"):
    run.run_search(_search_config(**{"search.minibatch": 9,
                                     "search.capacity": 8}), str(tmp_path))
  with pytest.raises(ValueError, match="no site matches"):
    run.run_search(_search_config(**{"space.site_regex": "^nowhere$"}),
                   str(tmp_path))
  with pytest.raises(ValueError, match="children_per_job must be in"):
    run.run_search(_search_config(**{"search.children_per_job": 9}),
                   str(tmp_path))
  with pytest.raises(ValueError, match="search.backend must be one of"):
    run.run_search(_search_config(**{"search.backend": "slurm"}),
                   str(tmp_path))
  config = _search_config()
  config.proxy.name = "image"
  config.proxy.model = "resnet_tiny_typo"
  with pytest.raises(ValueError, match="Unknown model"):
    run.run_search(config, str(tmp_path))
  config.proxy.model = "resnet_digits"
  config.proxy.dataset = "digits"
  config.proxy.steps = 0
  with pytest.raises(ValueError, match="cannot train"):
    run.run_search(config, str(tmp_path))
  config = _search_config(**{"search.backend": "ray",
                             "search.ray_address": "127.0.0.1:1"})
  with pytest.raises(ValueError, match="unreachable|needs Ray"):
    run.run_search(config, str(tmp_path))
  assert not os.path.exists(tmp_path / "reinforce" / "jobs.jsonl")


def test_conv_space_fits_every_pattern_to_its_feature_map():
  from dropgraph_jax.models.sites import site_shapes
  from dropgraph_jax.patterns import conv_pattern_dropout
  shapes = site_shapes(get_model("resnet_digits"), (1, 8, 8, 1))
  assert shapes["stage2/block1/bn2"] == (1, 4, 4, 32)
  space = space_lib.conv_space_for(shapes, r"^stage2/.*/bn\d$",
                                   size=(5,), stride=(4,), repeat=(3,))
  policy = space.decode([0] * len(space.vocab_sizes()))
  x = jnp.ones((2, 4, 4, 3))
  for pattern in policy.sites.values():
    assert (pattern.height, pattern.repeats_h) == (4, 1)
    conv_pattern_dropout(x, key=jax.random.key(0), pattern=pattern,
                         train=True)  # fits: no ValueError


@pytest.mark.slow
def test_search_command_line_at_tiny_size(tmp_path):
  import subprocess
  import sys
  root = os.path.join(os.path.dirname(__file__), "..")
  args = [sys.executable, "-m", "dropgraph_jax.search",
          "--config", os.path.join(root, "configs", "search", "digits.py"),
          "--workdir", str(tmp_path), "--config.search.backend=inline",
          "--config.search.num_jobs=2", "--config.search.capacity=2",
          "--config.search.minibatch=2", "--config.proxy.steps=2",
          "--config.proxy.batch_size=16"]
  done = subprocess.run(args, cwd=root, capture_output=True, text=True,
                        timeout=600, env={**os.environ, "JAX_PLATFORMS":
                                          "cpu"})
  assert done.returncode == 0, done.stderr[-2000:]
  assert "reinforce" in done.stdout and "random" in done.stdout
  assert (tmp_path / "reinforce" / "best_policy.json").exists()
  bad = subprocess.run(args[:-3] + ["--config.search.minibatch=3"], cwd=root,
                       capture_output=True, text=True, timeout=600)
  assert bad.returncode == 2 and "larger than the capacity" in bad.stderr


def test_every_search_config_builds_its_space_and_proxy():
  import glob
  import importlib
  root = os.path.join(os.path.dirname(__file__), "..")
  names = sorted(os.path.basename(p)[:-3] for p in glob.glob(
      os.path.join(root, "configs", "search", "*.py"))
      if not p.endswith("__init__.py"))
  assert {"digits", "cifar_wrn28_2", "ptb_transformer_xl"} <= set(names)
  sizes = {}
  for name in names:
    config = importlib.import_module(f"configs.search.{name}").get_config()
    space = run.build_space(config.space)
    engine.check_search_config(config.search)
    sizes[name] = len(space.vocab_sizes())
    if config.proxy.name == "trainer":
      run.proxy_config(config, space)  # the config file exists
  assert sizes["cifar_wrn28_2"] == 8 * 24  # every BN output of WRN-28-2
  assert sizes["ptb_transformer_xl"] == 4 * 6


@pytest.mark.slow
def test_entropy_gradient_is_finite_with_masked_choices():
  """Positions with fewer choices than the largest vocabulary mask the rest
  to -inf; the entropy bonus must not back-propagate 0 * -inf (NaN)."""
  cfg = ctrl.ControllerConfig(vocab_sizes=(3, 1, 5, 2), d_model=16,
                              n_layer=1, n_head=2, d_ff=32)
  params = ctrl.init(cfg, jax.random.key(0))
  tokens, _ = ctrl.sample(cfg, params, jax.random.key(1), 8)
  value, grads = jax.jit(jax.value_and_grad(
      lambda p: ctrl.entropy(cfg, p, tokens)))(params)
  assert np.isfinite(float(value)) and float(value) > 0
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


@pytest.mark.slow
def test_a_nan_controller_update_stops_the_search(tmp_path, monkeypatch):
  config = _search_config(**{"search.learning_rate": float("nan"),
                             "search.num_jobs": 12})
  with pytest.raises(ValueError, match="search.learning_rate must be"):
    run.run_search(config, str(tmp_path / "refused"))  # before any job
  # An update that turns the controller's weights to NaN at run time.
  monkeypatch.setattr(engine.optax, "adam",
                      lambda _: optax.scale(float("nan")))
  config = _search_config(**{"search.num_jobs": 12})
  with pytest.raises(FloatingPointError, match="search update 1: .*not "
                     "finite"):
    run.run_search(config, str(tmp_path))
