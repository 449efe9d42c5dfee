"""Disout at a model's sites reads the kernel of the convolution that reads
its output (the reference's ``weight_behind``), in ResNet, WRN and
EfficientNet."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_models import _init

from dropgraph_jax.models import example_shape, get_model, list_sites
from dropgraph_jax.patterns import Policy, RegularizerSpec


def _recording_disout(monkeypatch):
  """Replaces the registry's Disout by one that records its inputs."""
  from dropgraph_jax.regularizers import registry
  calls = []
  entry = registry.REGISTRY["disout"]

  def record(x, **kwargs):
    y = entry.fn(x, **kwargs)
    calls.append({"x": x, "y": y, **kwargs})
    return y
  monkeypatch.setitem(registry.REGISTRY, "disout",
                      dataclasses.replace(entry, fn=record))
  return calls



def _next_conv_calls(monkeypatch, name, wanted, concrete=False):
  """Disout at each site of ``wanted`` (site -> parameter path of the
  convolution that reads it, or None): checks that each site, in order,
  receives exactly that parameter, and returns the recorded calls.

  The check traces the training pass only (``jax.eval_shape``, no
  compile): the kernel a site receives must be the very traced value of
  that parameter. ``concrete`` also runs the pass eagerly and returns the
  calls with values."""
  model = get_model(name)
  shape = example_shape(name)
  sites = list_sites(model, shape)
  assert set(wanted) <= set(sites), sorted(set(wanted) - set(sites))
  spec = RegularizerSpec("disout", {"rate": 0.5, "block_size": 1,
                                    "alpha": 5.0})
  model = get_model(name, policy=Policy({s: spec for s in wanted}))
  x = jax.random.normal(jax.random.key(0), (8,) + shape[1:])
  variables = _init(model, x)
  calls = _recording_disout(monkeypatch)

  def train_pass(params):
    paths = {id(leaf): tuple(k.key for k in path[:-1])
             for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
             if path[-1].key == "kernel"}
    model.apply({**variables, "params": params}, x, train=True,
                rngs={"dropout": jax.random.key(2)},
                mutable=["batch_stats", "sites"])
    return [None if c.get("next_conv_kernel") is None else
            paths.get(id(c["next_conv_kernel"]), "another array")
            for c in calls]

  received = []
  jax.eval_shape(lambda p: received.extend(train_pass(p)),
                 variables["params"])
  assert received == list(wanted.values())
  calls.clear()
  if concrete:
    model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)},
                mutable=["batch_stats", "sites"])
  return calls



NEXT_CONV = {
    "wrn_tiny": {
        "stage1/block0/bn1": ("stage1/block0", "conv1"),
        "stage1/block0/bn2": ("stage1/block0", "conv2"),
        "stage1/block0/shortcut": ("stage2/block0", "conv1"),
        "stage3/block0/shortcut": None},  # the last block
    "efficientnet_tiny": {
        "block0/bn_dw": ("block0", "project_conv"),
        "block0/bn_project": ("block1", "expand_conv"),
        "block0/residual": ("block1", "expand_conv"),
        "block1/bn_expand": ("block1", "dw_conv"),  # a depthwise kernel
        "block6/bn_project": ("head_conv",)},
}



@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NEXT_CONV))
def test_disout_sites_read_the_next_convolution_in_wrn_and_efficientnet(
    monkeypatch, name):
  """WRN's and EfficientNet's blocks pass the kernel of the convolution
  that reads each site's output (before this, every site used 0.01)."""
  _next_conv_calls(monkeypatch, name, NEXT_CONV[name])



@pytest.mark.slow
def test_disout_sites_read_the_next_convolution(monkeypatch):
  """Each Disout site scales its noise by the kernel of the convolution
  that reads its output (the reference's ``weight_behind``), and the noise
  has the reference's standard deviation alpha * |w_c| * std(x)."""
  from dropgraph_jax.regularizers import disout as disout_lib
  calls = _next_conv_calls(monkeypatch, "resnet_bottleneck_tiny", {
      "stage1/block0/relu1": ("stage1/block0", "conv2"),
      "stage1/block0/relu2": ("stage1/block0", "conv3"),
      "stage1/block0/bn3": ("stage2/block0", "conv1"),
      "stage1/block0/shortcut": ("stage2/block0", "conv1"),
      "stage2/block0/bn3": None},  # the last block: no next convolution
      concrete=True)
  # The distortion of one site against the reference formula. The mask
  # depends on the key and shape only: alpha = 0 on ones reveals it.
  call = calls[0]
  _, _, sign_key = jax.random.split(call["key"], 3)
  w = disout_lib._kernel_scale(sign_key, call["next_conv_kernel"],
                               call["x"].shape[-1], "hash")
  sigma = float(jnp.std(call["x"]))
  options = {k: v for k, v in call.items()
             if k not in ("x", "y", "alpha", "next_conv_kernel")}
  kept = np.asarray(disout_lib.disout(jnp.ones_like(call["x"]), alpha=0.0,
                                      **options))
  scale = kept.max()  # the kept units' rescaling
  ys = np.asarray(call["y"])
  for c in range(ys.shape[-1]):
    noise = ys[..., c][kept[..., c] == 0]
    want = 5.0 * abs(float(w[c])) * sigma * scale
    assert abs(np.std(noise) / want - 1) < 0.1, (c, np.std(noise), want)
