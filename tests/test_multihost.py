"""Several processes in one run (JAX's multi-controller runtime, gloo
collectives on CPU): two processes of two CPU devices each, launched as a
user would (``python -m dropgraph_jax.main ... --coordinator_address
--num_processes --process_id``), against one process of four devices."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from dropgraph_jax.training import checkpointing

ROOT = os.path.join(os.path.dirname(__file__), "..")
# The final parameters of 2 x 2 devices vs 1 x 4 are not bitwise equal:
# gloo's cross-process all-reduce adds in another order. Measured after 12
# digits steps: at most 2.4e-7 apart.
ATOL = 1e-5
# Each run: 8 steps, checkpoints at 4 and 8; a killed run stops after step
# 6 and resumes from 4.
STEPS = 8


def _port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(devices: int, cache: str = "") -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             JAX_DISABLE_MOST_OPTIMIZATIONS="1")
  if cache:  # a restart reuses the killed run's compiled programs (CI time)
    env.update(JAX_COMPILATION_CACHE_DIR=cache,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  env.pop("JAX_COORDINATOR_ADDRESS", None)
  return env


def _args(kind: str, workdir: str, data_dir: str, extra) -> list:
  common = [f"--workdir={workdir}", f"--config.num_train_steps={STEPS}",
            "--config.checkpoint_every_steps=4", "--config.log_every_steps=4",
            "--config.async_checkpointing=False",
            # Only process 0 would write summaries, as in a 1-process run;
            # skipping them saves TensorFlow's import (~4 s a launch).
            "--config.tensorboard=False", *extra]
  if kind in KIND_ARGS:
    return [*KIND_ARGS[kind](data_dir), *common]
  return ["--config", os.path.join(ROOT, "configs", "ptb_transformer_xl.py"),
          "--config.model=transformer_xl_tiny", f"--config.data_dir={data_dir}",
          "--config.batch_size=8", "--config.eval_batch_size=8",
          "--config.seq_len=6", "--config.mem_len=6", *common]


def _config(name: str) -> str:
  return os.path.join(ROOT, "configs", name)


# The other trainer kinds' tiny runs, as their own tests configure them.
KIND_ARGS = {
    "image": lambda _: ["--config", _config("digits.py"),
                        "--config.compare_baseline=False",
                        "--config.batch_size=16"],
    "segmentation": lambda data: [
        "--config", _config("monuseg_unet.py") + ":dropgraph",
        "--config.model=unet_tiny", f"--config.data_dir={data}",
        "--config.patch_size=32", "--config.image_size=16",
        "--config.batch_size=8", "--config.eval_batch_size=8",
        "--config.learning_rate=0.01", "--config.regularizer.block_size=3",
        "--config.regularizer.alpha=0.25"],
    "translation": lambda data: [
        "--config", _config("default.py"),
        "--config.model=transformer_seq2seq_tiny",
        f"--config.dataset=parallel:{data}", "--config.eval_split=val",
        "--config.test_split=test", "--config.vocab_size=64",
        "--config.max_len=12", "--config.batch_size=16",
        "--config.eval_batch_size=8", "--config.optimizer=adam",
        "--config.learning_rate=0.003", "--config.lr_schedule=constant",
        "--config.weight_decay=0.0", "--config.eval_every_epochs=0.0",
        "--config.train_eval_examples=16", "--config.bleu_examples=8",
        "--config.beam_size=2", "--config.regularizer.name=dropout"],
    "points": lambda _: [
        "--config", _config("modelnet40_dgcnn.py") + ":dropgraph,synthetic",
        "--config.synthetic_per_class=8", "--config.num_points=64",
        "--config.batch_size=8", "--config.eval_batch_size=8"],
    "graphs": lambda data: [
        "--config", _config("proteins_gcn.py") + ":dropgraph",
        f"--config.data_dir={data}", "--config.dataset=TOY",
        "--config.batch_size=2", "--config.num_folds=2"],
    "graph_clusters": lambda data: [
        "--config", _config("ogbn_products_clustergcn.py") + ":dropgraph",
        f"--config.data_dir={data}", "--config.cluster_parts=6",
        "--config.clusters_per_batch=2"],
    "graph_nodes": lambda data: [
        "--config", _config("cora_gcn.py") + ":dropgraph",
        f"--config.data_dir={data}", "--config.dataset=toy",
        f"--config.num_epochs={STEPS}"],
    "uda": lambda _: [
        "--config", _config("digits.py"), "--config.trainer=uda",
        "--config.compare_baseline=False", "--config.batch_size=16",
        "--config.eval_batch_size=64", "--config.train_examples=100",
        "--config.uda_unsup_ratio=2", "--config.uda_unlabelled_examples=300",
        "--config.randaugment_layers=2", "--config.randaugment_variant=uda",
        "--config.eval_every_epochs=0.0"],
}


def _data(kind: str, tmp_path) -> str:
  """The files a kind's run reads, written in their real formats."""
  if kind == "tokens":
    return _corpus(str(tmp_path / "corpus"))
  if kind == "segmentation":
    from test_segmentation import _write_monuseg
    return _write_monuseg(tmp_path / "monuseg")
  if kind == "graphs":
    from test_graph_data import _write_tu
    _write_tu(tmp_path / "TOY")
    return str(tmp_path / "TOY")
  if kind == "graph_clusters":
    from test_graph_training import _ogb_products_like
    _ogb_products_like(tmp_path, np.random.default_rng(0))
    return str(tmp_path)
  if kind == "graph_nodes":
    from test_graph_data import _write_planetoid
    _write_planetoid(tmp_path, list(range(510, 520)),
                     np.random.default_rng(0))
    return str(tmp_path)
  if kind == "translation":
    from test_translation import _corpus as parallel_corpus
    return parallel_corpus(str(tmp_path / "parallel"),
                           sizes=(("train", 120), ("val", 20), ("test", 20)))
  return ""


