"""Every kind of bad input we know of, and what each gets.

    python -m experiments.bad_inputs --out experiments/results/bad_inputs.md

Each case calls the library, a trainer, the search or a CLI as a user
would, with one bad value, and is classed by what happens:

- ``clear``: a ``ValueError`` (or the checkpoint / NaN errors, or
  ml_collections' own refusal of a value of another type) whose message
  names the field or argument (the case's ``names``);
- ``obscure``: another exception, or a message that does not name it;
- ``silent``: no error at all (for a bad input);
- ``accepted`` / ``refused``: for the valid inputs listed beside them
  (NumPy scalars, ...), which must be accepted.

Trainer cases run the digits job with 2 steps, so a case that is not
caught up front finishes quickly (and shows as ``silent``). The test
``tests/test_bad_inputs.py`` runs every case and requires ``clear`` or
``accepted`` for all. Checkpoint damage has its own 17 cases in
``tests/test_checkpointing.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import io
import json
import os
import tempfile
from typing import Callable, List, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from configs import digits, modelnet40_dgcnn, monuseg_unet, ptb_transformer_xl
from dropgraph_jax.patterns import Policy, RegularizerSpec
from dropgraph_jax.regularizers import dropgraph as dropgraph_lib
from dropgraph_jax.regularizers import registry
from dropgraph_jax.search import controller, engine
from dropgraph_jax.search import space as space_lib
from dropgraph_jax.tools import show_policy
from dropgraph_jax.training import checkpointing, common
from dropgraph_jax.training import trainers as train

CLEAR_ERRORS = (ValueError, checkpointing.CorruptCheckpointError,
                common.NonFiniteLoss)


@dataclasses.dataclass
class Case:
  group: str
  what: str
  run: Callable[[], object]
  names: str            # a word the message must contain
  valid: bool = False   # a valid input that must be accepted


def classify(case: Case) -> Tuple[str, str]:
  """``(outcome, message)`` of one case."""
  try:
    with contextlib.redirect_stdout(io.StringIO()), \
        contextlib.redirect_stderr(io.StringIO()):
      case.run()
  except CLEAR_ERRORS as e:
    if case.valid:
      return "refused", str(e)
    return ("clear" if case.names in str(e) else "obscure"), str(e)
  except SystemExit as e:  # a CLI's exit status
    return ("clear" if e.code not in (0, None) else "silent"), f"exit {e.code}"
  except TypeError as e:  # ml_collections refuses a value of another type
    if "Could not override field" in str(e) and case.names in str(e):
      return "clear", str(e)
    return ("refused" if case.valid else "obscure"), \
        f"{type(e).__name__}: {e}"
  except Exception as e:  # noqa: BLE001 (classifying is the point)
    return ("refused" if case.valid else "obscure"), \
        f"{type(e).__name__}: {e}"
  return ("accepted" if case.valid else "silent"), ""


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


# --- trainer configs (the digits job, 2 steps) ---------------------------------
def _digits(**overrides):
  config = digits.get_config()
  config.num_train_steps = 2
  config.batch_size = 16
  config.eval_batch_size = 64
  config.async_checkpointing = False
  config.compare_baseline = False
  config.regularizer.name = "drop_block"
  with config.unlocked():
    config.update_from_flattened_dict(overrides)
  return config


def _train(overrides):
  def run():
    with tempfile.TemporaryDirectory() as workdir:
      train.train_and_evaluate(_digits(**overrides),
                               os.path.join(workdir, "run"))
  return run


TRAINER_CASES = [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 4096}, "batch_size"),
    ({"eval_batch_size": 0}, "eval_batch_size"),
    ({"log_every_steps": 0}, "log_every_steps"),
    ({"checkpoint_every_steps": 0}, "checkpoint_every_steps"),
    ({"keep_checkpoints": 0}, "keep_checkpoints"),
    ({"num_train_steps": -5}, "num_train_steps"),
    ({"num_epochs": float("nan")}, "num_epochs"),
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"learning_rate": -0.1}, "learning_rate"),
    ({"weight_decay": -1.0}, "weight_decay"),
    ({"momentum": 1.5}, "momentum"),
    ({"label_smoothing": 2.0}, "label_smoothing"),
    ({"warmup_epochs": -1.0}, "warmup_epochs"),
    ({"train_examples": -1}, "train_examples"),
    ({"mesh_devices": 99}, "mesh_devices"),
    ({"seed": -1}, "seed"),
    ({"nesterov": "yes"}, "nesterov"),
    ({"lr_boundaries_epochs": (float("nan"),)}, "lr_boundaries_epochs"),
    ({"optimizer": "adagrad"}, "optimizer"),
    ({"lr_schedule": "foo"}, "lr_schedule"),
    ({"augment": "foo"}, "augment"),
    ({"dtype": "float8"}, "dtype"),
    ({"model": "no_such_model"}, "no_such_model"),
    ({"dataset": "no_such_dataset_xyz"}, "no_such_dataset_xyz"),
    ({"regularizer.name": "cutout"}, "regularizer.name"),
    ({"regularizer.rate": 1.5}, "rate"),
    ({"regularizer.rate": float("nan")}, "rate"),
    ({"regularizer.block_size": 0}, "block_size"),
    ({"regularizer.alpha": float("nan")}, "alpha"),
    ({"regularizer.stages": (7,)}, "stages"),
    ({"regularizer.stages": ()}, "stages"),
    ({"regularizer.site_labels": "relu("}, "site_labels"),
    ({"regularizer.site_labels": "nothing_matches"}, "site_labels"),
    ({"regularizer.placement": "foo"}, "placement"),
    ({"regularizer.block_sites": "foo"}, "block_sites"),
    ({"regularizer.schedule": "foo"}, "schedule"),
    ({"regularizer.ramp_epochs": float("nan")}, "ramp_epochs"),
    ({"regularizer.stage_rate_scales": (0.25, 1.0, 1.0)}, "stage"),
    ({"regularizer.name": "policy"}, "policy_file"),
    ({"regularizer.name": "policy",
      "regularizer.policy_file": "/no/such/policy.json"}, "policy"),
]


def trainer_cases() -> List[Case]:
  out = [Case("image trainer", _describe(o), _train(o), names)
         for o, names in TRAINER_CASES]
  out.append(Case("image trainer", "workdir is a file", _workdir_is_a_file,
                  "workdir"))
  return out


def _corpus(root: str) -> str:
  """A toy corpus in the PTB layout (``toy.{train,valid,test}.txt``)."""
  for split, lines in (("train", 60), ("valid", 10), ("test", 10)):
    with open(os.path.join(root, f"toy.{split}.txt"), "w") as f:
      f.writelines(" ".join(f"w{(i + j) % 30}" for j in range(6)) + "\n"
                   for i in range(lines))
  return root


def _lm(data_dir: str, overrides: dict):
  def run():
    config = ptb_transformer_xl.get_config("variational_dropout")
    config.model = "transformer_xl_tiny"
    config.data_dir = data_dir
    config.batch_size, config.eval_batch_size = 8, 8
    config.seq_len, config.mem_len, config.num_train_steps = 6, 6, 2
    config.async_checkpointing = False
    with config.unlocked():
      config.update_from_flattened_dict(overrides)
    with tempfile.TemporaryDirectory() as workdir:
      train.train_and_evaluate(config, os.path.join(workdir, "run"))
  return run


def _points(overrides: dict):
  def run():
    config = modelnet40_dgcnn.get_config("dropgraph,synthetic")
    config.synthetic_per_class, config.num_points = 4, 32
    config.num_epochs = 1
    with config.unlocked():
      config.update_from_flattened_dict(overrides)
    with tempfile.TemporaryDirectory() as workdir:
      train.train_and_evaluate(config, os.path.join(workdir, "run"))
  return run


def _monuseg(root: str) -> str:
  """A tiny MoNuSeg in BiO-Net's layout (two 32 x 32 images per split)."""
  from PIL import Image
  rng = np.random.default_rng(0)
  for split in ("train", "test"):
    for sub in ("x", "y"):
      os.makedirs(os.path.join(root, split, sub), exist_ok=True)
    for i in range(2):
      image = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
      Image.fromarray(image).save(os.path.join(root, split, "x", f"{i}.png"))
      Image.fromarray(np.where(image[..., 0] > 128, 255, 0).astype(
          np.uint8)).save(os.path.join(root, split, "y", f"{i}.png"))
  return root


