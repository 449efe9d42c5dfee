"""Named regularization sites: where a policy may act inside a model.

Every model places :class:`Site` modules at the places the papers regularize
(after activations and on shortcuts for DropGraph and Disout, after
batch-norm layers for AutoDropout, at the Transformer sub-layers). A site's
name is its module path, e.g. ``stage3/block1/relu2``; the model's
``policy`` (a :class:`dropgraph_jax.patterns.Policy`) maps names to what
happens there. Sites absent from the policy are the identity and add no
operation.

* :func:`list_sites` lists a model's sites (from ``jax.eval_shape``, so it
  is free even for full-size models).
* Models call :func:`check_policy` at the end of ``__call__`` during
  ``init``: a policy naming a site the model does not declare raises
  ``ValueError`` listing near matches.
* Keys come from the ``'dropout'`` rng collection. ``rate_factor`` (a
  traced scalar passed to the model) multiplies every library
  regularizer's rate, which is how a schedule ramps them without
  recompiling.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from dropgraph_jax import graph_layers, layers
from dropgraph_jax.patterns.conv import ConvPattern
from dropgraph_jax.patterns.policy import Policy, RegularizerSpec, apply_spec

SITES_COLLECTION = "sites"
# Regularizers with weights (the registry's ``needs_params``) -> the Linen
# module that owns them at a site. The image DropGraph's module is named
# 'dropgraph' in the parameter tree (as before 0.2).
PARAM_MODULES = {"dropgraph": layers.DropGraph,
                 "graph_dropgraph": graph_layers.GraphDropGraph,
                 "partial_reasoning": layers.PartialReasoning}


def site_name(module: nn.Module) -> str:
  return "/".join(module.path)


class Site(nn.Module):
  """Applies the policy's spec for this site's path (identity if none)."""
  policy: Optional[Policy] = None
  kind: str = "conv"  # 'conv' (NHWC) or 'sequence' ((N, T, C)); metadata

  def spec(self):
    return None if self.policy is None else self.policy.get(site_name(self))

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, rate_factor=None,
               spec_override=None, next_conv_kernel=None) -> jax.Array:
    self.sow(SITES_COLLECTION, "declared", jnp.zeros((), jnp.int8))
    spec = spec_override if spec_override is not None else self.spec()
    if spec is None or (isinstance(spec, RegularizerSpec) and
                        spec.options.get("rate") == 0):
      return x  # rate 0 is the identity, whatever the rate_factor
    rate = None
    if isinstance(spec, RegularizerSpec) and rate_factor is not None:
      rate = spec.options["rate"] * rate_factor
    if isinstance(spec, RegularizerSpec) and spec.kind in PARAM_MODULES:
      opts = dict(spec.options)
      opts.pop("rate")
      if "rng" in opts:  # the function's generator option is the field
        opts["rng_impl"] = opts.pop("rng")  # rng_impl of the modules
      module = PARAM_MODULES[spec.kind]
      return module(rate=spec.options["rate"], name=spec.kind, **opts)(
          x, deterministic=not train, rate=rate)
    key = self.make_rng("dropout") if train else None
    return apply_spec(spec, x, key=key, train=train, rate=rate,
                      next_conv_kernel=next_conv_kernel)


def apply_site(policy: Optional[Policy], kind: str, train: bool, rate_factor,
               name: str, x: jax.Array, next_conv_kernel=None) -> jax.Array:
  """``Site(policy, kind, name=name)(x, train, rate_factor)``; a block binds
  the first four with ``functools.partial`` and calls ``site(name, x)``.
  ``next_conv_kernel``: the kernel of the convolution that reads this
  site's output, for Disout (the reference scales its noise by it)."""
  return Site(policy, kind, name=name)(x, train, rate_factor,
                                       next_conv_kernel=next_conv_kernel)


def conv_kernel(module: nn.Module, *path: str) -> Optional[jax.Array]:
  """The ``kernel`` at ``path`` in ``module``'s parameters, or ``None``
  while it does not exist (during ``init``, or past the last block).

  Disout's reference scales each site's noise by the weights of the
  convolution that reads the site's output; a block reads its own later
  convolutions here, and a network passes the next block's ``conv1``.
  """
  node = module.variables.get("params", {})
  for key in path:
    if key not in node:
      return None
    node = node[key]
  return node.get("kernel")