def _run(kind, workdir, data_dir, processes, extra=()):
  """Launches the job; returns each process's exit code."""
  command = [sys.executable, "-m", "dropgraph_jax.main",
             *_args(kind, workdir, data_dir, extra)]
  cache = os.path.join(os.path.dirname(workdir), "jax_cache")
  if processes == 1:
    return [subprocess.run(command, env=_env(4, cache), cwd=ROOT,
                           capture_output=True, text=True).returncode]
  address = f"127.0.0.1:{_port()}"
  # Process 1 first: it must wait for process 0 to create the workdir.
  procs = [subprocess.Popen(
      command + [f"--coordinator_address={address}", "--num_processes=2",
                 f"--process_id={i}"], env=_env(2, cache), cwd=ROOT,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for i in (1, 0)]
  outs = [p.communicate(timeout=300)[0] for p in procs]
  codes = [p.returncode for p in procs]
  assert all(c == 0 for c in codes) or extra, outs
  return codes


def _corpus(root):
  os.makedirs(root)
  for split, lines in (("train", 80), ("valid", 12), ("test", 12)):
    with open(os.path.join(root, f"toy.{split}.txt"), "w") as f:
      f.writelines(" ".join(f"w{(i + j) % 30}" for j in range(6)) + "\n"
                   for i in range(lines))
  return root


def _final(workdir):
  return checkpointing.read_arrays(os.path.join(workdir, "checkpoints",
                                           str(STEPS)))


def _log_rows(workdir):
  with open(os.path.join(workdir, "log.txt")) as f:
    return [sorted(json.loads(line)) + [json.loads(line)["step"]]
            for line in f]


def _checksums(workdir):
  path = os.path.join(workdir, "checkpoints", str(STEPS), "integrity",
                      "metadata")
  with open(path) as f:
    return json.load(f)["state"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["image"])
def test_two_processes_train_resume_and_match_one_process(tmp_path, kind):
  data = _data(kind, tmp_path)
  two, one, killed = (str(tmp_path / name) for name in
                      ("two", "one", "killed"))
  assert _run(kind, two, data, 2) == [0, 0]  # workdir did not exist
  files = sorted(os.listdir(two))
  assert "results.json" in files and files.count("results.json") == 1
  assert not any(name.endswith(".tmp") for name in files)
  assert _run(kind, one, data, 1) == [0]
  assert _log_rows(two) == _log_rows(one)  # process 0 alone writes log.txt
  _assert_close(_final(two), _final(one))
  # Kill both mid-training (after step 6; checkpoint at 4), restart both.
  codes = _run(kind, killed, data, 2, ["--config.preempt_at_step=6"])
  assert all(c != 0 for c in codes)
  assert not os.path.exists(os.path.join(killed, "results.json"))
  assert _run(kind, killed, data, 2) == [0, 0]
  assert _checksums(killed) == _checksums(two)  # bitwise


# DGCNN's k-nearest-neighbour graph is a discrete choice: the round-off of
# another reduction order (one process with 1 vs 4 devices: training loss
# 1.7430 vs 1.7336 after 4 steps, no regularizer) flips neighbours, and
# the runs part. Its 2-process run is held to an uninterrupted 2-process
# run instead, bitwise.
SAME_LAYOUT_ONLY = ("points",)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tokens", "segmentation", "translation",
                                  "uda", "points", "graphs",
                                  "graph_clusters", "graph_nodes"])
