"""Builds a search from a config and runs it (and its random baseline).

Config fields (``configs/search/digits.py`` is a complete example):

* ``space``: ``kind`` (``'conv'`` or ``'transformer'``), ``model`` (a
  registry name), ``input_shape`` (for :func:`list_sites`), ``site_regex``
  (ConvNets), ``choices`` (overrides of the token value lists),
  ``transformer_rate``.
* ``controller``: ``d_model``, ``n_layer``, ``n_head``, ``d_ff``.
* ``search``: ``method`` (``'reinforce'``/``'random'``), ``num_jobs``,
  ``capacity`` (C), ``minibatch`` (M), ``learning_rate``,
  ``baseline_decay``, ``entropy_weight``, ``max_importance_weight`` (0:
  none), ``backend`` (``'local'``, ``'ray'``, ``'inline'``),
  ``num_workers``, ``job_timeout_s``, ``max_attempts``, ``ray_address``,
  ``poll_s``, ``seed``, ``compare_random``, ``checkpoint_every``,
  ``children_per_job`` (> 1: that many children per job, trained in one
  vmapped program by the ``image`` proxy).
* ``proxy``: the child task (:mod:`.proxy`), a plain dict of fields.

Everything is checked before the first job: the space against the model's
sites, M <= C, the proxy (model, data, steps), the Ray address.
"""

from __future__ import annotations

import csv
import os
from typing import Any, Dict

import jax.numpy as jnp
from matplotlib.figure import Figure

from dropgraph_jax.models import get_model, list_sites
from dropgraph_jax.models.sites import site_shapes
from dropgraph_jax.search import engine, proxy
from dropgraph_jax.search import space as space_lib


def build_space(scfg):
  model = get_model(scfg.model)
  dtype = jnp.int32 if scfg.kind == "transformer" else jnp.float32
  sites = list_sites(model, tuple(scfg.input_shape), dtype=dtype)
  choices = {k: tuple(v) for k, v in dict(scfg.get("choices", {})).items()}
  if scfg.kind == "conv":
    shapes = site_shapes(model, tuple(scfg.input_shape))
    return space_lib.conv_space_for(shapes, scfg.site_regex, **choices)
  if scfg.kind == "transformer":
    return space_lib.transformer_space_for(
        sites, rate=scfg.get("transformer_rate", 0.1), **choices)
  raise ValueError(f"space.kind must be 'conv' or 'transformer', got "
                   f"{scfg.kind!r}.")


def proxy_config(config, space) -> Dict[str, Any]:
  """The proxy dict, checked; the synthetic target is filled in here."""
  pcfg = config.proxy.to_dict()
  name = pcfg.get("name")
  if name not in proxy.PROXIES:
    raise ValueError(f"proxy.name must be one of {list(proxy.PROXIES)}, got "
                     f"{name!r}.")
  if name == "synthetic":
    pcfg["target"] = proxy.synthetic_target(space.vocab_sizes(),
                                            pcfg.get("seed", 0))
  elif name == "image":
    get_model(pcfg["model"])  # unknown names raise, listing known ones
    if pcfg.get("augment", "none") not in ("none", "crop_flip"):
      raise ValueError(f"proxy.augment must be 'none' or 'crop_flip', got "
                       f"{pcfg.get('augment')!r}.")
    for field in ("steps", "batch_size"):
      if int(pcfg.get(field, 0)) < 1:
        raise ValueError(f"proxy.{field} must be >= 1, got "
                         f"{pcfg.get(field)!r}: the child cannot train.")
    if int(pcfg.get("halving_eta", 1)) > 1 and not 0 < int(
        pcfg.get("halving_min_steps", 0)) < int(pcfg["steps"]):
      raise ValueError(f"proxy.halving_min_steps must be in (0, steps="
                       f"{pcfg['steps']}) with halving_eta > 1, got "
                       f"{pcfg.get('halving_min_steps')!r}.")
    if not 0.0 < pcfg.get("val_fraction", 0.1) < 1.0:
      raise ValueError(f"proxy.val_fraction must be in (0, 1), got "
                       f"{pcfg.get('val_fraction')!r}.")
    data = proxy.proxy_split(pcfg)
    train_size = int(data.num_examples * (1 - pcfg.get("val_fraction", 0.1)))
    if pcfg["batch_size"] > train_size:
      raise ValueError(f"proxy.batch_size={pcfg['batch_size']} exceeds the "
                       f"{train_size} proxy training examples.")
    model_sites = list_sites(get_model(pcfg["model"]),
                             (1,) + tuple(data.image_shape))
    missing = sorted(set(space.sites) - set(model_sites))
    if missing:
      raise ValueError(f"the search space names sites the proxy model "
                       f"{pcfg['model']!r} does not declare: {missing[:4]}.")
  elif name == "trainer":
    if not os.path.exists(pcfg.get("config_file", "")):
      raise ValueError(f"proxy.config_file {pcfg.get('config_file')!r} does "
                       "not exist.")
  return pcfg


def run_search(config, workdir: str) -> Dict[str, Dict[str, Any]]:
  """Runs the configured search (+ random baseline); returns summaries."""
  space = build_space(config.space)
  engine.check_search_config(config.search)
  pcfg = proxy_config(config, space)
  methods = [config.search.method]
  if config.search.compare_random and config.search.method != "random":
    methods.append("random")
  summary, curves = {}, {}
  for method in methods:
    scfg = config.search
    if method != scfg.method:
      scfg = config.search.copy_and_resolve_references()
      scfg.unlock()
      scfg.method = method
    run_dir = os.path.join(workdir, method)
    result = engine.Search(space, scfg, config.controller.to_dict(), pcfg,
                           run_dir).run(config.search.get(
                               "preempt_after_jobs", 0))
    curves[method] = engine.best_so_far(result.jobs)
    summary[method] = {
        "jobs": len(result.jobs),
        "failed": sum(j["reward"] is None for j in result.jobs),
        "updates": result.updates, "best_reward": result.best_reward,
        "best_policy": os.path.join(run_dir, "best_policy.json")}
  write_curves(curves, workdir)
  return summary


def write_curves(curves: Dict[str, list], workdir: str) -> None:
  """``best_so_far.csv`` (job, one column per method) and ``.png``."""
  length = max(len(c) for c in curves.values())
  with open(os.path.join(workdir, "best_so_far.csv"), "w", newline="") as f:
    out = csv.writer(f)
    out.writerow(["job"] + list(curves))
    for k in range(length):
      out.writerow([k + 1] + [c[k] if k < len(c) and c[k] is not None
                              else "" for c in curves.values()])
  fig = Figure(figsize=(6, 3.5))  # no pyplot: no GUI backend, no state
  ax = fig.subplots()
  for method, c in curves.items():
    xs = [k + 1 for k, v in enumerate(c) if v is not None]
    ax.step(xs, [v for v in c if v is not None], where="post", label=method)
  ax.set_xlabel("jobs finished")
  ax.set_ylabel("best reward so far")
  ax.legend()
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, "best_so_far.png"), dpi=120)
