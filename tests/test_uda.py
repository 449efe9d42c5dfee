"""UDA: its losses against the formulas, the pattern off in the teacher,
the labelled + unlabelled stream, and the trainer (results, exact resume)."""

import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import digits
from dropgraph_jax.data import images as image_data
from dropgraph_jax.data import semi_supervised
from dropgraph_jax.models import get_model, list_sites
from dropgraph_jax.patterns import ConvPattern, Policy, RegularizerSpec
from dropgraph_jax.training import trainers as train
from dropgraph_jax.training import uda


def test_tsa_thresholds_run_from_one_over_k_to_one():
  for schedule in ("linear", "log", "exp"):
    start = float(uda.tsa_threshold(schedule, 0, 100, 10))
    end = float(uda.tsa_threshold(schedule, 100, 100, 10))
    assert start == pytest.approx(
        {"linear": 0.1, "log": 0.1, "exp": 0.1 + 0.9 * np.exp(-5)}[schedule])
    assert end == pytest.approx(
        {"linear": 1.0, "log": 0.1 + 0.9 * (1 - np.exp(-5)),
         "exp": 1.0}[schedule])
  assert float(uda.tsa_threshold("linear", 50, 100, 10)) == pytest.approx(
      0.55)


def test_annealing_drops_confident_labelled_examples_from_the_loss():
  logits = jnp.array([[5.0, 0.0], [0.0, 0.0], [0.0, 3.0]])
  labels = jnp.array([0, 0, 0])  # p(correct) = 0.993, 0.5, 0.047
  ce = -jax.nn.log_softmax(logits)[jnp.arange(3), labels]
  loss, kept = uda.supervised_loss(logits, labels, 0.9)
  np.testing.assert_allclose(loss, (ce[1] + ce[2]) / 2, rtol=1e-6)
  assert float(kept) == pytest.approx(2 / 3)
  grad = jax.grad(lambda z: uda.supervised_loss(z, labels, 0.9)[0])(logits)
  np.testing.assert_array_equal(grad[0], 0.0)
  plain, _ = uda.supervised_loss(logits, labels, None)
  np.testing.assert_allclose(plain, jnp.mean(ce), rtol=1e-6)


def test_consistency_is_the_masked_kl_to_the_sharpened_target():
  rng = np.random.default_rng(0)
  teacher = jnp.asarray(rng.normal(size=(6, 4)) * 2, jnp.float32)
  student = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
  loss, confident = uda.consistency_loss(teacher, student, 0.4, 0.6)
  p = np.asarray(jax.nn.softmax(teacher / 0.4))
  q = np.asarray(jax.nn.log_softmax(student))
  mask = np.asarray(jax.nn.softmax(teacher)).max(-1) > 0.6
  expected = np.mean((p * (np.log(p) - q)).sum(-1) * mask)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  assert float(confident) == pytest.approx(mask.mean())
  # The targets get no gradient; identical logits at T = 1 give zero loss.
  assert not np.any(jax.grad(lambda t: uda.consistency_loss(
      t, student, 0.4, 0.0)[0])(teacher))
  assert float(uda.consistency_loss(student, student, 1.0, 0.0)[0]) == \
      pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("spec", [
    RegularizerSpec("dropgraph", {"rate": 0.3, "block_size": 2,
                                  "clip_block_size": True}),
    ConvPattern(height=2, width=2, stride_h=2, stride_w=2, prob=0.3)])
@pytest.mark.slow
def test_the_teacher_is_the_student_without_its_regularizer(spec):
  x = jax.random.normal(jax.random.key(0), (4, 16, 16, 3))
  sites = list_sites(get_model("resnet_tiny"), x.shape)
  student = get_model("resnet_tiny", policy=Policy(
      {s: spec for s in sites if s.startswith("stage3/block0/relu")}))
  teacher = get_model("resnet_tiny")
  variables = jax.jit(lambda k: student.init(k, x, train=False))(
      jax.random.key(1))
  variables = {k: v for k, v in variables.items() if k != "sites"}
  view = uda.teacher_view(teacher, (1, 16, 16, 3))(variables)
  # A regularizer's own weights (DropGraph's graph) are left out.
  assert len(jax.tree.leaves(view)) <= len(jax.tree.leaves(variables))
  assert (len(jax.tree.leaves(view)) < len(jax.tree.leaves(variables))) == (
      isinstance(spec, RegularizerSpec))

  def run(model, v, train):  # compiled whole (op by op is slower)
    return jax.jit(lambda v: model.apply(
        v, x, train=train, rngs={"dropout": jax.random.key(2)},
        mutable=["batch_stats"])[0])(v)
  # In eval mode the regularizer is off in both: the same function.
  chex.assert_trees_all_close(run(teacher, view, False),
                              run(student, variables, False), rtol=1e-5,
                              atol=1e-5)
  assert not np.allclose(run(teacher, view, True),
                         run(student, variables, True))


