"""Proxy tasks: train one child with a policy, return its reward.

``run_child(proxy_config, job) -> float`` runs in a worker (a spawned
process, a Ray task, or inline). ``proxy_config`` is a plain dict, ``job``
is ``{"id", "attempt", "tokens", "policy"}`` with ``policy`` a policy
JSON object. The reward never looks at a test split.

* ``name='synthetic'``: no training. The reward is the fraction of tokens
  equal to a hidden ``target`` sequence, plus Gaussian ``noise`` seeded by
  the job id: a cheap landscape with a known optimum, for tests and for
  checking that the controller learns. ``crash_ids`` / ``hang_ids`` make the
  first attempt of those jobs kill their process or sleep past any
  time-out (fault-injection for the worker tests).
* ``name='image'``: a compact trainer (no checkpoints, no logs) for small
  proxies: ``model`` on ``dataset`` (``'digits'``, ``'folder:ROOT'`` or a
  TFDS name), ``steps`` SGD steps with batch ``batch_size``, cosine
  learning rate; the last ``val_fraction`` of a seeded permutation of the
  training split is held out and the reward is accuracy on it (the paper
  reserves 10% of CIFAR-10's training set the same way); ``examples`` > 0
  first takes a class-balanced subset (by ``data_seed``), e.g. the 4,000
  images of the CIFAR-10-4K search (3,600 train, 400 held out).
* ``name='trainer'``: the full trainer (:mod:`dropgraph_jax.training.trainers`) on a
  config file with overrides, for proxies such as WRN-28-2 on CIFAR-10 or
  Transformer-XL on PTB. The config's ``eval_split`` must not be
  ``'test'``; the reward is its accuracy, or ``80 / valid perplexity`` for
  language models (the paper's ``Perf``).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import tempfile
import time
from typing import Any, Dict

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dropgraph_jax.data import images as image_data
from dropgraph_jax.models import get_model, model_kind
from dropgraph_jax.patterns import Policy
from dropgraph_jax.search import vmap_children
from dropgraph_jax.training import trainers as train

PROXIES = ("synthetic", "image", "trainer")


def run_group(proxy_config: Dict[str, Any], jobs) -> list:
  """Rewards of a group of jobs. The ``'image'`` proxy trains a group of
  several in one vmapped program (with successive halving when
  ``halving_eta`` > 1); other proxies run the jobs one by one."""
  if proxy_config.get("name") == "image" and len(jobs) > 1:
    return vmap_children.train_children(
        image_proxy(proxy_config),
        [Policy.from_dict(j["policy"]) for j in jobs],
        eta=int(proxy_config.get("halving_eta", 1)),
        min_steps=int(proxy_config.get("halving_min_steps", 0)),
        mode=proxy_config.get("group_mode", "auto"))
  return [run_child(proxy_config, job) for job in jobs]


def run_child(proxy_config: Dict[str, Any], job: Dict[str, Any]) -> float:
  name = proxy_config.get("name")
  if name == "synthetic":
    return _synthetic(proxy_config, job)
  if name == "image":
    return _image(proxy_config, job)
  if name == "trainer":
    return _trainer(proxy_config, job)
  raise ValueError(f"proxy name must be one of {list(PROXIES)}, got "
                   f"{name!r}.")


def _synthetic(cfg, job) -> float:
  if job["attempt"] == 0 and job["id"] in cfg.get("crash_ids", ()):
    os._exit(3)  # a hard crash: no exception, no result
  if job["attempt"] == 0 and job["id"] in cfg.get("hang_ids", ()):
    time.sleep(cfg.get("hang_s", 3600))
  tokens = np.asarray(job["tokens"])
  target = np.asarray(cfg["target"])
  reward = float(np.mean(tokens == target))
  if cfg.get("noise", 0.0):
    rng = np.random.default_rng([cfg.get("seed", 0), job["id"]])
    reward += cfg["noise"] * float(rng.standard_normal())
  time.sleep(cfg.get("sleep_s", 0.0))
  return reward


TARGET_STREAM = 2  # numpy seed-sequence tag of the synthetic target
AUGMENT_STREAM = 3  # ... and of the image proxy's augmentation


def synthetic_target(vocab_sizes, seed: int):
  rng = np.random.default_rng([seed, TARGET_STREAM])
  return [int(rng.integers(0, n)) for n in vocab_sizes]


def proxy_split(cfg) -> image_data.Split:
  """The image proxy's training split: the dataset's, or its
  class-balanced subset of ``cfg['examples']`` images."""
  data = image_data.load_split(cfg["dataset"], "train",
                               cfg.get("data_dir") or None, cfg.get("seed", 0))
  if int(cfg.get("examples", 0)) > 0:
    data = image_data.subset(data, int(cfg["examples"]),
                             int(cfg.get("data_seed", 0)))
  return data


class ImageProxy:
  """The ``'image'`` proxy's data, batches and compiled pieces.

  Shared by the sequential child (:meth:`train_one`) and the vmapped
  children (:mod:`.vmap_children`): the same held-out split, the same
  batch at every step, the same initial parameters and step keys, so a
  child's reward does not depend on how it was scheduled.
  """

  def __init__(self, cfg):
    self.cfg = cfg
    data = proxy_split(cfg)
    self.num_classes = data.num_classes
    self.data = data
    self.raw, self.labels = _materialise(data)
    # Held-out images are scored un-augmented: normalised once.
    self.images = image_data.preprocess_batch(
        {"image": self.raw, "label": self.labels}, data, "none", 0,
        None)["image"]
    self.augment = cfg.get("augment", "none")
    self.pad = int(cfg.get("crop_padding", 4))
    seed = cfg.get("seed", 0)
    order = np.random.default_rng(seed).permutation(len(self.labels))
    cut = int(round(len(self.labels) * (1 - cfg.get("val_fraction", 0.1))))
    self.train_idx, self.val_idx = order[:cut], order[cut:]
    self.steps, batch = int(cfg["steps"]), int(cfg["batch_size"])
    rng = np.random.default_rng([seed, 1])
    self.batches = [rng.choice(self.train_idx, batch, replace=False)
                    for _ in range(self.steps)]
    self.tx = optax.chain(
        optax.add_decayed_weights(cfg.get("weight_decay", 5e-4)),
        optax.sgd(optax.cosine_decay_schedule(cfg.get("learning_rate", 0.05),
                                              self.steps), momentum=0.9))
    self.key = jax.random.key(seed)

  def model(self, policy=None):
    return get_model(self.cfg["model"], policy=policy,
                     num_classes=self.num_classes)

  def init(self):
    """``(params, batch_stats, opt_state)``; independent of the policy."""
    variables = self.model().init({"params": self.key, "dropout": self.key},
                                  jnp.asarray(self.images[:1]), train=False)
    params = variables["params"]
    return params, variables.get("batch_stats", {}), self.tx.init(params)

  def step(self, model, params, stats, opt_state, x, y, key):

    def loss_fn(p):
      logits, new = model.apply({"params": p, "batch_stats": stats}, x,
                                train=True, rngs={"dropout": key},
                                mutable=["batch_stats"])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
      return jnp.mean(loss), new["batch_stats"]
    (_, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = self.tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), stats, opt_state

  def correct(self, params, stats, x, y):
    """Correct predictions in a batch (evaluation ignores any policy)."""
    logits = self.model().apply({"params": params, "batch_stats": stats}, x,
                                train=False)
    return jnp.sum(jnp.argmax(logits, -1) == y)

  def step_data(self, s):
    """Step ``s``'s batch, augmented as the final training augments
    (``cfg['augment']``: 'crop_flip' for CIFAR) with a generator seeded by
    ``(seed, s)``: every child sees the same images at step ``s``."""
    idx = self.batches[s]
    rng = np.random.default_rng([self.cfg.get("seed", 0), AUGMENT_STREAM, s])
    batch = image_data.preprocess_batch(
        {"image": self.raw[idx], "label": self.labels[idx]}, self.data,
        self.augment, self.pad, rng)
    return (jnp.asarray(batch["image"]), jnp.asarray(self.labels[idx]),
            jax.random.fold_in(self.key, s))

  def val_batches(self, size: int = 256):
    for lo in range(0, len(self.val_idx), size):
      idx = self.val_idx[lo:lo + size]
      yield jnp.asarray(self.images[idx]), jnp.asarray(self.labels[idx])

  def train_one(self, policy) -> float:
    """Trains one child with ``policy``; validation accuracy."""
    model = self.model(policy)
    step = jax.jit(functools.partial(self.step, model))
    correct = jax.jit(self.correct)
    params, stats, opt_state = self.init()
    for s in range(self.steps):
      params, stats, opt_state = step(params, stats, opt_state,
                                      *self.step_data(s))
    hits = sum(int(correct(params, stats, x, y))
               for x, y in self.val_batches())
    return hits / len(self.val_idx)


def _image(cfg, job) -> float:
  return image_proxy(cfg).train_one(Policy.from_dict(job["policy"]))


_PROXIES: Dict[str, "ImageProxy"] = {}


def image_proxy(cfg) -> "ImageProxy":
  """This process's ImageProxy for ``cfg``: built once, so a long-lived
  worker loads and normalises the data and draws the batches once, not
  for every child (the proxy is never modified after construction)."""
  key = json.dumps(cfg, sort_keys=True, default=str)
  if key not in _PROXIES:
    _PROXIES.clear()  # one dataset in memory per worker
    _PROXIES[key] = ImageProxy(cfg)
  return _PROXIES[key]


def _materialise(data):
  """All images of a (small) split as stored (uint8 or float), and labels."""
  images = np.stack([np.asarray(data.source[i]["image"])
                     for i in range(data.num_examples)])
  labels = np.stack([data.source[i]["label"]
                     for i in range(data.num_examples)]).astype(np.int32)
  return images, labels


def _trainer(cfg, job) -> float:

  spec = importlib.util.spec_from_file_location("proxy_config",
                                                cfg["config_file"])
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  args = (cfg["config_arg"],) if cfg.get("config_arg") else ()
  config = module.get_config(*args)
  with tempfile.TemporaryDirectory(prefix=f"child{job['id']}_") as tmp:
    policy_file = os.path.join(tmp, "policy.json")
    Policy.from_dict(job["policy"]).save(policy_file)
    config.regularizer.name = "policy"
    config.regularizer.policy_file = policy_file
    config.async_checkpointing = False
    config.checkpoint_every_steps = 10**9
    config.update_from_flattened_dict(dict(cfg.get("overrides", {})))
    if model_kind(config.model) == "image" and config.eval_split == "test":
      raise ValueError("proxy config scores on the 'test' split; set "
                       "eval_split to a validation split (e.g. "
                       "train_split='train[:90%]', eval_split="
                       "'train[90%:]').")
    results = train.train_and_evaluate(config, os.path.join(tmp, "run"))
  if "valid_perplexity" in results:
    return 80.0 / results["valid_perplexity"]
  return results["test_accuracy"]
