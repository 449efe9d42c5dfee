"""The bad inputs of the library, policy files, the search and the CLIs
(:mod:`experiments.bad_inputs` classifies them; trainer configs are in
:mod:`experiments.bad_input_trainer_cases`)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import os
from typing import Callable, List

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dropgraph_jax.patterns import Policy, RegularizerSpec
from dropgraph_jax.regularizers import dropgraph as dropgraph_lib
from dropgraph_jax.regularizers import registry
from dropgraph_jax.search import controller, engine
from dropgraph_jax.search import space as space_lib
from dropgraph_jax.tools import show_policy


@dataclasses.dataclass
class Case:
  group: str
  what: str
  run: Callable[[], object]
  names: str            # a word the message must contain
  valid: bool = False   # a valid input that must be accepted

# --- regularizer functions ---------------------------------------------------
X = jnp.ones((2, 8, 8, 8), jnp.float32)
KEY = jax.random.key(0)
GRAPH = dropgraph_lib.init_params(KEY, X.shape)


def _call(name: str, x=X, params=None, **options):
  entry = registry.get(name)
  options.setdefault("rate", 0.1)
  options.setdefault("key", KEY)
  options.setdefault("train", True)
  if entry.needs_params:
    return entry.fn(x, GRAPH if params is None else params, **options)
  return entry.fn(x, **options)


def regularizer_cases() -> List[Case]:
  out = []
  add = out.append
  for name in ("dropout", "spatial_dropout", "drop_block", "disout",
               "dropgraph", "drop_path"):
    for value in (-0.1, 1.0, 1.5, float("nan"), "0.1", None, [0.1]):
      add(Case(name, f"rate={value!r}",
               lambda n=name, v=value: _call(n, rate=v), "rate"))
    for value in ("yes", 1, None):
      add(Case(name, f"train={value!r}",
               lambda n=name, v=value: _call(n, train=v), "train"))
    for value in (None, 0, jnp.zeros((3,), jnp.uint32)):
      add(Case(name, f"key={value!r}"[:40],
               lambda n=name, v=value: _call(n, key=v), "key"))
    add(Case(name, "integer x", lambda n=name: _call(
        n, x=jnp.ones((2, 8, 8, 8), jnp.int32)), "x"))
    add(Case(name, "rate=np.float32(0.1)", lambda n=name: _call(
        n, rate=np.float32(0.1)), "", valid=True))
  for name in ("drop_block", "disout", "dropgraph"):
    for value in (0, -1, 2.5, "3", (3,), 100):
      add(Case(name, f"block_size={value!r}",
               lambda n=name, v=value: _call(n, block_size=v), "block_size"))
    for flag in ("share_channels", "clip_block_size"):
      for value in ("yes", "no", 1):
        add(Case(name, f"{flag}={value!r}",
                 lambda n=name, f=flag, v=value: _call(n, **{f: v}), flag))
    add(Case(name, "block_size=np.int64(3)", lambda n=name: _call(
        n, block_size=np.int64(3)), "", valid=True))
    add(Case(name, "rng='numpy'", lambda n=name: _call(n, rng="numpy"),
             "rng"))
    add(Case(name, "rank-3 x", lambda n=name: _call(n, x=X[0]), "x"))
  for value in (0, 1.5, float("nan"), "0.2", True):
    add(Case("dropgraph", f"alpha={value!r}",
             lambda v=value: _call("dropgraph", alpha=v), "alpha"))
  add(Case("dropgraph", "alpha=np.float32(0.25)", lambda: _call(
      "dropgraph", alpha=np.float32(0.25),
      params=dropgraph_lib.init_params(KEY, X.shape, alpha=0.25)), "",
           valid=True))
  for value in (0, -1.0, float("nan"), "1"):
    add(Case("dropgraph", f"temperature={value!r}",
             lambda v=value: _call("dropgraph", temperature=v),
             "temperature"))
  for value in (0, 2.5, 16):
    add(Case("dropgraph", f"reduction={value!r}",
             lambda v=value: _call("dropgraph", reduction=v), "reduction"))
  for field in ("adjacency", "generator", "normalize"):
    name = "disout" if field == "normalize" else "dropgraph"
    add(Case(name, f"{field}='foo'",
             lambda n=name, f=field: _call(n, **{f: "foo"}), field))
  for flag in ("rescale", "vertex_gradient"):
    add(Case("dropgraph", f"{flag}='yes'",
             lambda f=flag: _call("dropgraph", **{f: "yes"}), flag))
  add(Case("dropgraph", "params of another shape", lambda: _call(
      "dropgraph", params=dropgraph_lib.init_params(
          KEY, (2, 8, 8, 16))), "params"))
  for value in (float("nan"), -1.0, "5"):
    add(Case("disout", f"alpha={value!r}",
             lambda v=value: _call("disout", alpha=v), "alpha"))
  add(Case("disout", "next_conv_kernel of other channels", lambda: _call(
      "disout", next_conv_kernel=jnp.ones((3, 3, 4, 8))), "next_conv_kernel"))
  for value in ((5,), ("0",), (True,)):
    add(Case("dropout", f"broadcast_dims={value!r}",
             lambda v=value: _call("dropout", broadcast_dims=v),
             "broadcast_dims"))
  add(Case("dropout", "broadcast_dims=(np.int64(1),)", lambda: _call(
      "dropout", broadcast_dims=(np.int64(1),)), "", valid=True))
  add(Case("word_dropout", "rescale='no'", lambda: _call(
      "word_dropout", x=jnp.ones((2, 5, 4)), rescale="no"), "rescale"))
  return out


# --- policy files ------------------------------------------------------------
def _policy(spec: dict):
  return Policy.from_dict({"format": "dropgraph_jax.policy", "version": 1,
                           "sites": {"stage3/block0/relu1": spec}})


def policy_cases() -> List[Case]:
  specs = [
      ({"kind": "drop_block", "rate": "0.1"}, "rate"),
      ({"kind": "drop_block"}, "rate"),
      ({"kind": "drop_block", "rate": float("nan")}, "rate"),
      ({"kind": "cutout", "rate": 0.1}, "kind"),
      ({"rate": 0.1}, "kind"),
      ({"kind": "drop_block", "rate": 0.1, "size": 3}, "size"),
      ({"kind": "drop_block", "rate": 0.1, "block_size": "7"}, "block_size"),
      ({"kind": "drop_block", "rate": 0.1, "share_channels": "yes"},
       "share_channels"),
      ({"kind": "dropgraph", "rate": 0.1, "alpha": float("nan")}, "alpha"),
      ({"kind": "dropgraph", "rate": 0.1, "temperature": 0}, "temperature"),
      ({"kind": "dropgraph", "rate": 0.1, "adjacency": 3}, "adjacency"),
      ({"kind": "conv_pattern", "height": 0}, "height"),
      ({"kind": "conv_pattern", "height": "2"}, "height"),
      ({"kind": "conv_pattern", "rotate": float("nan")}, "rotate"),
      ({"kind": "conv_pattern", "share_c": "yes"}, "share_c"),
      ({"kind": "conv_pattern", "prob": 1.5}, "prob"),
      ({"kind": "transformer_pattern", "size": -1}, "size"),
  ]
  out = [Case("policy file", json.dumps(spec), lambda s=spec: _policy(s),
              names) for spec, names in specs]
  out.append(Case("policy file", "site name ''", lambda: Policy.from_dict(
      {"format": "dropgraph_jax.policy", "version": 1,
       "sites": {"": {"kind": "dropout", "rate": 0.1}}}), "site"))
  out.append(Case("policy file", "a list, not an object",
                  lambda: Policy.from_dict([1, 2]), "object"))
  return out

# --- search and CLI ------------------------------------------------------------
def _search_config(**fields):
  base = {"method": "reinforce", "num_jobs": 8, "capacity": 4,
          "minibatch": 2, "num_workers": 1, "max_attempts": 1,
          "learning_rate": 1e-3, "seed": 0, "baseline_decay": 0.9,
          "entropy_weight": 0.0, "checkpoint_every": 1}
  base.update(fields)
  return ml_collections.ConfigDict(base)


def search_cases() -> List[Case]:
  fields = [("num_jobs", 0), ("capacity", 0), ("learning_rate", float("nan")),
            ("learning_rate", 0.0), ("baseline_decay", 2.0), ("seed", -1),
            ("entropy_weight", -0.1), ("checkpoint_every", 0),
            ("minibatch", 9), ("method", "foo"), ("num_workers", "2")]
  out = [Case("search config", f"search.{f}={v!r}",
              lambda f=f, v=v: engine.check_search_config(
                  _search_config(**{f: v})), f) for f, v in fields]
  for field, value in (("d_model", 0), ("n_head", 3), ("temperature",
                                                        float("nan")),
                       ("n_layer", 1.5)):
    out.append(Case("controller config", f"{field}={value!r}",
                    lambda f=field, v=value: controller.ControllerConfig(
                        vocab_sizes=(2, 3), **{f: v}), field))
  out.append(Case("search space", "site_regex='bn('", lambda:
                  space_lib.conv_space_for({"bn1": (1, 8, 8, 4)}, "bn("),
                  "site_regex"))
  out.append(Case("search space", "site_regex matching no site", lambda:
                  space_lib.conv_space_for({"bn1": (1, 8, 8, 4)}, "relu"),
                  "site_regex"))
  return out


def cli_cases(tmp: str) -> List[Case]:
  policy = os.path.join(tmp, "policy.json")
  Policy({"s": RegularizerSpec("dropout", {"rate": 0.1})}).save(policy)
  out = []
  for flag in ("--samples", "--channels", "--size", "--length"):
    out.append(Case("show_policy CLI", f"{flag} 0", functools.partial(
        _cli, [policy, "--out", tmp, flag, "0"]), flag))
  out.append(Case("show_policy CLI", "missing policy file", functools.partial(
      _cli, [os.path.join(tmp, "none.json"), "--out", tmp]), "none.json"))
  return out


def _cli(argv) -> None:
  """Runs the CLI; a non-zero exit becomes a ValueError of its stderr."""
  err = io.StringIO()
  with contextlib.redirect_stderr(err):
    code = show_policy.main(argv)
  if code:
    raise ValueError(err.getvalue().strip())


def library_cases() -> List[Case]:
  """The regularizer, policy and search cases (no files needed)."""
  return regularizer_cases() + policy_cases() + search_cases()