def test_two_processes_killed_and_resumed_match_one_process(tmp_path, kind):
  """The other trainer kinds in three launches instead of four (CI time):
  the 2-process run starts against a workdir that does not exist, is
  killed after step 6 (checkpoint at 4) and restarted; it ends with one
  ``results.json`` and the parameters of the 1-process, 4-device run."""
  data = _data(kind, tmp_path)
  ref, two = str(tmp_path / "reference"), str(tmp_path / "two")
  codes = _run(kind, two, data, 2, ["--config.preempt_at_step=6"])
  assert all(c != 0 for c in codes)
  assert not os.path.exists(os.path.join(two, "results.json"))
  assert _run(kind, two, data, 2) == [0, 0]
  files = sorted(os.listdir(two))
  assert files.count("results.json") == 1
  assert not any(name.endswith(".tmp") for name in files)
  if kind in SAME_LAYOUT_ONLY:
    assert _run(kind, ref, data, 2) == [0, 0]
    assert _checksums(two) == _checksums(ref)
  else:
    assert _run(kind, ref, data, 1) == [0]
    _assert_close(_final(two), _final(ref))


# Attention key biases have an exact gradient of zero (a softmax does not
# change when one constant is added to all of a query's logits): their
# gradients are round-off, which Adam scales up to steps of about the
# learning rate, so any change of summation order moves them by ~1e-3.
# Every other parameter is held to ATOL.
ZERO_GRADIENT = ("k_proj']['bias']",)


def _assert_close(a, b):
  leaves = jax.tree_util.tree_flatten_with_path(a)[0]
  for (path, x), y in zip(leaves, jax.tree.leaves(b), strict=True):
    name = jax.tree_util.keystr(path)
    if not name.endswith(ZERO_GRADIENT):
      np.testing.assert_allclose(x, y, rtol=0, atol=ATOL, err_msg=name)


def _digits_stream(kind, tmp_path):
  """A training stream builder of each input pipeline, on digits (the
  segmentation one on MoNuSeg-layout files)."""
  from dropgraph_jax.data import images, semi_supervised
  from dropgraph_jax.data import segmentation as seg_data
  split = images.load_split("digits", "train")
  if kind == "segmentation":
    from test_segmentation import _write_monuseg
    seg = seg_data.load_monuseg(_write_monuseg(tmp_path / "m", size=32),
                                "train", patch=16)
    return lambda: seg_data.train_dataset(seg, global_batch=8, seed=3)
  if kind == "uda":
    ra = {"num_layers": 2, "magnitude": 9.0, "variant": "uda",
          "translate_fraction": 0.3, "cutout_fraction": 0.2}
    return lambda: semi_supervised.uda_dataset(
        split, split, global_batch=8, unsup_ratio=2, seed=3,
        augment="crop_flip", pad=2, randaugment=ra)
  return lambda: images.train_dataset(split, global_batch=8, seed=3,
                                      augment=kind, pad=2)


@pytest.mark.parametrize("kind", ["none", "crop_flip", "segmentation",
                                  "uda"])
def test_each_process_reads_its_half_of_every_global_batch(
    monkeypatch, tmp_path, kind):
  """Two hosts' batches, augmentations included, make up the one host's
  global batch, in order: the run does not depend on the host count."""
  build = _digits_stream(kind, tmp_path)

  def batches(index, count):
    monkeypatch.setattr(jax, "process_index", lambda: index)
    monkeypatch.setattr(jax, "process_count", lambda: count)
    ds = build()
    return [ds[step] for step in range(4)]

  whole = batches(0, 1)
  halves = [batches(i, 2) for i in (0, 1)]
  for step in range(4):
    for key, value in whole[step].items():
      first, second = (h[step][key] for h in halves)
      assert len(first) == len(second) == len(value) // 2
      np.testing.assert_array_equal(np.concatenate([first, second]), value)
    # Disjoint (no image of one half in the other).
    first, second = (h[step]["image"].reshape(len(h[step]["image"]), -1)
                     for h in halves)
    assert not {r.tobytes() for r in first} & {r.tobytes() for r in second}


@pytest.mark.parametrize("n,batch", [(7, 2), (1, 4), (9, 3), (8, 4)])
def test_every_host_runs_the_same_eval_steps_and_scores_each_example_once(
    monkeypatch, n, batch):
  from dropgraph_jax.data import hosts
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  per_host = []
  for index in (0, 1):
    monkeypatch.setattr(jax, "process_index", lambda i=index: i)
    per_host.append(list(hosts.host_eval_batches(n, batch)))
  # A host with one batch fewer would leave the other waiting in the
  # step's collective for ever.
  largest_share = -(-n // 2)
  assert len(per_host[0]) == len(per_host[1]) == -(-largest_share // batch)
  scored = sorted(int(i) for host in per_host for idx, valid in host
                  for i in idx[valid])
  assert scored == list(range(n))
  assert all(len(idx) == len(valid) == batch
             for host in per_host for idx, valid in host)
