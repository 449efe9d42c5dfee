"""Models with named sites (issue: Flax models)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dropgraph_jax import strip_graph_params
from dropgraph_jax.models import (
  REGISTRY,
  example_shape,
  get_model,
  list_sites,
  model_kind,
)
from dropgraph_jax.models.resnet import paper_policy
from dropgraph_jax.models.transformer_xl import variational_policy
from dropgraph_jax.patterns import (
  ConvPattern,
  Policy,
  RegularizerSpec,
  TransformerPattern,
)

# Image, token and segmentation models; the translation model (two inputs)
# has the same checks in test_translation.py.
TINY = sorted(n for n in REGISTRY if n.endswith("_tiny")
              and model_kind(n) != "translation")
# A training step compiles a whole network (5-20 s each here): the fast
# tier keeps ResNet's, the slow tier runs every family.
TINY_STEP = [n if n == "resnet_tiny" else pytest.param(n, marks=pytest.mark.slow)
             for n in TINY]

# Published parameter counts (exact values of the reference architectures).
PUBLISHED = {
    "resnet50": 25_557_032,       # 25.6M, torchvision / He et al.
    "wrn28_10": 36_479_194,       # 36.5M, Zagoruyko & Komodakis
    "efficientnet_b0": 5_288_548,  # 5.3M, Tan & Le
    "regnetx_200mf": 2_684_792,   # 2.7M, Radosavovic et al.
    "resnet18_cifar": 11_173_962,  # pytorch-cifar ResNet18
}


def _count(name, **kwargs):
  model = get_model(name, **kwargs)
  shape = example_shape(name)
  dtype = jnp.int32 if model_kind(name) == "tokens" else jnp.float32
  variables = jax.eval_shape(
      lambda x: model.init({"params": jax.random.key(0)}, x, train=False),
      jax.ShapeDtypeStruct(shape, dtype))
  return sum(x.size for x in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_match_published(name):
  assert _count(name) == PUBLISHED[name]


def test_transformer_xl_ptb_size_is_the_papers_24m():
  count = _count("transformer_xl_ptb")
  assert count == 24_555_920
  assert abs(count - 24e6) / 24e6 < 0.03


@pytest.mark.parametrize("variant,expected", [("b1", 7_794_184),
                                              ("b7", 66_347_960)])
def test_efficientnet_compound_scaling(variant, expected):
  assert _count(f"efficientnet_{variant}") == expected


def _inputs(name, batch=None):
  shape = example_shape(name)
  if batch:
    shape = (batch,) + shape[1:]
  key = jax.random.key(0)
  if model_kind(name) == "tokens":
    vocab = get_model(name).config.vocab_size
    tokens = jax.random.randint(key, shape, 0, vocab)
    return tokens, jnp.roll(tokens, -1, axis=1)
  if model_kind(name) == "segmentation":  # per-pixel labels
    return jax.random.normal(key, shape), jax.random.randint(
        key, shape[:3], 0, 2)
  return jax.random.normal(key, shape), jnp.arange(shape[0]) % 10


def _init(model, x):
  """``model``'s variables, initialised as one compiled program (eagerly,
  op by op, EfficientNet's init took 9.6 s here; compiled 3.9 s)."""
  return jax.jit(lambda x: model.init({"params": jax.random.key(1),
                                       "dropout": jax.random.key(2)}, x,
                                      train=False))(x)


def _policy_for(name):
  model = get_model(name)
  dtype = jnp.int32 if model_kind(name) == "tokens" else jnp.float32
  sites = list_sites(model, example_shape(name), dtype=dtype)
  if model_kind(name) == "tokens":
    specs = dict(variational_policy(sites).sites)
    specs["layer0/attn/softmax"] = TransformerPattern(size=2, stride=1,
                                                      share_t=True, rate=0.3)
    return Policy(specs)
  bn = [s for s in sites if "/bn" in s]
  relu = [s for s in sites
          if "/relu" in s or s.endswith(("/residual", "/shortcut"))]
  specs = {bn[0]: ConvPattern(height=2, width=2, share_c=False,
                              residual=True),
           relu[len(relu) // 2]: RegularizerSpec(
               "dropgraph", {"rate": 0.2, "block_size": 1, "alpha": 0.5}),
           bn[-1]: RegularizerSpec("drop_block", {"rate": 0.2,
                                                  "block_size": 1})}
  return Policy(specs)