def residual_pattern(policy: Optional[Policy], block_path: Sequence[str],
                     site_labels: Sequence[str], residual_label: str
                     ) -> Optional[ConvPattern]:
  """The pattern a block applies at its residual site ``residual_label``.

  AutoDropout lets the controller decide whether a block's pattern also
  applies to the residual branch: this returns the first ConvPattern with
  ``residual=True`` among the block's ``site_labels``, unless the policy
  names the residual site itself (then that spec wins and this is None).
  With traced ``residual`` flags (children vmapped over policies) the same
  choice is made with ``jnp.where`` over the pattern fields, and a block
  with no flag set gets ``prob = 0`` (no pattern).
  """
  if policy is None or policy.get(
      "/".join(tuple(block_path) + (residual_label,))) is not None:
    return None
  candidates = [spec for spec in (
      policy.get("/".join(tuple(block_path) + (label,)))
      for label in site_labels) if isinstance(spec, ConvPattern)]
  if any(isinstance(spec.residual, jax.Array) for spec in candidates):
    return _select_residual(candidates)
  for spec in candidates:
    if spec.residual:
      return spec
  return None


_TRACEABLE = ("height", "width", "stride_h", "stride_w", "repeats_h",
              "repeats_w", "rotate", "shear_x", "shear_y", "share_c", "prob")


def _select_residual(candidates):
  """The first candidate whose (traced) residual flag is set, else a
  disabled pattern: a ``jnp.where`` chain from the last candidate up."""
  last = candidates[-1]
  chosen = dataclasses.replace(last, prob=jnp.where(
      last.residual, jnp.asarray(last.prob, jnp.float32), 0.0))
  for spec in reversed(candidates[:-1]):
    if spec.placement != chosen.placement:
      raise ValueError("residual_pattern: traced candidates must share "
                       "their placement.")
    chosen = dataclasses.replace(chosen, **{
        name: jnp.where(spec.residual, jnp.asarray(getattr(spec, name)),
                        jnp.asarray(getattr(chosen, name)))
        for name in _TRACEABLE})
  return chosen


def declared_sites(variables: Any) -> list:
  """Site names recorded in a variables dict's ``sites`` collection."""
  sites = variables.get(SITES_COLLECTION, {}) if variables else {}
  flat = traverse_util.flatten_dict(dict(sites)) if sites else {}
  return sorted({"/".join(path[:-1]) for path in flat})


def check_policy(module: nn.Module, policy: Optional[Policy]) -> None:
  """Validates ``policy`` against the sites declared under ``module``.

  Call at the end of a top-level model's ``__call__``; it acts only while
  initializing (when the ``sites`` collection is being recorded).
  """
  if policy is None or not module.is_initializing():
    return
  names = declared_sites(module.variables)
  if names:
    prefix = site_name(module)
    full = [f"{prefix}/{n}" if prefix else n for n in names]
    policy.validate_sites(full)


def list_sites(model: nn.Module, input_shape: Sequence[int],
               dtype=jnp.float32, **call_kwargs) -> list:
  """Names of every regularization site of ``model`` for ``input_shape``.

  Runs ``model.init`` under ``jax.eval_shape``: no FLOPs, no memory.
  """
  x = jax.ShapeDtypeStruct(tuple(input_shape), dtype)

  def init(x):
    return model.init({"params": jax.random.key(0),
                       "dropout": jax.random.key(1)}, x, train=False,
                      **call_kwargs)

  return declared_sites(jax.eval_shape(init, x))


def site_shapes(model: nn.Module, input_shape: Sequence[int],
                dtype=jnp.float32, **call_kwargs) -> dict:
  """Site name -> the shape of the activation there (``jax.eval_shape``).

  For pattern spaces that must fit each site's feature map.
  """
  x = jax.ShapeDtypeStruct(tuple(input_shape), dtype)

  def run(x):
    variables = model.init({"params": jax.random.key(0),
                            "dropout": jax.random.key(1)}, x, train=False,
                           **call_kwargs)
    _, state = model.apply(
        variables, x, train=False, mutable=["intermediates"],
        capture_intermediates=lambda mdl, _: isinstance(mdl, Site),
        **call_kwargs)
    return state["intermediates"]

  flat = traverse_util.flatten_dict(dict(jax.eval_shape(run, x)))
  return {"/".join(path[:-1]): tuple(value[0].shape)
          for path, value in flat.items() if path[-1] == "__call__"}
