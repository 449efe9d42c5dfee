"""A checkpointable stream of batches planned one epoch at a time.

Graph batches (packed unions of small graphs, Cluster-GCN's subgraphs)
are planned per epoch from one ``np.random.Generator``: the plan of epoch
``e`` is ``plan(rng)`` after the plans of epochs ``0..e-1``. The stream
keeps the generator's state before each epoch, so any step is reached
without replaying the run, and its position is the step (``get_state`` /
``set_state``, as grain's iterators, for the checkpoint).
"""

from __future__ import annotations

import bisect
import copy
from typing import Any, Callable, Dict, List

import numpy as np


class EpochStream:
  """Step ``s`` -> ``build(p)`` of the ``s``-th planned item ``p``.

  ``plan(rng)`` returns an epoch's items (cheap descriptions of batches);
  ``build(item)`` makes the batch. The stream covers ``epochs`` epochs, or
  ``steps`` steps when given (as many epochs as they take): ``total``.
  """

  def __init__(self, rng: np.random.Generator, plan: Callable[[Any], List],
               build: Callable[[Any], Dict[str, Any]], epochs: int,
               steps: int = 0):
    self.plan, self.build, self.states, self.firsts = plan, build, [], [0]
    while len(self.states) < (0 if steps else epochs) or \
        self.firsts[-1] < steps:
      self.states.append(copy.deepcopy(rng.bit_generator.state))
      self.firsts.append(self.firsts[-1] + len(plan(rng)))
    self.total = steps or self.firsts[-1]
    self.step, self.cached = 0, (-1, [])

  def _items(self, epoch: int) -> List:
    if self.cached[0] != epoch:
      rng = np.random.default_rng()
      rng.bit_generator.state = self.states[epoch]
      self.cached = (epoch, self.plan(rng))
    return self.cached[1]

  def __next__(self) -> Dict[str, Any]:
    epoch = bisect.bisect_right(self.firsts, self.step) - 1
    item = self._items(epoch)[self.step - self.firsts[epoch]]
    self.step += 1
    return self.build(item)

  def get_state(self) -> Dict[str, int]:
    return {"step": self.step}

  def set_state(self, state) -> None:
    self.step = int(state["step"])
