"""Worker pools that evaluate child jobs: inline, local processes, Ray.

A *job* is ``{"id", "attempt", "tokens", "policy"}`` (plain JSON). The
pool runs a *group* of jobs at a time (``proxy.run_group``: one job, or
several children trained in one program, ``search.children_per_job``) and
reports one ``JobResult(id, attempt, reward | None, error, wall_s)`` per
job; a group that fails fails all its jobs. The engine owns the queues; a
pool only runs what it is given and says what finished.

* :class:`InlinePool`: runs each job in this process when polled, one at a
  time, in submission order (deterministic; for tests and debugging; no
  time-outs).
* :class:`ProcessPool` (``backend='local'``, the default): ``num_workers``
  long-lived processes (``spawn``, so JAX is never forked), each running
  one job at a time and keeping its compiled programs between jobs. A
  worker that dies (segfault, OOM kill) or outlives ``job_timeout_s`` is
  killed and replaced, and its job is reported failed (the engine re-queues
  it). The job's clock starts when the worker takes the job, so a new
  worker's imports do not count against it; a worker that has not taken
  its job ``STARTUP_S`` seconds after the time-out would have ended it is
  replaced too (a hung import).
* :class:`RayPool` (``backend='ray'``): one Ray task per job on an existing
  cluster (``address``) or a local one; a task that raises, whose worker
  dies, or that outlives the time-out (cancelled with ``force=True``) is
  reported failed. Ray is the optional extra ``pip install -e ".[ray]"``.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import socket
import time
import traceback
from typing import Any, Dict, List, Optional

from dropgraph_jax.search import proxy

BACKENDS = ("inline", "local", "ray")
# A spawned worker imports JAX and the proxy before it takes its first job
# (~5-10 s on a loaded 2-core machine): this much on top of the job's
# time-out is allowed for it.
STARTUP_S = 60.0
TAKEN = "taken"  # a worker's message: the job's clock starts now


@dataclasses.dataclass
class JobResult:
  id: int
  attempt: int
  reward: Optional[float]
  error: str = ""
  wall_s: float = 0.0

  @property
  def ok(self) -> bool:
    return self.reward is not None


def _run(proxy_config: Dict[str, Any], group: List[Dict[str, Any]]
         ) -> List[JobResult]:
  start = time.time()
  try:
    rewards = proxy.run_group(proxy_config, group)
    wall = (time.time() - start) / len(group)
    return [JobResult(job["id"], job["attempt"], float(r), wall_s=wall)
            for job, r in zip(group, rewards)]
  except Exception as e:  # a child that cannot train is a failed job
    headline = f"{type(e).__name__}: {str(e)[:500]}"
    return _failed(group, f"{headline}\n{traceback.format_exc()[-1500:]}",
                   time.time() - start)


def _failed(group, why: str, wall_s: float) -> List[JobResult]:
  return [JobResult(job["id"], job["attempt"], None, why, wall_s)
          for job in group]


class InlinePool:
  """Runs jobs in this process, in order, when polled."""

  def __init__(self, proxy_config: Dict[str, Any], num_workers: int = 1):
    self.proxy_config = proxy_config
    self.capacity = num_workers
    self.pending: List[Dict[str, Any]] = []

  def free_slots(self) -> int:
    return max(0, self.capacity - len(self.pending))

  def submit(self, group: List[Dict[str, Any]]) -> None:
    self.pending.append(group)

  def poll(self, timeout_s: float) -> List[JobResult]:
    del timeout_s
    if not self.pending:
      return []
    return _run(self.proxy_config, self.pending.pop(0))

  def close(self) -> None:
    self.pending = []


def _worker_main(proxy_config, conn) -> None:
  while True:
    group = conn.recv()
    if group is None:
      return
    conn.send(TAKEN)
    conn.send([dataclasses.asdict(r) for r in _run(proxy_config, group)])


class ProcessPool:
  """``num_workers`` spawned processes, one job each at a time."""

  def __init__(self, proxy_config: Dict[str, Any], num_workers: int,
               job_timeout_s: float):
    if num_workers < 1:
      raise ValueError(f"search.num_workers must be >= 1, got "
                       f"{num_workers}.")
    self.proxy_config = proxy_config
    self.timeout = job_timeout_s
    self.ctx = mp.get_context("spawn")
    self.workers: List[Dict[str, Any]] = [self._start()
                                          for _ in range(num_workers)]

  def _start(self) -> Dict[str, Any]:
    parent, child = self.ctx.Pipe()
    proc = self.ctx.Process(target=_worker_main,
                            args=(self.proxy_config, child), daemon=True)
    proc.start()
    child.close()
    return {"proc": proc, "conn": parent, "job": None, "since": 0.0,
            "taken": False}

  def free_slots(self) -> int:
    return sum(w["job"] is None for w in self.workers)

  def submit(self, group: List[Dict[str, Any]]) -> None:
    for w in self.workers:
      if w["job"] is None:
        w["conn"].send(group)
        w["job"], w["since"], w["taken"] = group, time.time(), False
        return
    raise RuntimeError("ProcessPool.submit: no free worker.")

  def _replace(self, i: int, why: str) -> List[JobResult]:
    w = self.workers[i]
    if w["proc"].is_alive():
      w["proc"].kill()
    w["proc"].join(5)
    w["conn"].close()
    self.workers[i] = self._start()
    return _failed(w["job"], why, time.time() - w["since"])

  def _overdue(self, w: Dict[str, Any]) -> bool:
    allowed = self.timeout + (0.0 if w["taken"] else STARTUP_S)
    return bool(self.timeout) and time.time() - w["since"] > allowed

  def poll(self, timeout_s: float) -> List[JobResult]:
    """Waits up to ``timeout_s`` for results; reports crashes, time-outs."""
    deadline = time.time() + timeout_s
    while True:
      results = []
      for i, w in enumerate(self.workers):
        if w["job"] is None:
          continue
        if w["conn"].poll():
          try:
            data = w["conn"].recv()
          except (EOFError, OSError):
            results += self._replace(i, "worker died")
            continue
          if data == TAKEN:
            w["since"], w["taken"] = time.time(), True
            continue
          results += [JobResult(**d) for d in data]
          w["job"] = None
        elif not w["proc"].is_alive():
          results += self._replace(
              i, f"worker died (exit code {w['proc'].exitcode})")
        elif self._overdue(w):
          results += self._replace(
              i, f"timed out after {self.timeout:.0f} s" if w["taken"] else
              f"did not start the job within {self.timeout + STARTUP_S:.0f}"
              " s of its submission")
      if results or time.time() >= deadline:
        return results
      time.sleep(0.05)

  def close(self) -> None:
    for w in self.workers:
      try:
        w["conn"].send(None)
      except (OSError, BrokenPipeError):
        pass
    for w in self.workers:
      w["proc"].join(2)
      if w["proc"].is_alive():
        w["proc"].kill()


class RayPool:
  """One Ray task per job."""

  def __init__(self, proxy_config: Dict[str, Any], num_workers: int,
               job_timeout_s: float, address: str = "",
               cpus_per_job: float = 1.0):
    try:  # Ray is an optional extra: imported only for backend='ray'.
      import ray
    except ImportError:
      raise ValueError("search.backend='ray' needs Ray: pip install -e "
                       "\".[ray]\".") from None
    self.ray = ray
    if address and address != "auto":
      _check_reachable(address)
    try:
      if not ray.is_initialized():
        ray.init(address=address or None, include_dashboard=False,
                 log_to_driver=False, ignore_reinit_error=True)
    except Exception as e:  # ConnectionError and Ray's own kinds
      raise ValueError(f"search.ray_address={address!r} is unreachable "
                       f"({type(e).__name__}: {str(e)[:200]}).") from None
    self.task = ray.remote(num_cpus=cpus_per_job, max_retries=0)(_run)
    self.proxy_ref = ray.put(proxy_config)
    self.capacity = num_workers
    self.timeout = job_timeout_s
    self.running: Dict[Any, Dict[str, Any]] = {}

  def free_slots(self) -> int:
    return max(0, self.capacity - len(self.running))

  def submit(self, group: List[Dict[str, Any]]) -> None:
    ref = self.task.remote(self.proxy_ref, group)
    self.running[ref] = {"job": group, "since": time.time()}

  def poll(self, timeout_s: float) -> List[JobResult]:
    ray = self.ray
    if not self.running:
      return []
    done, _ = ray.wait(list(self.running), num_returns=1, timeout=timeout_s)
    results = []
    for ref in done:
      info = self.running.pop(ref)
      try:
        results += ray.get(ref)
      except Exception as e:  # RayTaskError, WorkerCrashedError, ...
        results += _failed(info["job"], f"{type(e).__name__}: {str(e)[:500]}",
                           time.time() - info["since"])
    if self.timeout:
      for ref, info in list(self.running.items()):
        if time.time() - info["since"] > self.timeout:
          ray.cancel(ref, force=True)
          self.running.pop(ref)
          results += _failed(info["job"],
                             f"timed out after {self.timeout:.0f} s",
                             time.time() - info["since"])
    return results

  def close(self) -> None:
    for ref in list(self.running):
      self.ray.cancel(ref, force=True)
    self.running = {}


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
  """A TCP connect to ``[ray://]host:port``: Ray itself retries for
  minutes before giving up on an address nobody listens at."""
  host, _, port = address.split("://")[-1].rpartition(":")
  if not host or not port.isdigit():
    raise ValueError(f"search.ray_address must be 'host:port', "
                     f"'ray://host:port' or 'auto', got {address!r}.")
  try:
    socket.create_connection((host, int(port)), timeout=timeout_s).close()
  except OSError as e:
    raise ValueError(f"search.ray_address={address!r} is unreachable "
                     f"({e}). Start the cluster (`ray start --head`) or "
                     "leave the address empty for a local Ray.") from None


def make_pool(search_config, proxy_config: Dict[str, Any]):
  backend = search_config.backend
  if backend == "inline":
    return InlinePool(proxy_config, search_config.num_workers)
  if backend == "local":
    return ProcessPool(proxy_config, search_config.num_workers,
                       search_config.job_timeout_s)
  if backend == "ray":
    return RayPool(proxy_config, search_config.num_workers,
                   search_config.job_timeout_s, search_config.ray_address)
  raise ValueError(f"search.backend must be one of {list(BACKENDS)}, got "
                   f"{backend!r}.")
