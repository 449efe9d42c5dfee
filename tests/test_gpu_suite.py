"""The accelerator suite runs every row at smoke sizes on CPU (issue 20),
so it cannot rot while no GPU is lent."""

import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from experiments import gpu_suite, profile_step


@pytest.mark.slow
def test_smoke_run_writes_every_section_row_by_row(tmp_path):
  stem = gpu_suite.main(["--smoke", "--out-dir", str(tmp_path)])
  with open(stem + ".json") as f:
    record = json.load(f)
  assert record["command"].startswith("python -m experiments.gpu_suite")
  sections = [row["section"] for row in record["rows"]]
  assert set(sections) == set(gpu_suite.SECTIONS)
  # Most important first: the model rows lead, in the documented order.
  assert sections[0] == "model" and sections.index("eval") > sections.index(
      "search")
  model = [r["policy"] for r in record["rows"] if r["section"] == "model"]
  assert model[:1 + len(gpu_suite.POLICIES)] == ["none",
                                                  *gpu_suite.POLICIES]
  assert all(r["identical"] for r in record["rows"]
             if r["section"] == "eval")
  assert not [r for r in record["rows"] if "failed" in r]
  text = open(stem + ".md").read()
  for name in gpu_suite.SECTIONS:
    assert f"## {name}" in text
  assert os.path.basename(stem).startswith("gpu_suite_")


def test_unknown_section_is_refused(tmp_path):
  with pytest.raises(SystemExit, match="unknown section 'gpus'"):
    gpu_suite.main(["--smoke", "--sections", "gpus", "--out-dir",
                    str(tmp_path)])


def test_a_failing_section_is_a_row_and_the_next_section_runs(
    tmp_path, monkeypatch):
  def broken(cfg, rec):
    raise ModuleNotFoundError("No module named 'grain'")
  monkeypatch.setitem(gpu_suite.SECTIONS, "search", broken)
  stem = gpu_suite.main(["--smoke", "--sections", "search,rng",
                         "--out-dir", str(tmp_path)])
  with open(stem + ".json") as f:
    rows = json.load(f)["rows"]
  assert rows[0] == {"section": "search", "failed":
                     "ModuleNotFoundError: No module named 'grain'"}
  assert [r["section"] for r in rows[1:]] == ["rng"] * 3


def test_the_suite_imports_no_training_dependency():
  # The accelerator image has jax and flax but not grain / TFDS / clu: every
  # section but the search's must import and run with the core alone.
  code = ("import sys, experiments.gpu_suite; print(sorted(m for m in "
          "('grain', 'tensorflow', 'clu', 'ml_collections', "
          "'tensorflow_datasets') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, check=True, cwd=gpu_suite.report.ROOT)
  assert out.stdout.strip().splitlines()[-1] == "[]"


def test_profile_sums_kernel_kinds_without_their_numbers(tmp_path):
  f = jax.jit(lambda x: jnp.sin(x) @ x)
  x = jnp.ones((64, 64))
  f(x).block_until_ready()
  with jax.profiler.trace(str(tmp_path), create_perfetto_trace=True):
    f(x).block_until_ready()
  times = profile_step.kernel_times(str(tmp_path))
  assert times and all(v >= 0 for v in times.values())
  assert not [k for k in times if re.search(r"[._]\d+$", k)]
  rows = profile_step.table({"a": 5.0}, {"a": 7.0, "b": 3.0}, top=1)
  assert rows[2] == "| `b` | 0 | 3 | +3 |"
