"""Each host's part of the input in a multi-process run.

With ``count`` processes, each reads ``global_batch / count`` examples per
step, its contiguous part of the step's global batch (:func:`host_slice`);
batch-level augmentations draw for the whole global batch and keep the
host's rows (:class:`HostRows`), and per-record ones are mapped before the
slice, so a run sees the same augmented global batches for any number of
hosts. Evaluation splits each split over the hosts with the same number of
steps on every host (:func:`host_eval_batches`).
"""

from __future__ import annotations

import dataclasses
import sys

import grain
import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class HostRows:
  """This host's rows ``[start, start + size)`` of a global batch of
  ``total``. A batch-level augmentation draws for every row of the global
  batch, with the step's generator (the same on every host), and keeps
  this host's rows: the run's augmentations do not depend on the number
  of hosts, and no two hosts share draws."""
  start: int
  size: int
  total: int

  def of(self, values):
    return values[self.start:self.start + self.size]


def this_host_rows(global_batch: int) -> HostRows:
  """This process's :class:`HostRows` of ``global_batch``."""
  local = global_batch // jax.process_count()
  return HostRows(jax.process_index() * local, local, global_batch)


def host_slice(stream: grain.MapDataset, global_batch: int, index: int,
               count: int) -> grain.MapDataset:
  """Host ``index``'s part of ``stream`` (of ``count`` hosts): of the
  examples ``[s * B, (s + 1) * B)`` of step ``s``, those from
  ``s * B + index * b`` on, ``b = B / count`` of them; batched by ``b``,
  the hosts' batches make up each global batch in stream order."""
  if count == 1:
    return stream
  local = global_batch // count

  def pick(j: int):
    return stream[(j // local) * global_batch + index * local + j % local]
  return grain.MapDataset.range(sys.maxsize).map(pick)


def host_eval_batches(n: int, batch: int):
  """This host's share of an evaluation of ``n`` examples, as
  ``(indices, valid)`` pairs of ``batch`` entries: host ``i`` of ``count``
  takes examples ``i, i + count, ...``. Every host yields the same number
  of batches (each batch is one step of a computation all hosts take part
  in); a host with fewer examples pads with masked copies."""
  count, index = jax.process_count(), jax.process_index()
  mine = np.arange(n)[index::count]
  per_host = -(-n // count)  # ceil: the largest host's share
  for start in range(0, per_host, batch):
    picked = mine[start:start + batch]
    fill = np.full(batch - len(picked), picked[-1] if len(picked) else 0)
    yield (np.concatenate([picked, fill]).astype(np.int64),
           np.arange(batch) < len(picked))
