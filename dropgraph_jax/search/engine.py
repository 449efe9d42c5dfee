"""The asynchronous AutoDropout search ("Improving Parallelism").

State (all of it checkpointed after every finished job and every update):

* ``unfinished``: jobs sampled but without a reward, at most ``capacity``
  (C). Each holds its tokens, ``log P(r; theta_i)`` at sampling time, the
  update count ``i`` it was sampled at, and its attempt number. Whenever
  fewer than C are unfinished (and the job budget allows), the controller
  samples ``C - |unfinished|`` new ones.
* ``finished``: jobs with a reward not yet used; as soon as ``minibatch``
  (M) are there, M of them (oldest first) make one REINFORCE update
  (:mod:`reinforce`, importance-weighted) and leave the queue.
* the controller parameters, Adam state, moving-average baseline and the
  sampling key; counters; every finished job in ``jobs.jsonl``.

Faults: a job whose worker crashes, raises or times out is re-queued with
``attempt + 1`` (up to ``max_attempts``, then recorded as failed in
``jobs.jsonl`` with its error, never silently dropped). A result is accepted
only for the job's current attempt and only once, so a late duplicate is
never counted twice. A restarted search restores the latest checkpoint,
truncates ``jobs.jsonl`` to what that checkpoint had recorded, and
re-submits every unfinished job: with the inline backend the continuation
is exactly the uninterrupted search (tested).

``method='random'``: uniform tokens, no controller updates; the same
budget, pools and logs (the paper's random-search baseline).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
from typing import Any, Dict, List, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dropgraph_jax.regularizers import _validate
from dropgraph_jax.search import controller as ctrl
from dropgraph_jax.search import reinforce
from dropgraph_jax.search.space import random_tokens
from dropgraph_jax.search.workers import make_pool
from dropgraph_jax.training import checkpointing

METHODS = ("reinforce", "random")
RANDOM_STREAM = 1  # numpy seed-sequence tag of random search's draws


class SearchPreempted(RuntimeError):
  """Raised by ``preempt_after_jobs`` to simulate a killed search."""


@dataclasses.dataclass
class SearchResult:
  best_reward: float
  best_tokens: List[int]
  jobs: List[Dict[str, Any]]     # every finished job, in finishing order
  updates: int
  params: Any


# Numeric search fields: name -> (lowest, highest, integer); the fields of
# OPEN_LOW must be strictly above their lowest value.
SEARCH_NUMBERS = {
    "num_jobs": (1, None, True), "capacity": (1, None, True),
    "minibatch": (1, None, True), "num_workers": (1, None, True),
    "max_attempts": (1, None, True), "children_per_job": (1, None, True),
    "checkpoint_every": (1, None, True), "seed": (0, None, True),
    "preempt_after_jobs": (0, None, True), "learning_rate": (0, None, False),
    "baseline_decay": (0, 1, False), "entropy_weight": (0, None, False),
    "max_importance_weight": (0, None, False),
    "job_timeout_s": (0, None, False), "poll_s": (0, None, False),
}
OPEN_LOW = ("learning_rate", "job_timeout_s", "poll_s")


def check_search_config(scfg) -> None:
  """Errors a search must raise before any job starts."""
  if scfg.method not in METHODS:
    raise ValueError(f"search.method must be one of {list(METHODS)}, got "
                     f"{scfg.method!r}.")
  for name, (low, high, integer) in SEARCH_NUMBERS.items():
    if name in scfg:
      _validate.check_number("search config", f"search.{name}", scfg[name],
                             low, high, integer=integer,
                             low_open=name in OPEN_LOW)
  per_job = int(scfg.get("children_per_job", 1))
  if not 1 <= per_job <= scfg.capacity:
    raise ValueError(f"search.children_per_job must be in [1, capacity="
                     f"{scfg.capacity}], got {per_job}.")
  if scfg.minibatch > scfg.capacity:
    raise ValueError(f"search.minibatch M={scfg.minibatch} is larger than "
                     f"the capacity C={scfg.capacity} of the unfinished "
                     "queue: no update could ever be made. Use M <= C.")
  if scfg.method == "reinforce" and scfg.minibatch > scfg.num_jobs:
    raise ValueError(f"search.minibatch M={scfg.minibatch} exceeds the job "
                     f"budget num_jobs={scfg.num_jobs}.")


class Search:
  """One search run in ``workdir``; :meth:`run` to completion."""

  def __init__(self, space, search_config, controller_config: Dict[str, Any],
               proxy_config: Dict[str, Any], workdir: str):
    check_search_config(search_config)
    self.space, self.cfg, self.proxy_config = space, search_config, \
        proxy_config
    self.workdir = workdir
    os.makedirs(workdir, exist_ok=True)
    self.ccfg = ctrl.ControllerConfig(
        vocab_sizes=ctrl.check_vocab(space.vocab_sizes()),
        **controller_config)
    self.tx = optax.adam(search_config.learning_rate)
    key = jax.random.key(search_config.seed)
    params = ctrl.init(self.ccfg, jax.random.fold_in(key, 1))
    self.tree = {"params": params, "opt_state": self.tx.init(params),
                 "key": jax.random.key_data(jax.random.fold_in(key, 2))}
    self.meta = {"next_id": 0, "updates": 0, "baseline": None,
                 "unfinished": [], "finished": [], "jobs_logged": 0,
                 "events": 0}
    self.jobs_path = os.path.join(workdir, "jobs.jsonl")
    self.updates_path = os.path.join(workdir, "updates.jsonl")
    self.mngr = checkpointing.manager(
        os.path.join(workdir, "search_state"), save_every=1, keep=2,
        async_save=False)
    self._sample = jax.jit(
        lambda params, key, n: ctrl.sample(self.ccfg, params, key, n),
        static_argnums=2)
    self._update = jax.jit(self._update_fn)
    self._restore()

  # --- state ------------------------------------------------------------------
  def _restore(self) -> None:
    restored = checkpointing.restore_latest(self.mngr, self.tree)
    if restored is None:
      for path in (self.jobs_path, self.updates_path):
        if os.path.exists(path):
          os.remove(path)
      return
    _, self.tree, self.meta = restored
    _truncate(self.jobs_path, self.meta["jobs_logged"])
    _truncate(self.updates_path, self.meta["updates"])
    logging.info("search resumed: %d jobs sampled, %d updates",
                 self.meta["next_id"], self.meta["updates"])

  def _checkpoint(self, force: bool = False) -> None:
    self.meta["events"] += 1
    if not force and self.meta["events"] % self.cfg.checkpoint_every:
      return
    checkpointing.save(self.mngr, self.meta["events"], self.tree,
                       json.loads(json.dumps(self.meta)), force=True)

  # --- sampling ---------------------------------------------------------------
  def _refill(self) -> None:
    missing = min(self.cfg.capacity - len(self.meta["unfinished"]),
                  self.cfg.num_jobs - self.meta["next_id"])
    if missing <= 0:
      return
    if self.cfg.method == "random":
      # One stream per job: a resumed random search draws what the
      # uninterrupted one would.
      first = self.meta["next_id"]
      tokens = [random_tokens(self.space, np.random.default_rng(
          [self.cfg.seed, RANDOM_STREAM, first + i])) for i in range(missing)]
      log_probs = [-float(np.sum(np.log(self.space.vocab_sizes())))] * \
          missing
    else:
      key = jax.random.wrap_key_data(self.tree["key"])
      key, sub = jax.random.split(key)
      self.tree["key"] = jax.random.key_data(key)
      toks, lps = self._sample(self.tree["params"], sub, missing)
      tokens = np.asarray(toks).tolist()
      log_probs = np.asarray(lps).astype(float).tolist()
    for t, lp in zip(tokens, log_probs):
      self.meta["unfinished"].append({
          "id": self.meta["next_id"], "attempt": 0, "tokens": t,
          "log_prob": lp, "sampled_at_update": self.meta["updates"]})
      self.meta["next_id"] += 1

  # --- updates ----------------------------------------------------------------
  def _update_fn(self, params, opt_state, tokens, old_lp, rewards, baseline):
    loss_fn = functools.partial(
        reinforce.surrogate_loss,
        functools.partial(ctrl.log_prob, self.ccfg), tokens=tokens,
        old_log_prob=old_lp, rewards=rewards, baseline=baseline,
        max_weight=self.cfg.max_importance_weight or None,
        entropy_fn=functools.partial(ctrl.entropy, self.ccfg),
        entropy_weight=self.cfg.entropy_weight)
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = self.tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, aux

  def _maybe_update(self) -> None:
    m = self.cfg.minibatch
    while self.cfg.method == "reinforce" and len(self.meta["finished"]) >= m:
      batch = self.meta["finished"][:m]
      self.meta["finished"] = self.meta["finished"][m:]
      rewards = np.array([j["reward"] for j in batch], np.float32)
      baseline = self.meta["baseline"]
      if baseline is None:
        baseline = float(rewards.mean())
      params, opt_state, loss, aux = self._update(
          self.tree["params"], self.tree["opt_state"],
          jnp.asarray([j["tokens"] for j in batch], jnp.int32),
          jnp.asarray([j["log_prob"] for j in batch], jnp.float32),
          jnp.asarray(rewards), jnp.float32(baseline))
      if not (np.isfinite(float(loss)) and checkpointing.all_finite(params)):
        raise FloatingPointError(
            f"search update {self.meta['updates'] + 1}: the controller's loss"
            f" ({float(loss)}) or parameters are not finite; the search "
            "stopped before saving them (the last checkpoint is kept). Check "
            "search.learning_rate and the rewards.")
      self.tree["params"], self.tree["opt_state"] = params, opt_state
      self.meta["baseline"] = reinforce.update_baseline(
          baseline, rewards, self.cfg.baseline_decay)
      self.meta["updates"] += 1
      weights = np.asarray(aux["importance_weight"])
      _append(self.updates_path, {
          "update": self.meta["updates"], "loss": float(loss),
          "mean_reward": float(rewards.mean()), "baseline": baseline,
          "importance_weight_mean": float(weights.mean()),
          "importance_weight_max": float(weights.max()),
          "staleness_mean": float(np.mean(
              [self.meta["updates"] - 1 - j["sampled_at_update"]
               for j in batch]))})

  # --- results ----------------------------------------------------------------
  def _on_result(self, result) -> None:
    queue = self.meta["unfinished"]
    match = [j for j in queue if j["id"] == result.id and
             j["attempt"] == result.attempt]
    if not match:  # stale attempt or duplicate: never counted twice
      logging.warning("ignoring result of job %d attempt %d", result.id,
                      result.attempt)
      return
    job = match[0]
    if result.ok:
      queue.remove(job)
      done = {**job, "reward": result.reward, "wall_s": result.wall_s}
      self.meta["finished"].append(done)
      self._log_job(done, "ok")
    elif job["attempt"] + 1 < self.cfg.max_attempts:
      logging.warning("job %d failed (%s); re-queued", job["id"],
                      result.error.splitlines()[0] if result.error else "")
      job["attempt"] += 1
      self.running.discard(job["id"])
    else:
      queue.remove(job)
      self._log_job({**job, "reward": None, "error": result.error},
                    "failed")

  def _log_job(self, job: Dict[str, Any], status: str) -> None:
    self.running.discard(job["id"])
    line = {k: job[k] for k in ("id", "attempt", "tokens", "log_prob",
                                "sampled_at_update", "reward")}
    line.update(status=status, wall_s=job.get("wall_s", 0.0),
                policy=self.space.decode(job["tokens"]).to_dict(),
                error=job.get("error", ""))
    _append(self.jobs_path, line)
    self.meta["jobs_logged"] += 1

  # --- the loop ---------------------------------------------------------------
  def run(self, preempt_after_jobs: int = 0) -> SearchResult:
    self.running = set()
    pool = make_pool(self.cfg, self.proxy_config)
    try:
      while True:
        self._refill()
        waiting = [j for j in self.meta["unfinished"]
                   if j["id"] not in self.running]
        size = self.cfg.get("children_per_job", 1)
        while waiting and pool.free_slots() > 0:
          group, waiting = waiting[:size], waiting[size:]
          pool.submit([{"id": j["id"], "attempt": j["attempt"],
                        "tokens": j["tokens"],
                        "policy": self.space.decode(j["tokens"]).to_dict()}
                       for j in group])
          self.running.update(j["id"] for j in group)
        if not self.meta["unfinished"]:
          self._checkpoint(force=True)
          break
        for result in pool.poll(self.cfg.poll_s):
          self._on_result(result)
          self._maybe_update()
          self._checkpoint()
          if preempt_after_jobs and \
              self.meta["jobs_logged"] >= preempt_after_jobs:
            raise SearchPreempted(
                f"simulated preemption after {preempt_after_jobs} jobs")
    finally:
      pool.close()
    self.mngr.wait_until_finished()
    jobs = read_jobs(self.jobs_path)
    ok = [j for j in jobs if j["reward"] is not None]
    if not ok:
      raise RuntimeError(f"search in {self.workdir}: every job failed; see "
                         f"{self.jobs_path}.")
    best = max(ok, key=lambda j: j["reward"])
    self.space.decode(best["tokens"]).save(
        os.path.join(self.workdir, "best_policy.json"))
    with open(os.path.join(self.workdir, "best.json"), "w") as f:
      json.dump({"id": best["id"], "reward": best["reward"],
                 "tokens": best["tokens"], "jobs": len(jobs),
                 "failed": len(jobs) - len(ok),
                 "updates": self.meta["updates"]}, f, indent=2)
    return SearchResult(best["reward"], best["tokens"], jobs,
                        self.meta["updates"], self.tree["params"])


def read_jobs(path: str) -> List[Dict[str, Any]]:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def best_so_far(jobs: List[Dict[str, Any]]) -> List[Optional[float]]:
  """Best reward among the first k finished jobs, for k = 1..len(jobs)."""
  out, best = [], None
  for job in jobs:
    if job["reward"] is not None and (best is None or job["reward"] > best):
      best = job["reward"]
    out.append(best)
  return out


def _append(path: str, record: Dict[str, Any]) -> None:
  with open(path, "a") as f:
    f.write(json.dumps(record) + "\n")
    f.flush()
    os.fsync(f.fileno())


def _truncate(path: str, lines: int) -> None:
  """Keeps the first ``lines`` lines: what the restored checkpoint saw."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    kept = f.readlines()[:lines]
  with open(f"{path}.tmp", "w") as f:
    f.writelines(kept)
  os.replace(f"{path}.tmp", path)