def _apply(model, variables, x, train, key=None, rate_factor=None):
  state = {k: v for k, v in variables.items() if k not in ("params",
                                                           "sites")}
  out, new_state = model.apply(
      {"params": variables["params"], **state}, x, train=train,
      rate_factor=rate_factor, rngs={"dropout": key} if key is not None
      else {}, mutable=list(state) if train else False) if train else (
          model.apply({"params": variables["params"], **state}, x,
                      train=False), state)
  logits = out[0] if isinstance(out, tuple) else out
  return logits, new_state


@pytest.mark.parametrize("name", TINY_STEP)
def test_tiny_model_takes_one_training_step_with_a_policy(name):
  x, y = _inputs(name)
  model = get_model(name, policy=_policy_for(name))
  variables = _init(model, x)
  opt = optax.sgd(0.1, momentum=0.9)
  opt_state = opt.init(variables["params"])

  @jax.jit
  def step(params, opt_state, state, key):
    def loss_fn(p):
      logits, new_state = _apply(model, {"params": p, **state}, x, True, key,
                                 rate_factor=jnp.float32(0.5))
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
      return jnp.mean(loss), new_state
    (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, new_state, loss

  state = {k: v for k, v in variables.items() if k not in ("params", "sites")}
  params, _, _, loss = step(variables["params"], opt_state, state,
                            jax.random.key(3))
  assert np.isfinite(float(loss))
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), params,
                         variables["params"])
  assert any(jax.tree.leaves(changed))


# Two passes of a whole network each: the fast tier keeps one image and
# one token model, the slow tier runs every family.
TINY_EVAL = [n if n in ("resnet_tiny", "transformer_xl_tiny") else
             pytest.param(n, marks=pytest.mark.slow) for n in TINY]


@pytest.mark.parametrize("name", TINY_EVAL)
def test_eval_output_is_independent_of_the_policy(name):
  x, _ = _inputs(name)
  with_policy = get_model(name, policy=_policy_for(name))
  plain = get_model(name)
  variables = _init(with_policy, x)
  # Each forward pass compiled whole (eagerly, op by op, is slower).
  a, _ = jax.jit(lambda v: _apply(with_policy, v, x, False))(variables)
  stripped = dict(variables, params=strip_graph_params(variables["params"]))
  b, _ = jax.jit(lambda v: _apply(plain, v, x, False))(stripped)
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("name", TINY_STEP)
def test_bfloat16_compute_with_float32_params(name):
  x, _ = _inputs(name)
  model = get_model(name, dtype=jnp.bfloat16, policy=_policy_for(name))
  variables = _init(model, x)
  assert all(p.dtype == jnp.float32
             for p in jax.tree.leaves(variables["params"]))
  logits, _ = jax.jit(lambda v, k: _apply(model, v, x, True, k))(
      variables, jax.random.key(4))
  assert logits.dtype == jnp.float32
  assert np.isfinite(np.asarray(logits)).all()


