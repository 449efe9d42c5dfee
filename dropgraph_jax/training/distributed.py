"""Several processes (hosts) in one run: JAX's multi-controller runtime.

Every process runs the same command; :func:`initialize` joins them before
any JAX computation:

- ``--coordinator_address=HOST:PORT --num_processes=N --process_id=I``
  (or the environment variables ``JAX_COORDINATOR_ADDRESS``,
  ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``) name the job explicitly: two
  processes on a laptop, or any launcher;
- without them, JAX's cluster auto-detection is used when it finds a
  cluster (SLURM, Open MPI, Cloud TPU pod slices, GKE, ...), and a single
  process runs alone otherwise.

On CPU the gloo collectives are selected, so the same command runs on a
laptop. The flag definitions live here so that the training and the search
CLIs share them.

After :func:`initialize`, :func:`is_primary` says which process writes
the run's files, and :func:`barrier` waits for every process (the workdir
is created by the primary; the others wait for it).
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import jax
from absl import flags
from jax.experimental import multihost_utils

ENV = {"coordinator_address": "JAX_COORDINATOR_ADDRESS",
       "num_processes": "JAX_NUM_PROCESSES", "process_id": "JAX_PROCESS_ID"}


def define_flags() -> None:
  """``--coordinator_address``, ``--num_processes``, ``--process_id``, as
  flags of the running CLI (so its ``--help`` shows them)."""
  main = sys.argv[0]  # absl's key for the main module's flags
  flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 "
                      f"(or ${ENV['coordinator_address']}); unset: JAX's "
                      "cluster auto-detection, else one process.",
                      module_name=main)
  flags.DEFINE_integer("num_processes", None, "Processes in the job (or "
                       f"${ENV['num_processes']}).", module_name=main)
  flags.DEFINE_integer("process_id", None, "This process's index in [0, "
                       f"num_processes) (or ${ENV['process_id']}).",
                       module_name=main)


def _setting(name: str, given):
  if given is not None:
    return given
  value = os.environ.get(ENV[name])
  if value is None or name == "coordinator_address":
    return value
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"${ENV[name]} must be an integer, got "
                     f"{value!r}.") from None


def _cluster_detected() -> bool:
  """Whether one of JAX's cluster environments (SLURM, MPI, TPU, ...) is
  present. Reads a private JAX module: if it moves, we run alone."""
  try:
    from jax._src import clusters
    return any(env.is_env_present()
               for env in clusters.ClusterEnv._cluster_types)
  except Exception:  # noqa: BLE001 (an API change means: no cluster)
    return False


def initialize(coordinator_address: Optional[str] = None,
               num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> bool:
  """Joins the job (see the module docstring); returns whether this is a
  multi-process run. Call before any JAX computation."""
  address = _setting("coordinator_address", coordinator_address)
  count = _setting("num_processes", num_processes)
  index = _setting("process_id", process_id)
  if address:
    if count is None or index is None or not 0 <= index < count:
      raise ValueError(
          f"--coordinator_address={address!r} needs --num_processes (got "
          f"{count}) and --process_id in [0, num_processes) (got {index}).")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(address, num_processes=count,
                               process_id=index)
    return count > 1
  if count is not None or index is not None:
    raise ValueError("--num_processes / --process_id need "
                     "--coordinator_address=HOST:PORT of process 0.")
  if _cluster_detected():
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize()
    return jax.process_count() > 1
  return False


def is_primary() -> bool:
  """Process 0: the one that writes logs, results and summaries."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier ``name``."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)
