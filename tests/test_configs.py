"""Every experiment config (``configs/*.py``): it parses, names a model and
a regularizer that exist, and places the regularizer where its paper does."""

import glob
import importlib
import os

import numpy as np
import pytest

from dropgraph_jax.models import REGISTRY
from dropgraph_jax.training import classifier, common, language_model

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _all_configs():
  out = []
  for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*.py"))):
    name = os.path.basename(path)[:-3]
    if name.startswith("_"):
      continue
    module = importlib.import_module(f"configs.{name}")
    args = getattr(module, "REGULARIZERS", (None,))
    for arg in args:
      out.append((name, arg, module.get_config(arg) if arg else
                  module.get_config()))
  return out



def test_every_config_parses_and_names_existing_models_and_regularizers():
  configs = _all_configs()
  assert len(configs) >= 8
  for name, arg, config in configs:
    assert config.model in REGISTRY, (name, arg)
    assert config.regularizer.name in (
        classifier.REGULARIZER_NAMES + language_model.LM_REGULARIZERS), (
            name, arg)
    assert config.regularizer.schedule in ("constant", "linear", "f1", "f2",
                                           "f3", "f4", "f5")
    common.check_numbers(config)  # every numeric field in its range
  with pytest.raises(ValueError, match="regularizer must be one of"):
    importlib.import_module("configs.cifar_resnet50").get_config("cutout")



@pytest.mark.slow
def test_every_config_places_its_regularizer_on_sites_of_its_model():
  from dropgraph_jax.models import example_shape, model_kind
  checked = 0
  for name, arg, config in _all_configs():
    if model_kind(config.model) != "image" or config.regularizer.name in (
        "none", "policy"):
      continue
    policy = classifier.build_policy(config, config.model,
                                example_shape(config.model))
    assert len(policy) > 0, (name, arg)
    assert all(spec.kind == config.regularizer.name
               for spec in policy.sites.values()), (name, arg)
    checked += 1
  assert checked >= 12



def test_paper_configs_use_the_references_schedule_and_disout_settings():
  cifar = importlib.import_module("configs.cifar_resnet50")
  config = cifar.get_config("disout")
  reg = config.regularizer
  assert reg.ramp_epochs < 0  # the whole run
  assert tuple(reg.stage_rate_scales) == (0.25, 1.0)
  assert (reg.rate, reg.block_size, reg.options.alpha) == (0.09, 6, 5.0)
  assert common.ramp_steps(config, 100, 3000) == 3000
  policy = classifier.build_policy(config, config.model, (1, 32, 32, 3))
  assert policy.sites["stage3/block0/bn3"].options == {
      "rate": 0.09 * 0.25, "block_size": 6, "alpha": 5.0,
      "clip_block_size": True}
  assert policy.sites["stage4/block2/shortcut"].options["rate"] == 0.09
  assert "stage4/block2/relu3" not in policy.sites
  imagenet = importlib.import_module("configs.imagenet_resnet50")
  reg = imagenet.get_config("disout").regularizer
  assert (reg.rate, reg.block_size, reg.options.alpha) == (0.07, 7, 1.0)
  # Other regularizers keep the paper's rho and block.
  reg = cifar.get_config("drop_block").regularizer
  assert (reg.rate, reg.block_size) == (0.1, 3) and not reg.options



@pytest.mark.slow
def test_table1_configs_build_their_models_and_regularizers():
  import jax
  import jax.numpy as jnp

  from dropgraph_jax.models import get_model, list_sites
  sd = importlib.import_module("configs.imagenet_resnet50").get_config(
      "stochastic_depth")
  assert sd.regularizer.name == "none"
  assert sd.model_kwargs.stochastic_depth == 0.2
  # Stochastic depth in the ResNet: random in training, off in eval.
  model = get_model("resnet_tiny", stochastic_depth=0.5)
  x = jnp.ones((8, 16, 16, 3))
  variables = model.init(jax.random.key(0), x, train=False)
  # The branches' last batch norms start at zero scale: give them one, so
  # that dropping a branch shows.
  variables = jax.tree_util.tree_map_with_path(
      lambda path, v: jnp.ones_like(v) if "scale" in str(path) else v,
      variables)
  outs = [model.apply(variables, x, train=True, mutable=["batch_stats"],
                      rngs={"dropout": jax.random.key(k)})[0] for k in (1, 2)]
  assert not np.array_equal(outs[0], outs[1])
  assert np.array_equal(model.apply(variables, x, train=False),
                        get_model("resnet_tiny").apply(variables, x,
                                                       train=False))
  effnet = importlib.import_module("configs.imagenet_efficientnet")
  for variant, size, rate in (("b3", 300, 0.3), ("b5", 456, 0.4),
                              ("b7", 600, 0.5)):
    config = effnet.get_config(f"{variant},stochastic_depth")
    assert (config.model, config.image_size) == (f"efficientnet_{variant}",
                                                  size)
    assert config.model_kwargs.stochastic_depth == rate
    assert len(list_sites(get_model(config.model), (1, 64, 64, 3))) > 50
  assert effnet.get_config("b7,none").model_kwargs.stochastic_depth == 0.0
  with pytest.raises(ValueError, match="VARIANT"):
    effnet.get_config("b9,policy")
  b0 = importlib.import_module("configs.imagenet_efficientnet_b0").get_config(
      "drop_block")
  policy = classifier.build_policy(b0, b0.model, (1, 224, 224, 3))
  assert sorted(policy.sites) == sorted(f"block{i}/bn_project"
                                        for i in range(8, 16))
  assert b0.model_kwargs.stochastic_depth == 0.0