@pytest.mark.slow
def test_transformer_xl_memory_equals_full_context():
  base = get_model("transformer_xl_tiny").config
  seg_len = base.tgt_len
  # Memory as long as the whole sequence: segment-wise evaluation must equal
  # one pass over the full context.
  model = get_model("transformer_xl_tiny",
                    config=dataclasses.replace(base, mem_len=3 * seg_len))
  tokens = jax.random.randint(jax.random.key(0), (2, 3 * seg_len), 0,
                              base.vocab_size)
  variables = model.init(jax.random.key(1), tokens[:, :seg_len], train=False)
  mems, segments = None, []
  for s in range(3):
    logits, mems = model.apply(variables,
                               tokens[:, s * seg_len:(s + 1) * seg_len],
                               train=False, mems=mems)
    segments.append(logits)
  full, _ = model.apply(variables, tokens, train=False)
  np.testing.assert_allclose(np.asarray(jnp.concatenate(segments, 1)),
                             np.asarray(full), atol=2e-5)
  # A shorter memory is truncated to mem_len and carries no gradient.
  short = get_model("transformer_xl_tiny")
  _, mems = short.apply(variables, tokens[:, :2 * seg_len], train=False)
  assert all(m.shape == (2, base.mem_len, base.d_model) for m in mems)
  grad = jax.grad(lambda m: jnp.sum(short.apply(
      variables, tokens[:, :seg_len], train=False, mems=m)[1][0]))(mems)
  assert all(float(jnp.abs(g).sum()) == 0 for g in grad)


@pytest.mark.slow
def test_transformer_xl_is_causal():
  model = get_model("transformer_xl_tiny")
  tokens = jax.random.randint(jax.random.key(0), (1, 12), 0, 97)
  variables = model.init(jax.random.key(1), tokens, train=False)
  a, _ = model.apply(variables, tokens, train=False)
  changed = tokens.at[0, 7:].set((tokens[0, 7:] + 1) % 97)
  b, _ = model.apply(variables, changed, train=False)
  np.testing.assert_array_equal(np.asarray(a[0, :7]), np.asarray(b[0, :7]))
  assert not np.allclose(np.asarray(a[0, 7:]), np.asarray(b[0, 7:]))


def test_paper_placement_on_resnet50():
  sites = list_sites(get_model("resnet50_cifar"), (1, 32, 32, 3))
  spec = RegularizerSpec("dropgraph", {"rate": 0.1})
  policy = paper_policy(sites, spec)
  # Stages 3 and 4 have 6 + 3 bottlenecks; the references' sites of each:
  # relu1, relu2, bn3 (before the addition) and the shortcut.
  assert len(policy) == 9 * 4
  assert all(s.startswith(("stage3/", "stage4/")) for s in policy.sites)
  labels = {s.rsplit("/", 1)[1] for s in policy.sites}
  assert labels == {"relu1", "relu2", "bn3", "shortcut"}
  # The previous placement stays available for ablations.
  post = paper_policy(sites, spec, placement="post_activation")
  assert {s.rsplit("/", 1)[1] for s in post.sites} == {
      "relu1", "relu2", "relu3", "shortcut"}
  # Basic blocks: relu1, bn2 and the shortcut.
  basic = list_sites(get_model("resnet18_cifar"), (1, 32, 32, 3))
  assert {s.rsplit("/", 1)[1] for s in paper_policy(basic, spec).sites} == {
      "relu1", "bn2", "shortcut"}
  # A quarter of the rate in group 3 (DropBlock's and Disout's references).
  scaled = paper_policy(sites, spec, stage_scales=(0.25, 1.0))
  assert scaled.sites["stage3/block0/relu1"].options["rate"] == 0.025
  assert scaled.sites["stage4/block0/relu1"].options["rate"] == 0.1
  with pytest.raises(ValueError, match="placement must be one of"):
    paper_policy(sites, spec, placement="everywhere")


@pytest.mark.slow
def test_bad_input_errors():
  with pytest.raises(ValueError, match="Unknown model 'resnet51'.*resnet50"):
    get_model("resnet51")
  model = get_model("resnet50")
  with pytest.raises(ValueError, match="image size 16x16 is too small"):
    model.init(jax.random.key(0), jnp.ones((1, 16, 16, 3)), train=False)
  bad = Policy({"stage9/block0/relu1": RegularizerSpec("dropout",
                                                       {"rate": 0.1})})
  with pytest.raises(ValueError, match="site 'stage9/block0/relu1' is not a "
                     "site of this model"):
    get_model("resnet_tiny", policy=bad).init(
        jax.random.key(0), jnp.ones((1, 16, 16, 3)), train=False)
  txl = get_model("transformer_xl_tiny")
  with pytest.raises(ValueError, match="longer than this model supports"):
    txl.init(jax.random.key(0), jnp.zeros((1, 65), jnp.int32), train=False)
  with pytest.raises(ValueError, match="tokens must be integer"):
    txl.init(jax.random.key(0), jnp.zeros((1, 5)), train=False)


