"""Test set-up: 8 simulated CPU devices for the data-parallel tests.

Must run before JAX initialises its backends, hence at conftest import.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import chex  # noqa: E402

chex.set_n_cpu_devices(8)
