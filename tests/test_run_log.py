"""The run log: process 0 writes TensorBoard, log.txt and results.json;
the other processes write nothing and leave clu (TensorFlow) unimported."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import pytest

from dropgraph_jax.training import run_log


@pytest.mark.slow
def test_process_zero_writes_the_log_and_tensorboard(tmp_path):
  log = run_log.RunLog(str(tmp_path), total_steps=4)
  log.scalars(2, {"train/loss": 1.5})
  log.write_results({"test_accuracy": 0.5})
  log.close()
  with open(tmp_path / "log.txt") as f:
    assert [json.loads(line) for line in f] == [{"step": 2,
                                                 "train/loss": 1.5}]
  assert any(name.startswith("events.out") for name in os.listdir(tmp_path))
  with open(tmp_path / "results.json") as f:
    assert json.load(f) == {"test_accuracy": 0.5}


def test_without_tensorboard_the_log_is_still_written(tmp_path):
  import ml_collections
  config = ml_collections.ConfigDict({"tensorboard": False, "seed": 0})
  log = run_log.RunLog(str(tmp_path), total_steps=4, config=config)
  log.scalars(2, {"train/loss": 1.5})
  log.close()
  assert os.listdir(tmp_path) == ["log.txt"]


def test_other_processes_write_nothing(tmp_path, monkeypatch):
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  log = run_log.RunLog(str(tmp_path), total_steps=4)
  log.scalars(2, {"train/loss": 1.5, "eval/accuracy": 0.25})
  log.write_results({"test_accuracy": 0.5})
  log.close()
  assert os.listdir(tmp_path) == []


def test_other_processes_do_not_import_tensorflow(tmp_path):
  """clu's writers import TensorFlow (seconds of every start)."""
  code = textwrap.dedent(f"""
      import sys, jax
      jax.process_index = lambda: 1
      from dropgraph_jax.training import run_log
      log = run_log.RunLog({str(tmp_path)!r}, total_steps=4)
      log.scalars(1, {{"train/loss": 1.0}})
      log.close()
      print(sorted(m for m in ("tensorflow", "clu.metric_writers")
                   if m in sys.modules))
      """)
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, check=True, env=dict(
                           os.environ, JAX_PLATFORMS="cpu"))
  assert out.stdout.strip().splitlines()[-1] == "[]"