@pytest.mark.slow
def test_residual_pattern_also_covers_the_shortcut_unless_named():
  x, _ = _inputs("resnet_tiny")
  pattern = ConvPattern(height=3, width=3, share_c=False)

  def train_out(policy):
    model = get_model("resnet_tiny", policy=policy)
    variables = model.init(jax.random.key(1), x, train=False)
    return np.asarray(_apply(model, variables, x, True, jax.random.key(5))[0])

  site = "stage1/block0/bn1"
  plain = train_out(Policy({site: pattern}))
  residual = train_out(Policy({site: dataclasses.replace(pattern,
                                                          residual=True)}))
  assert not np.allclose(plain, residual)
  # An explicit spec at the shortcut wins over the block's residual pattern.
  explicit = {site: pattern,
              "stage1/block0/shortcut": RegularizerSpec("dropout",
                                                        {"rate": 0.0})}
  with_residual = dict(explicit)
  with_residual[site] = dataclasses.replace(pattern, residual=True)
  np.testing.assert_array_equal(train_out(Policy(explicit)),
                                train_out(Policy(with_residual)))


def test_wrn_stochastic_depth_drops_residual_branches_in_training_only():
  import jax
  import numpy as np

  from dropgraph_jax.models import get_model
  model = get_model("wrn_tiny", stochastic_depth=0.9)
  plain = get_model("wrn_tiny")
  x = jax.random.normal(jax.random.key(0), (4, 16, 16, 3))
  variables = plain.init(jax.random.key(1), x, train=False)
  np.testing.assert_array_equal(
      np.asarray(model.apply(variables, x, train=False)),
      np.asarray(plain.apply(variables, x, train=False)))
  outs = [np.asarray(model.apply(variables, x, train=True,
                                 rngs={"dropout": jax.random.key(k)},
                                 mutable=["batch_stats"])[0])
          for k in range(2)]
  assert not np.allclose(outs[0], outs[1])


def test_efficientnet_residual_site_regularizes_the_skip_not_the_branch():
  """An MBConv's ``residual`` site acts on the identity path (as ResNet's
  and WRN's ``shortcut``), not a second time on the branch output."""
  from dropgraph_jax.models.efficientnet import MBConv
  block = MBConv(expand=1, kernel=3, strides=1, features=8,
                 drop_path_rate=0.0, policy=Policy(
                     {"residual": RegularizerSpec("dropout", {"rate": 0.5})}))
  x = jax.random.uniform(jax.random.key(0), (2, 6, 6, 8), minval=1.0,
                         maxval=2.0)
  variables = block.init(jax.random.key(1), x, train=False)
  # A zero last batch norm makes the branch output exactly zero.
  params = jax.tree_util.tree_map_with_path(
      lambda path, v: jnp.zeros_like(v) if "project_norm" in str(path)
      else v, variables["params"])
  y, _ = block.apply({**variables, "params": params}, x, train=True,
                     rngs={"dropout": jax.random.key(2)},
                     mutable=["batch_stats", "sites"])
  y = np.asarray(y)
  dropped = y == 0
  assert 0.3 < dropped.mean() < 0.7  # the skip was dropped ...
  np.testing.assert_allclose(y[~dropped], 2 * np.asarray(x)[~dropped],
                             rtol=1e-5)  # ... and the kept half rescaled


def test_every_regularizer_with_weights_has_a_site_module():
  from dropgraph_jax.models.sites import PARAM_MODULES
  from dropgraph_jax.regularizers import registry
  assert set(PARAM_MODULES) == {
      name for name, entry in registry.REGISTRY.items() if entry.needs_params}