def _segmentation(data_dir: str, overrides: dict):
  def run():
    config = monuseg_unet.get_config("dropgraph")
    config.model, config.data_dir = "unet_tiny", data_dir
    config.patch_size, config.num_train_steps = 16, 2
    config.batch_size, config.eval_batch_size = 8, 8
    config.regularizer.block_size = 1
    config.async_checkpointing = False
    with config.unlocked():
      config.update_from_flattened_dict(overrides)
    with tempfile.TemporaryDirectory() as workdir:
      train.train_and_evaluate(config, os.path.join(workdir, "run"))
  return run


SEGMENTATION_CASES = [
    ({"augment": "crop_flip"}, "augment"), ({"dataset": "cityscapes"},
                                            "dataset"),
    ({"patch_size": 0}, "patch_size"), ({"patch_size": 64}, "patch"),
    ({"regularizer.level": "enc9"}, "enc9"),
    ({"regularizer.name": "word_dropout"}, "regularizer.name"),
    ({"data_dir": "/no/such/monuseg"}, "/no/such/monuseg"),
]
LM_CASES = [
    ({"seq_len": 0}, "seq_len"), ({"mem_len": -1}, "mem_len"),
    ({"seq_len": 4000}, "too short"),
    ({"regularizer.name": "drop_block"}, "regularizer.name"),
    ({"regularizer.variational.hidden": 1.5}, "hidden"),
    ({"regularizer.variational.embedding": float("nan")}, "embedding"),
    ({"data_dir": "/no/such/corpus"}, "corpus"),
]
POINT_CASES = [
    ({"num_points": 0}, "num_points"),
    ({"synthetic_per_class": -1}, "synthetic_per_class"),
    ({"regularizer.sites": "conv("}, "regularizer.sites"),
    ({"regularizer.sites": "nothing_matches"}, "regularizer.sites"),
    ({"regularizer.name": "drop_block"}, "regularizer.name"),
    ({"regularizer.alpha": 0.0}, "alpha"),
    ({"num_epochs": -1}, "num_epochs"),
]


