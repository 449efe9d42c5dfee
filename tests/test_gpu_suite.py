"""The accelerator suite runs every row at smoke sizes on CPU (issue 20),
so it cannot rot while no GPU is lent."""

import json
import os

import pytest

from experiments import gpu_suite


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
  text = open(stem + ".md").read()
  for name in gpu_suite.SECTIONS:
    assert f"## {name}" in text
  assert os.path.basename(stem).startswith("gpu_suite_")


def test_unknown_section_is_refused(tmp_path):
  with pytest.raises(SystemExit, match="unknown section 'gpus'"):
    gpu_suite.main(["--smoke", "--sections", "gpus", "--out-dir",
                    str(tmp_path)])
