"""The CLIs' --help lists the configs and their variants."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module,expected", [
    ("dropgraph_jax.main", "configs/cifar_resnet50.py:{none,dropout,"
     "spatial_dropout,drop_block,disout,dropgraph}"),
    ("dropgraph_jax.search", "configs/search/digits.py"),
])
def test_help_lists_the_configs(module, expected):
  out = subprocess.run([sys.executable, "-m", module, "--help"],
                       capture_output=True, text=True, timeout=120)
  # absl's --help exits with 1 after printing the usage.
  assert expected in out.stdout, out.stdout[:2000]
  assert "--coordinator_address" in out.stdout
