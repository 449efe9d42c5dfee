"""The search's job pools (``dropgraph_jax.search.workers``): local
processes and Ray, with crashed, hung and failing jobs."""

import time

import pytest
from test_search import _search_config

from dropgraph_jax.search import engine, run, workers
from dropgraph_jax.search import space as space_lib


@pytest.mark.slow
def test_local_pool_requeues_crashed_and_timed_out_jobs(tmp_path):
  config = _search_config(**{"search.num_jobs": 6, "search.capacity": 4,
                             "search.minibatch": 2,
                             "search.backend": "local",
                             "search.num_workers": 2,
                             # The clock starts when a worker takes a job,
                             # after its imports (longer than this): the
                             # jobs that do not hang finish in time.
                             "search.job_timeout_s": 2.0,
                             "search.poll_s": 0.2})
  config.proxy.crash_ids = [1]
  config.proxy.hang_ids = [2]
  config.proxy.hang_s = 600.0
  summary = run.run_search(config, str(tmp_path))
  jobs = engine.read_jobs(str(tmp_path / "reinforce" / "jobs.jsonl"))
  assert sorted(j["id"] for j in jobs) == list(range(6))  # none lost, once
  attempts = {j["id"]: j["attempt"] for j in jobs}
  assert attempts[1] == 1 and attempts[2] == 1
  assert all(attempts[i] == 0 for i in (0, 3, 4, 5))
  assert summary["reinforce"]["failed"] == 0
  assert summary["reinforce"]["updates"] == 3



def test_a_job_times_out_from_when_its_worker_took_it():
  pool = object.__new__(workers.ProcessPool)  # no processes needed
  pool.timeout = 2.0
  ago = time.time() - 10.0  # submitted 10 s ago
  assert not pool._overdue({"since": ago, "taken": False})  # still importing
  assert pool._overdue({"since": ago, "taken": True})
  late = time.time() - (2.0 + workers.STARTUP_S + 1.0)
  assert pool._overdue({"since": late, "taken": False})  # a hung start
  pool.timeout = 0.0  # no time-out
  assert not pool._overdue({"since": late, "taken": True})



@pytest.mark.slow
def test_a_job_failing_every_attempt_is_recorded_not_lost(tmp_path):
  config = _search_config(**{"search.num_jobs": 4, "search.capacity": 2,
                             "search.minibatch": 2,
                             "search.max_attempts": 1})
  config.proxy.name = "image"  # with a model that cannot take the data
  config.proxy.model = "resnet_digits"
  config.proxy.dataset = "digits"
  config.proxy.steps = 1
  config.proxy.batch_size = 4
  search = engine.Search(space_lib.ConvSpace(("stage2/block0/bn1",)),
                         config.search, config.controller.to_dict(),
                         {**config.proxy.to_dict(), "model": "no_such"},
                         str(tmp_path))
  with pytest.raises(RuntimeError, match="every job failed"):
    search.run()
  jobs = engine.read_jobs(str(tmp_path / "jobs.jsonl"))
  assert len(jobs) == 4 and all(j["status"] == "failed" for j in jobs)
  assert all("Unknown model" in j["error"] for j in jobs)



@pytest.mark.slow
def test_ray_backend_runs_and_requeues_a_crashed_job(tmp_path):
  pytest.importorskip("ray")  # the optional extra: pip install -e ".[ray]"
  import ray
  config = _search_config(**{"search.num_jobs": 6, "search.capacity": 4,
                             "search.minibatch": 2, "search.backend": "ray",
                             "search.num_workers": 2,
                             "search.poll_s": 0.5})
  config.proxy.crash_ids = [3]
  try:
    summary = run.run_search(config, str(tmp_path))
  finally:
    ray.shutdown()
  jobs = engine.read_jobs(str(tmp_path / "reinforce" / "jobs.jsonl"))
  assert sorted(j["id"] for j in jobs) == list(range(6))
  assert {j["id"]: j["attempt"] for j in jobs}[3] == 1
  assert summary["reinforce"]["updates"] == 3
