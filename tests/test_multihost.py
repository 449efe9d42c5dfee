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


def _port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(devices: int) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             JAX_DISABLE_MOST_OPTIMIZATIONS="1")
  env.pop("JAX_COORDINATOR_ADDRESS", None)
  return env


def _args(kind: str, workdir: str, data_dir: str, extra) -> list:
  common = [f"--workdir={workdir}", "--config.num_train_steps=12",
            "--config.checkpoint_every_steps=4", "--config.log_every_steps=4",
            "--config.async_checkpointing=False", *extra]
  if kind == "image":
    return ["--config", os.path.join(ROOT, "configs", "digits.py"),
            "--config.compare_baseline=False", "--config.batch_size=16",
            *common]
  return ["--config", os.path.join(ROOT, "configs", "ptb_transformer_xl.py"),
          "--config.model=transformer_xl_tiny", f"--config.data_dir={data_dir}",
          "--config.batch_size=8", "--config.eval_batch_size=8",
          "--config.seq_len=6", "--config.mem_len=6", *common]


def _run(kind, workdir, data_dir, processes, extra=()):
  """Launches the job; returns each process's exit code."""
  command = [sys.executable, "-m", "dropgraph_jax.main",
             *_args(kind, workdir, data_dir, extra)]
  if processes == 1:
    return [subprocess.run(command, env=_env(4), cwd=ROOT,
                           capture_output=True, text=True).returncode]
  address = f"127.0.0.1:{_port()}"
  # Process 1 first: it must wait for process 0 to create the workdir.
  procs = [subprocess.Popen(
      command + [f"--coordinator_address={address}", "--num_processes=2",
                 f"--process_id={i}"], env=_env(2), cwd=ROOT,
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
  return checkpointing.read_arrays(os.path.join(workdir, "checkpoints", "12"))


def _log_rows(workdir):
  with open(os.path.join(workdir, "log.txt")) as f:
    return [sorted(json.loads(line)) + [json.loads(line)["step"]]
            for line in f]


def _checksums(workdir):
  path = os.path.join(workdir, "checkpoints", "12", "integrity", "metadata")
  with open(path) as f:
    return json.load(f)["state"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["image", "tokens"])
def test_two_processes_train_resume_and_match_one_process(tmp_path, kind):
  data = _corpus(str(tmp_path / "corpus")) if kind == "tokens" else ""
  two, one, killed = (str(tmp_path / name) for name in
                      ("two", "one", "killed"))
  assert _run(kind, two, data, 2) == [0, 0]  # workdir did not exist
  files = sorted(os.listdir(two))
  assert "results.json" in files and files.count("results.json") == 1
  assert not any(name.endswith(".tmp") for name in files)
  assert _run(kind, one, data, 1) == [0]
  assert _log_rows(two) == _log_rows(one)  # process 0 alone writes log.txt
  for a, b in zip(jax.tree.leaves(_final(two)), jax.tree.leaves(_final(one))):
    np.testing.assert_allclose(a, b, rtol=0, atol=ATOL)
  # Kill both mid-training (after step 6; checkpoint at 4), restart both.
  codes = _run(kind, killed, data, 2, ["--config.preempt_at_step=6"])
  assert all(c != 0 for c in codes)
  assert not os.path.exists(os.path.join(killed, "results.json"))
  assert _run(kind, killed, data, 2) == [0, 0]
  assert _checksums(killed) == _checksums(two)  # bitwise


def test_each_process_reads_its_half_of_every_global_batch(monkeypatch):
  from dropgraph_jax.data import images
  split = images.load_split("digits", "train")

  def batches(index, count):
    monkeypatch.setattr(jax, "process_index", lambda: index)
    monkeypatch.setattr(jax, "process_count", lambda: count)
    ds = images.train_dataset(split, global_batch=16, seed=3, augment="none")
    return [ds[step]["image"] for step in range(6)]

  whole = batches(0, 1)
  halves = [batches(i, 2) for i in (0, 1)]
  for step in range(6):
    first, second = (h[step].reshape(8, -1) for h in halves)
    assert first.shape[0] == second.shape[0] == 8
    # Disjoint (no image of one half in the other), together the global
    # batch of a single process, in order.
    assert not {r.tobytes() for r in first} & {r.tobytes() for r in second}
    np.testing.assert_array_equal(np.concatenate([halves[0][step],
                                                  halves[1][step]]),
                                  whole[step])
