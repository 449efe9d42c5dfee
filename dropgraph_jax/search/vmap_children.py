"""Several children in one compiled program, and successive halving.

The paper names the search's cost as its main weakness. Children of one
architecture that differ only in their ConvNet patterns can share one
compiled program:
every pattern field is a traced scalar (:mod:`dropgraph_jax.patterns.conv`),
so :func:`stack_policies` turns K policies into per-site arrays of shape
``(K,)`` and one ``jax.vmap``-ed step trains all K children, each with its
own patterns, parameters, batch statistics and optimizer state, on the same
batches and step keys as the sequential child of
:class:`~dropgraph_jax.search.proxy.ImageProxy`. A
site without a pattern in some child becomes ``prob = 0`` there (the
identity), and the ``residual`` choice is a traced selection
(:func:`dropgraph_jax.models.sites.residual_pattern`). Masks are
bit-identical to the sequential child's; rewards agree up to the float
reassociation of batched convolutions (tested). On a CPU the children run
in turn through that one program (``mode='loop'``) instead of side by
side (see :func:`train_children`).

Successive halving (``halving_eta`` > 1): all K children train
``halving_min_steps`` steps and are scored on the validation split; the
best ``ceil(K / eta)`` continue to ``eta`` times as many steps, and so on
until ``steps``. A child stopped early reports its accuracy at the rung it
reached: a low-fidelity reward, by design lower for hopeless patterns
(Jamieson & Talwalkar 2016; the cosine schedule runs over ``steps`` for
every child, so stopped children are not annealed).
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from dropgraph_jax.patterns import ConvPattern, Policy

# The value a site without a pattern gets in a stacked child (prob 0:
# the identity); residual False so that it is never the residual choice.
_OFF = ConvPattern(height=1, width=1, share_c=True, residual=False, prob=0.0)
_FIELDS = ("height", "width", "stride_h", "stride_w", "repeats_h",
           "repeats_w", "rotate", "shear_x", "shear_y", "share_c",
           "residual", "prob")
_DTYPES = {"rotate": np.float32, "shear_x": np.float32,
           "shear_y": np.float32, "prob": np.float32, "share_c": np.bool_,
           "residual": np.bool_}


def stack_policies(policies: Sequence[Policy]
                   ) -> Optional[Tuple[str, Dict[str, Dict[str, np.ndarray]]]]:
  """``(placement, {site: {field: (K,) array}})``, or ``None`` when the
  policies cannot share a program (a non-ConvPattern spec, or different
  placements)."""
  sites = sorted({s for p in policies for s in p.sites})
  placements = set()
  for p in policies:
    for spec in p.sites.values():
      if not isinstance(spec, ConvPattern):
        return None
      placements.add(spec.placement)
  if len(placements) > 1:
    return None
  table = {}
  for site in sites:
    specs = [p.sites.get(site, _OFF) for p in policies]
    table[site] = {f: np.asarray([getattr(s, f) for s in specs],
                                 _DTYPES.get(f, np.int32)) for f in _FIELDS}
  return (placements.pop() if placements else "wrap"), table


def policy_from_table(placement: str, table) -> Policy:
  """One child's policy from its row of the (traced) table."""
  return Policy({site: ConvPattern(placement=placement, **fields)
                 for site, fields in table.items()})


def train_children(proxy, policies: Sequence[Policy], eta: int = 1,
                   min_steps: int = 0, mode: str = "auto") -> List[float]:
  """Rewards of ``policies`` trained with one compiled step.

  ``mode='vmap'``: all children in one ``jax.vmap``-ed step (an
  accelerator's way to use its width). ``mode='loop'``: the same traced
  step compiled once and run for each child in turn (on a CPU, vmapped
  per-child convolution weights become grouped convolutions, which XLA's
  CPU backend runs slowly, so sharing the compilation is what pays).
  ``'auto'``: ``'loop'`` on CPU, ``'vmap'`` elsewhere.
  """
  if mode == "auto":
    mode = "loop" if jax.default_backend() == "cpu" else "vmap"
  if mode not in ("vmap", "loop"):
    raise ValueError(f"train_children: mode must be 'auto', 'vmap' or "
                     f"'loop', got {mode!r}.")
  stacked = stack_policies(policies)
  if stacked is None:
    return [proxy.train_one(p) for p in policies]
  placement, table = stacked
  k = len(policies)

  def one_step(row, params, stats, opt_state, x, y, key):
    model = proxy.model(policy_from_table(placement, row))
    return proxy.step(model, params, stats, opt_state, x, y, key)

  init = proxy.init()
  rows = jax.tree.map(jnp.asarray, table)
  if mode == "vmap":
    vstep = jax.jit(jax.vmap(one_step, in_axes=(0, 0, 0, 0, None, None,
                                                None)))
    vcorrect = jax.jit(jax.vmap(proxy.correct, in_axes=(0, 0, None, None)))
    states = jax.tree.map(lambda a: jnp.broadcast_to(a, (k,) + a.shape),
                          init)
  else:
    step = jax.jit(one_step)
    correct = jax.jit(proxy.correct)
    states = [init] * k
  alive = np.arange(k)
  rewards = np.zeros(k)
  done = 0
  for budget in rungs(proxy.steps, eta, min_steps):
    if mode == "vmap":
      for s in range(done, budget):
        states = vstep(rows, *states, *proxy.step_data(s))
      hits = sum(np.asarray(vcorrect(states[0], states[1], x, y))
                 for x, y in proxy.val_batches())
    else:
      hits = np.zeros(len(alive))
      for j, child in enumerate(alive):
        row = jax.tree.map(lambda a, c=child: a[c], rows)
        state = states[j]
        for s in range(done, budget):
          state = step(row, *state, *proxy.step_data(s))
        states[j] = state
        hits[j] = sum(int(correct(state[0], state[1], x, y))
                      for x, y in proxy.val_batches())
    done = budget
    rewards[alive] = hits / len(proxy.val_idx)
    if budget == proxy.steps:
      break
    keep = np.sort(np.argsort(-rewards[alive], kind="stable")[
        :math.ceil(len(alive) / eta)])
    alive = alive[keep]
    if mode == "vmap":
      states = jax.tree.map(lambda a: a[keep], states)
      rows = jax.tree.map(lambda a: a[keep], rows)
    else:
      states = [states[j] for j in keep]
  return rewards.tolist()


def rungs(steps: int, eta: int, min_steps: int) -> List[int]:
  """Step budgets of successive halving: ``min_steps * eta**i``, then
  ``steps``; just ``[steps]`` without halving."""
  if eta <= 1 or not min_steps or min_steps >= steps:
    return [steps]
  out, budget = [], min_steps
  while budget < steps:
    out.append(budget)
    budget *= eta
  return out + [steps]


__all__ = ["policy_from_table", "rungs", "stack_policies", "train_children"]
