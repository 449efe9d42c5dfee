"""The README's main job as a user runs it: what it prints."""

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")


@pytest.mark.slow
def test_main_job_says_what_it_does_in_few_lines(tmp_path):
  env = dict(os.environ, JAX_DISABLE_MOST_OPTIMIZATIONS="1",
             XLA_FLAGS="--xla_force_host_platform_device_count=1")
  out = subprocess.run(
      [sys.executable, "-m", "dropgraph_jax.main", "--config",
       os.path.join(ROOT, "configs", "digits.py"),
       f"--workdir={tmp_path}", "--config.num_epochs=3",
       "--config.eval_every_epochs=1", "--config.log_every_steps=10"],
      capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  lines = (out.stdout + out.stderr).strip().splitlines()
  assert len(lines) <= 40, lines
  text = "\n".join(lines)
  # A header per run: model, parameters, regularizer and sites, devices.
  assert re.search(r"resnet_digits on digits: [\d.]+M parameters, "
                   r"regularizer dropgraph at 6 sites, 66 steps on 1 cpu",
                   text), text
  assert "regularizer none, 66 steps" in text
  assert text.count("compiling the training step") == 2
  assert re.search(r"step \d+/66 \(\d+%\), loss [\d.]+, [\d.]+ steps/s, "
                   r"ETA \d+:\d\d:\d\d", text), text
  assert text.count("eval at step") == 6  # 2 during + 1 final, per run
  assert re.search(r"dropgraph +6 +0\.\d{4}", text), text
  assert "INFO" not in text and "oneDNN" not in text
  # No regularizer ramp logged for the run without a regularizer.
  rows = [json.loads(r) for r in
          (tmp_path / "baseline" / "log.txt").read_text().splitlines()]
  assert not any("train/regularizer_rate_factor" in r for r in rows)


@pytest.mark.parametrize("scores,shown", [
    ({"valid_perplexity": 91.5, "test_perplexity": 88.25}, "91.5000"),
    ({"test_bleu": 31.5, "test_perplexity": 6.5}, "31.5000"),
    ({"test_miou": 0.625, "test_pixel_accuracy": 0.75}, "0.6250"),
    ({"test_accuracy": 0.875}, "0.8750"),  # graph kinds have no test_loss
])
def test_the_closing_table_shows_each_kinds_own_scores(scores, shown):
  from dropgraph_jax import main
  run = {"regularizer": "dropgraph", "policy_sites": 3, "steps": 10,
         "wall_time_s": 1.0, **scores}
  table = main.summary([run, dict(run, regularizer="none")])
  assert next(iter(scores)) in table.splitlines()[1]
  assert table.count(shown) == 2 and len(table.splitlines()) == 4
