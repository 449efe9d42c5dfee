"""Test set-up: 8 simulated CPU devices for the data-parallel tests, and
one persistent compilation cache for the whole session.

Must run before JAX initialises its backends, hence at conftest import.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests check behaviour, not speed: XLA's cheapest compile (as the Flax
# examples' tests do) roughly halves the compile time of the model and
# trainer tests. Set here so that workers and CLI subprocesses inherit it.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
# Many tests compile the same programs (a tiny model's step in a trainer
# test, its kill-and-resume twin, a reproduction's seeds, the CLI runs in
# subprocesses): JAX's persistent cache compiles each once per session
# (programs that take over a second to compile). Measured on 6 trainer
# tests, one core: 171 s without, 95 s with an empty cache. The directory
# is made once by the first process that imports this file (pytest-xdist's
# controller) and inherited by the workers and their subprocesses.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _CACHE = tempfile.mkdtemp(prefix="dropgraph_jax_test_cache_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

import chex  # noqa: E402

chex.set_n_cpu_devices(8)
