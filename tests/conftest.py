"""Test set-up: 8 simulated CPU devices for the data-parallel tests.

Must run before JAX initialises its backends, hence at conftest import.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests check behaviour, not speed: XLA's cheapest compile (as the Flax
# examples' tests do) roughly halves the compile time of the model and
# trainer tests. Set here so that workers and CLI subprocesses inherit it.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import chex  # noqa: E402

chex.set_n_cpu_devices(8)
