"""The search's children: proxies (``dropgraph_jax.search.proxy``) and
many children in one program (``dropgraph_jax.search.vmap_children``)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.search import digits as digits_search
from dropgraph_jax.models import get_model, list_sites
from dropgraph_jax.patterns import Policy
from dropgraph_jax.search import run
from dropgraph_jax.search import space as space_lib


def _digits_proxy(steps=3, batch=16):
  from dropgraph_jax.search import proxy
  cfg = digits_search.get_config().proxy.to_dict()
  cfg.update(steps=steps, batch_size=batch)
  return proxy.ImageProxy(cfg)


def test_traced_patterns_drop_the_cells_their_static_twins_drop():
  from dropgraph_jax.patterns import ConvPattern, conv_pattern_dropout
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 5))
  key = jax.random.key(1)
  for share_c in (True, False):
    static = ConvPattern(height=2, width=3, stride_h=4, stride_w=3,
                         repeats_h=2, repeats_w=2, rotate=30.0, shear_x=0.2,
                         share_c=share_c, prob=0.7)
    fields = {f: jnp.asarray(getattr(static, f)) for f in (
        "height", "width", "stride_h", "stride_w", "repeats_h", "repeats_w",
        "rotate", "shear_x", "shear_y", "share_c", "prob")}
    traced = jax.jit(lambda f: conv_pattern_dropout(
        x, key=key, pattern=ConvPattern(**f), train=True))(fields)
    np.testing.assert_array_equal(
        np.asarray(traced),
        np.asarray(conv_pattern_dropout(x, key=key, pattern=static,
                                        train=True)))
  off = {**fields, "prob": jnp.float32(0.0)}
  np.testing.assert_array_equal(np.asarray(jax.jit(
      lambda f: conv_pattern_dropout(x, key=key, pattern=ConvPattern(**f),
                                     train=True))(off)), np.asarray(x))


@pytest.mark.slow
def test_vmapped_children_get_the_rewards_of_sequential_children():
  from dropgraph_jax.search import vmap_children
  px = _digits_proxy()
  space_config = digits_search.get_config().space
  # The first block's two sites of the config's four: fewer patterns to
  # compile in each of the seven programs below (CI time).
  space_config.site_regex = r"^stage2/block0/bn\d$"
  space = run.build_space(space_config)
  n = len(space.vocab_sizes()) // 8
  assert n == 2
  # size, stride, repeat, rotate, shear_x, shear_y, share_c, residual
  rows = [[3, 1, 1, 2, 1, 0, 0, 1], [2, 0, 1, 0, 0, 1, 1, 0],
          [0, 0, 0, 0, 0, 0, 0, 0], [1, 2, 0, 5, 3, 3, 1, 1]]
  policies = [space.decode(sum((rows[(i + j) % 4] for j in range(n)), []))
              for i in (0, 3)]
  assert any(p.residual for pol in policies for p in pol.sites.values())
  sequential = [px.train_one(p) for p in policies]
  for mode in ("vmap", "loop"):
    together = vmap_children.train_children(px, policies, mode=mode)
    np.testing.assert_allclose(together, sequential,
                               atol=1.5 / len(px.val_idx))
  assert vmap_children.rungs(150, 2, 20) == [20, 40, 80, 150]
  assert vmap_children.rungs(150, 1, 20) == [150]
  for mode in ("vmap", "loop"):
    halved = vmap_children.train_children(_digits_proxy(steps=4), policies,
                                          eta=2, min_steps=2, mode=mode)
    assert len(halved) == 2 and all(0 <= r <= 1 for r in halved)


@pytest.mark.slow
def test_trainer_proxy_scores_language_models_on_validation(tmp_path):
  from test_lm_training import _write_corpus

  from dropgraph_jax.search import proxy
  root = os.path.join(os.path.dirname(__file__), "..")
  corpus = _write_corpus(tmp_path)
  sites = list_sites(get_model("transformer_xl_tiny"), (1, 6),
                     dtype=jnp.int32)
  space = space_lib.transformer_space_for(sites, size=(0, 1, 6))
  tokens = [2, 0, 1, 0] * 6  # variational-like patterns at every sub-layer
  cfg = {"name": "trainer",
         "config_file": os.path.join(root, "configs",
                                     "ptb_transformer_xl.py"),
         "config_arg": "policy",
         "overrides": {"model": "transformer_xl_tiny", "data_dir": corpus,
                       "batch_size": 8, "eval_batch_size": 8, "seq_len": 6,
                       "mem_len": 6, "num_train_steps": 3,
                       "eval_every_epochs": 0.0}}
  job = {"id": 0, "attempt": 0, "tokens": tokens,
         "policy": space.decode(tokens).to_dict()}
  reward = proxy.run_child(cfg, job)
  assert 0 < reward < 80 / 5  # 80 / valid perplexity; 40 words: ppl > 5
  image = {"name": "trainer", "config_file": os.path.join(
      root, "configs", "digits.py"), "overrides": {"num_train_steps": 1}}
  with pytest.raises(ValueError, match="scores on the 'test' split"):
    proxy.run_child(image, {"id": 1, "attempt": 0, "tokens": [],
                            "policy": Policy({}).to_dict()})


def test_image_proxy_augments_like_the_final_training():
  """The CIFAR search trains its children with crop + flip, as the final
  training does; each step's batch is the same for every child."""
  from configs.search import cifar_wrn28_2
  from dropgraph_jax.search import proxy
  assert cifar_wrn28_2.get_config().proxy.augment == "crop_flip"
  base = {"dataset": "digits", "model": "resnet_tiny", "steps": 3,
          "batch_size": 16, "seed": 0}
  plain = proxy.ImageProxy({**base, "augment": "none"})
  aug = proxy.ImageProxy({**base, "augment": "crop_flip"})
  again = proxy.ImageProxy({**base, "augment": "crop_flip"})
  x_plain, y_plain, _ = plain.step_data(1)
  x_aug, y_aug, _ = aug.step_data(1)
  np.testing.assert_array_equal(y_plain, y_aug)
  assert not np.allclose(x_plain, x_aug)
  np.testing.assert_array_equal(x_aug, again.step_data(1)[0])
  # Held-out images are never augmented.
  np.testing.assert_array_equal(next(plain.val_batches())[0],
                                next(aug.val_batches())[0])
