"""REINFORCE with a moving-average baseline and importance weights.

AutoDropout Eq. 2 (synchronous) and Eq. 3 (asynchronous): for a minibatch
of M finished jobs ``(r_i, Perf(r_i), log P(r_i; theta_i))``, sampled when
the controller had parameters ``theta_i``,

    grad J ~= 1/M sum_i (Perf(r_i) - b) * w_i * grad log P(r_i; theta),
    w_i = P(r_i; theta) / P(r_i; theta_i)   (treated as a constant).

Eq. 3 as printed multiplies ``Perf`` itself; we keep Eq. 2's baseline inside
the sum (it lowers the variance and leaves the estimator unbiased, since
``E_{r~theta_i}[w grad log P] = grad 1 = 0``). With nothing stale
(``theta = theta_i``) every ``w_i`` is exactly 1 and this is Eq. 2. The
baseline moves as ``b <- decay * b + (1 - decay) * mean(Perf)`` after each
update; it starts at the first minibatch's mean. ``max_weight`` optionally
clips ``w_i`` (off by default, as in the paper). An entropy bonus
(``entropy_weight``, default 0) is available against early collapse.

:func:`surrogate_loss` is the scalar whose gradient is ``-grad J``: optax
minimises it.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import jax
import jax.numpy as jnp


def importance_weights(new_log_prob, old_log_prob, max_weight=None):
  """``exp(log P(r; theta) - log P(r; theta_i))``, optionally clipped."""
  w = jnp.exp(new_log_prob - old_log_prob)
  if max_weight is not None:
    w = jnp.minimum(w, max_weight)
  return jax.lax.stop_gradient(w)


def surrogate_loss(log_prob_fn: Callable, params, tokens, old_log_prob,
                   rewards, baseline, *, max_weight: Optional[float] = None,
                   entropy_fn: Optional[Callable] = None,
                   entropy_weight: float = 0.0
                   ) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """``-(1/M) sum_i (R_i - b) w_i log P(r_i; params)`` (+ entropy bonus).

  ``log_prob_fn(params, tokens) -> (M,)``. Returns ``(loss, aux)`` with
  the importance weights and advantages in ``aux``.
  """
  new = log_prob_fn(params, tokens)
  w = importance_weights(new, old_log_prob, max_weight)
  advantage = jax.lax.stop_gradient(rewards - baseline)
  loss = -jnp.mean(advantage * w * new)
  aux = {"importance_weight": w, "advantage": advantage}
  if entropy_fn is not None and entropy_weight:
    ent = entropy_fn(params, tokens)
    loss = loss - entropy_weight * ent
    aux["entropy"] = ent
  return loss, aux


def update_baseline(baseline: Optional[float], rewards, decay: float
                    ) -> float:
  mean = float(jnp.mean(jnp.asarray(rewards)))
  return mean if baseline is None else decay * baseline + (1 - decay) * mean