def other_trainer_cases(tmp: str) -> List[Case]:
  corpus = _corpus(tmp)
  monuseg = _monuseg(os.path.join(tmp, "monuseg"))
  return ([Case("LM trainer", _describe(o), _lm(corpus, o), names)
           for o, names in LM_CASES] +
          [Case("segmentation trainer", _describe(o),
                _segmentation(monuseg, o), names)
           for o, names in SEGMENTATION_CASES] +
          [Case("point-cloud trainer", _describe(o), _points(o), names)
           for o, names in POINT_CASES])


def _describe(overrides: dict) -> str:
  return ", ".join(f"{k}={v!r}" for k, v in overrides.items())


def _workdir_is_a_file():
  with tempfile.NamedTemporaryFile() as f:
    train.train_and_evaluate(_digits(), os.path.join(f.name, "run"))


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


def all_cases(tmp: str, trainers: bool = True) -> List[Case]:
  return (regularizer_cases() + policy_cases() + search_cases() +
          cli_cases(tmp) + (trainer_cases() + other_trainer_cases(tmp)
                            if trainers else []))


def table(results) -> str:
  counts = {}
  for case, outcome, _ in results:
    counts[outcome] = counts.get(outcome, 0) + 1
  lines = ["# Bad inputs and what they get", "",
           "Command: `python -m experiments.bad_inputs --out "
           "experiments/results/bad_inputs.md` (what each class means: the "
           "script's docstring).", "",
           "Totals: " + ", ".join(f"{k} {v}" for k, v in sorted(
               counts.items())) + f" (of {len(results)} cases).", "",
           "| group | input | outcome | message (first 110 characters) |",
           "|---|---|---|---|"]
  for case, outcome, message in results:
    text = message.replace("|", "/").replace("\n", " ")[:110]
    lines.append(f"| {case.group} | `{case.what}` | {outcome} | {text} |")
  return "\n".join(lines) + "\n"


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    results = [(c, *classify(c)) for c in all_cases(tmp)]
  text = table(results)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text)
  print(text)


if __name__ == "__main__":
  main()