def _digits_split(count, seed=0):
  split = image_data.load_split("digits", "train", None, seed)
  return image_data.subset(split, count, seed)


def test_the_stream_pairs_labelled_and_two_unlabelled_views():
  labelled, pool = _digits_split(40), _digits_split(200)
  opts = {"num_layers": 2, "magnitude": 9, "variant": "uda"}

  def stream(seed):
    return semi_supervised.uda_dataset(
        labelled, pool, global_batch=8, unsup_ratio=3, seed=seed,
        augment="none", pad=2, randaugment=opts)
  batch = stream(0)[5]
  assert set(batch) == {"image", "label", "unlabelled", "unlabelled_aug"}
  assert batch["image"].shape == (8, 8, 8, 1)
  assert batch["unlabelled"].shape == batch["unlabelled_aug"].shape == (
      24, 8, 8, 1)
  assert not np.array_equal(batch["unlabelled"], batch["unlabelled_aug"])
  chex.assert_trees_all_equal(stream(0)[5], batch)  # a function of (seed, s)
  assert not np.array_equal(stream(1)[5]["unlabelled"], batch["unlabelled"])
  # The original view is the pool's image, normalised, nothing else.
  pool_images = {np.asarray((pool.source[i]["image"] - pool.mean) /
                            pool.std, np.float32).tobytes()
                 for i in range(pool.num_examples)}
  assert all(u.tobytes() in pool_images for u in batch["unlabelled"])


def _uda_config(**overrides):
  config = digits.get_config()
  config.update_from_flattened_dict({
      "trainer": "uda", "train_examples": 100, "uda_unsup_ratio": 2,
      "uda_unlabelled_examples": 300, "uda_tsa": "linear",
      "randaugment_layers": 2, "randaugment_variant": "uda",
      "num_train_steps": 8, "log_every_steps": 2, "eval_every_epochs": 0.0,
      "checkpoint_every_steps": 3, "async_checkpointing": False,
      "batch_size": 16, "eval_batch_size": 64, "compare_baseline": False,
      **overrides})
  return config


@pytest.mark.slow
def test_uda_trains_records_its_settings_and_resumes_exactly(tmp_path):
  straight = train.train_and_evaluate(_uda_config(), str(tmp_path / "a"))
  with open(tmp_path / "a" / "results.json") as f:
    saved = json.load(f)
  assert saved["trainer"] == "uda" and saved["uda_tsa"] == "linear"
  assert saved["labelled_examples"] == 100
  assert saved["unlabelled_examples"] == 300
  assert 0.0 <= saved["test_accuracy"] <= 1.0
  with open(tmp_path / "a" / "log.txt") as f:
    logged = [json.loads(line) for line in f]
  assert {"train/unsup_loss", "train/confident", "train/tsa_kept"} <= set(
      logged[0])
  killed = str(tmp_path / "b")
  with pytest.raises(train.Preempted):
    train.train_and_evaluate(_uda_config(preempt_at_step=5), killed)
  assert max(int(s) for s in os.listdir(os.path.join(killed,
                                                     "checkpoints"))) == 3
  resumed = train.train_and_evaluate(_uda_config(), killed)
  chex.assert_trees_all_equal(straight["state"].params,
                              resumed["state"].params)


def test_uda_refuses_a_model_it_does_not_train(tmp_path):
  config = _uda_config(model="transformer_xl_tiny")
  with pytest.raises(ValueError, match="config.trainer='uda' trains 'image'"):
    train.train_and_evaluate(config, str(tmp_path))
  with pytest.raises(ValueError, match="config.uda_temperature"):
    train.train_and_evaluate(_uda_config(uda_temperature=0.0), str(tmp_path))


def test_the_4k_search_holds_out_part_of_the_uda_labelled_images():
  from configs import cifar10_4k_uda  # pylint: disable=import-outside-toplevel
  from configs.search import cifar10_4k_wrn28_2  # pylint: disable=import-outside-toplevel
  from dropgraph_jax.search import proxy  # pylint: disable=import-outside-toplevel
  from dropgraph_jax.training import classifier  # pylint: disable=import-outside-toplevel
  search = dict(cifar10_4k_wrn28_2.get_config().proxy)
  config = cifar10_4k_uda.get_config()
  assert search["examples"] == config.train_examples == 4000
  assert search["data_seed"] == config.data_seed
  # The same draw on digits: the proxy's images are the labelled set.
  search.update(dataset="digits", examples=100)
  config.update(dataset="digits", train_examples=100)
  labelled, _ = classifier.load_train_splits(config, 0)
  ours = proxy.proxy_split(search)
  assert [int(ours.source[i]["label"]) for i in range(100)] == [
      int(labelled.source[i]["label"]) for i in range(100)]
  np.testing.assert_array_equal(
      np.stack([ours.source[i]["image"] for i in range(100)]),
      np.stack([labelled.source[i]["image"] for i in range(100)]))
