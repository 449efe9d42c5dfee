"""AutoDropout pattern spaces and policies (issue: pattern spaces)."""

import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dropgraph_jax as dg
from dropgraph_jax.patterns import (
  ConvPattern,
  Policy,
  RegularizerSpec,
  TransformerPattern,
  apply_spec,
  conv_pattern_dropout,
  transformer_pattern_dropout,
)
from dropgraph_jax.patterns import conv as conv_lib
from dropgraph_jax.tools import show_policy as show

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "experiments",
                       "policies", "example_policy.json")


def _cells(pattern, h, w, oy, ox):
  """Set of dropped (row, col) cells for a fixed placement."""
  grid = np.asarray(conv_lib.dropped_cells(pattern, h, w, oy, ox))[..., 0]
  return set(zip(*np.nonzero(grid)))


# --- ConvNet patterns: hand-checked geometry -------------------------------

def test_untransformed_rectangle_and_tiling():
  rect = ConvPattern(height=2, width=3)
  assert _cells(rect, 6, 7, 1, 2) == {(r, c) for r in (1, 2) for c in (2, 3, 4)}
  tiled = ConvPattern(height=1, width=2, stride_h=3, stride_w=4, repeats_h=2,
                      repeats_w=2)
  assert _cells(tiled, 8, 8, 0, 1) == {(0, 1), (0, 2), (0, 5), (0, 6),
                                       (3, 1), (3, 2), (3, 5), (3, 6)}


def test_wrap_and_clip_placement():
  wrap = ConvPattern(height=2, width=2, placement="wrap")
  assert _cells(wrap, 4, 4, 3, 3) == {(3, 3), (3, 0), (0, 3), (0, 0)}
  clip = ConvPattern(height=2, width=2, placement="clip")
  assert _cells(clip, 4, 4, 3, 3) == {(3, 3)}


def test_rotation_about_the_centre():
  # A 1x3 bar through the centre of a 5x5 map becomes vertical at 90 deg.
  bar = ConvPattern(height=1, width=3, rotate=90.0, placement="clip")
  assert _cells(bar, 5, 5, 2, 1) == {(1, 2), (2, 2), (3, 2)}
  # Direction: counter-clockwise on screen, so the cell right of the centre
  # moves above it.
  stub = ConvPattern(height=1, width=1, rotate=90.0, placement="clip")
  assert _cells(stub, 5, 5, 2, 3) == {(1, 2)}
  # 45 degrees rounds to the nearest cell: the bar becomes a diagonal.
  diag = ConvPattern(height=1, width=3, rotate=45.0, placement="clip")
  assert _cells(diag, 5, 5, 2, 1) == {(1, 3), (2, 2), (3, 1)}


def test_shear_along_x_and_y():
  vertical = ConvPattern(height=3, width=1, shear_x=1.0, placement="clip")
  assert _cells(vertical, 5, 5, 1, 2) == {(1, 1), (2, 2), (3, 3)}
  horizontal = ConvPattern(height=1, width=3, shear_y=1.0, placement="clip")
  assert _cells(horizontal, 5, 5, 2, 1) == {(1, 1), (2, 2), (3, 3)}


def test_conv_mask_shape_dtype_share_c_and_mean():
  x = jnp.ones((16, 12, 12, 8), jnp.bfloat16)
  pattern = ConvPattern(height=3, width=4, stride_h=6, stride_w=6,
                        repeats_h=2, repeats_w=2, rotate=20.0, share_c=True)
  key = jax.random.key(0)
  keep = conv_lib.pattern_keep_mask(key, x.shape, pattern)
  assert keep.shape == (16, 12, 12, 1) and keep.dtype == jnp.bool_
  y = conv_pattern_dropout(x, key=key, pattern=pattern, train=True)
  assert y.dtype == jnp.bfloat16
  yf = np.asarray(y, np.float32)
  assert (yf == yf[..., :1]).all()  # shared over channels
  np.testing.assert_allclose(yf.mean(), 1.0, rtol=1e-2)  # Eq. 1 keeps mean
  indep = conv_lib.pattern_keep_mask(
      key, x.shape, ConvPattern(height=3, width=4, share_c=False))
  assert indep.shape == (16, 12, 12, 8)
  assert not (np.asarray(indep) == np.asarray(indep)[..., :1]).all()
  # Wrap placement drops exactly the pattern's area wherever it lands.
  area = 3 * 4 * 4
  plain = conv_lib.pattern_keep_mask(
      key, x.shape, ConvPattern(height=3, width=4, stride_h=6, stride_w=6,
                                repeats_h=2, repeats_w=2))
  assert ((~np.asarray(plain)).reshape(16, -1).sum(axis=1) == area).all()


def test_positions_are_random_per_example_and_per_step():
  pattern = ConvPattern(height=2, width=2)
  keys = [jax.random.key(i) for i in range(2)]
  a, b = (np.asarray(conv_lib.pattern_keep_mask(k, (8, 10, 10, 1), pattern))
          for k in keys)
  assert len({a[i].tobytes() for i in range(8)}) > 4
  assert not np.array_equal(a, b)


def test_conv_space_contains_dropblock_and_spatial_dropout():
  # DropBlock-like: one b x b square per channel at a random position.
  x = jnp.ones((4, 10, 10, 6))
  y = np.asarray(conv_pattern_dropout(
      x, key=jax.random.key(1), pattern=ConvPattern(height=3, width=3,
                                                    share_c=False,
                                                    placement="clip"),
      train=True))
  for n in range(4):
    for c in range(6):
      dropped = np.argwhere(y[n, :, :, c] == 0)
      if len(dropped):
        rows, cols = dropped[:, 0], dropped[:, 1]
        assert len(dropped) == (rows.max() - rows.min() + 1) * (
            cols.max() - cols.min() + 1)  # a solid rectangle
        assert rows.max() - rows.min() < 3 and cols.max() - cols.min() < 3
  # SpatialDropout: the whole map per channel, applied with probability p.
  p = 0.3
  x = jnp.ones((64, 6, 6, 64))
  y = np.asarray(conv_pattern_dropout(
      x, key=jax.random.key(2), pattern=ConvPattern(height=6, width=6,
                                                    share_c=False, prob=p),
      train=True)).reshape(64, 36, 64)
  assert (y == y[:, :1, :]).all()
  frac = (y[:, 0, :] == 0).mean()
  assert abs(frac - p) < 5 * np.sqrt(p * (1 - p) / (64 * 64))


def test_scaling_for_larger_resolution():
  pattern = ConvPattern(height=3, width=5, stride_h=8, stride_w=10,
                        repeats_h=2, repeats_w=3, rotate=15.0)
  big = pattern.scaled(2.0)
  assert (big.height, big.width, big.stride_h, big.stride_w) == (6, 10, 16, 20)
  assert (big.repeats_h, big.repeats_w, big.rotate) == (2, 3, 15.0)


# --- Transformer patterns ------------------------------------------------

def test_transformer_structure_figure4():
  # size=2, stride=1: affect two tokens, skip two (period 4). With a rate
  # near 1 every affected unit is dropped, which reveals the affected set.
  t = 16
  key = jax.random.key(0)
  mask = dg.patterns.transformer.pattern_keep_mask
  sure = np.asarray(mask(key, (64, t, 8), TransformerPattern(
      size=2, stride=1, share_t=True, share_c=True, rate=0.9999999)))[..., 0]
  phases = []
  for n in range(64):
    dropped = set(np.nonzero(~sure[n])[0])
    match = [s for s in range(4)
             if dropped == {i for i in range(t) if (i - s) % 4 < 2}]
    assert len(match) == 1, (n, sorted(dropped))
    phases.append(match[0])
  assert len(set(phases)) > 1  # the start is random per example
  # share_t: the two tokens of a whole block share one mask (per channel).
  half = np.asarray(mask(key, (64, t, 8), TransformerPattern(
      size=2, stride=1, share_t=True, share_c=False, rate=0.5)))
  indep = np.asarray(mask(key, (64, t, 8), TransformerPattern(
      size=2, stride=1, share_t=False, share_c=False, rate=0.5)))
  same_shared, same_indep = [], []
  for n, s in enumerate(phases):
    for first in range(s, t - 1, 4):
      same_shared.append((half[n, first] == half[n, first + 1]).all())
      same_indep.append((indep[n, first] == indep[n, first + 1]).all())
    skipped = [i for i in range(t) if (i - s) % 4 >= 2]
    assert half[n, skipped].all()  # tokens outside the blocks are kept
  assert all(same_shared) and not all(same_indep)


def test_transformer_space_contains_word_and_variational_dropout():
  p = 0.3
  x = jnp.ones((128, 20, 16))
  word = np.asarray(transformer_pattern_dropout(
      x, key=jax.random.key(1), train=True,
      pattern=TransformerPattern(size=1, stride=0, share_c=True, rate=p)))
  assert (word == word[:, :, :1]).all()
  frac = (word[:, :, 0] == 0).mean()
  assert abs(frac - p) < 5 * np.sqrt(p * (1 - p) / (128 * 20))
  var = np.asarray(transformer_pattern_dropout(
      x, key=jax.random.key(2), train=True,
      pattern=TransformerPattern(size=20, stride=0, share_t=True,
                                 share_c=False, rate=p)))
  assert (var == var[:, :1, :]).all()  # one mask per sequence, over time
  frac = (var[:, 0, :] == 0).mean()
  assert abs(frac - p) < 5 * np.sqrt(p * (1 - p) / (128 * 16))
  assert not (var[:, 0, :] == var[:1, 0, :]).all()


def test_transformer_size_zero_means_not_applied():
  x = jnp.ones((2, 8, 4))
  assert transformer_pattern_dropout(
      x, key=None, pattern=TransformerPattern(size=0, rate=0.5),
      train=True) is x


def test_patterns_jit_one_trace_across_keys():
  chex.clear_trace_counter()
  conv = ConvPattern(height=2, width=3, rotate=30.0, share_c=False)
  seq = TransformerPattern(size=2, stride=1, share_t=True, rate=0.4)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(x, s, key):
    return (conv_pattern_dropout(x, key=key, pattern=conv, train=True),
            transformer_pattern_dropout(s, key=key, pattern=seq, train=True))

  x, s = jnp.ones((2, 8, 8, 3)), jnp.ones((2, 12, 5))
  outs = [step(x, s, jax.random.key(i)) for i in range(4)]
  eager = conv_pattern_dropout(x, key=jax.random.key(3), pattern=conv,
                               train=True)
  np.testing.assert_allclose(outs[3][0], eager, rtol=1e-6)
  assert len({np.asarray(o[0]).tobytes() for o in outs}) == 4


def test_patterns_identity_in_eval():
  x = jnp.ones((2, 8, 8, 3))
  assert conv_pattern_dropout(x, key=None, pattern=ConvPattern(),
                              train=False) is x


# --- bad input ---------------------------------------------------------------

def test_bad_pattern_values_raise():
  x = jnp.ones((2, 8, 8, 3))
  with pytest.raises(ValueError, match="height must be an int >= 1, got 0"):
    conv_pattern_dropout(x, key=jax.random.key(0),
                         pattern=ConvPattern(height=0), train=True)
  with pytest.raises(ValueError, match="larger than the feature map 8x8"):
    conv_pattern_dropout(x, key=jax.random.key(0),
                         pattern=ConvPattern(height=9), train=True)
  with pytest.raises(ValueError, match="tiled pattern spans 10x1"):
    conv_pattern_dropout(x, key=jax.random.key(0), train=True,
                         pattern=ConvPattern(height=2, stride_h=4,
                                             repeats_h=3))
  with pytest.raises(ValueError, match="placement must be one of"):
    ConvPattern(placement="mirror").validate()
  with pytest.raises(ValueError, match="size 9 is larger than the sequence"):
    transformer_pattern_dropout(jnp.ones((2, 8, 4)), key=jax.random.key(0),
                                pattern=TransformerPattern(size=9),
                                train=True)
  with pytest.raises(ValueError, match="share_t must be a bool"):
    TransformerPattern(share_t=2).validate()


# --- policies ----------------------------------------------------------------

def _policy():
  return Policy({
      "stage3/block1/bn2": ConvPattern(height=3, width=5, stride_h=8,
                                       stride_w=10, repeats_h=2, repeats_w=2,
                                       rotate=30.0, shear_x=0.25,
                                       share_c=False, residual=True),
      "layer4/attn/softmax": TransformerPattern(size=2, stride=1,
                                                share_t=True, rate=0.2),
      "stage4/block0/relu1": RegularizerSpec("drop_block",
                                             {"rate": 0.1, "block_size": 3}),
  })


def test_policy_json_round_trip(tmp_path):
  policy = _policy()
  again = Policy.from_json(policy.to_json())
  assert again == policy
  path = tmp_path / "policy.json"
  policy.save(str(path))
  assert Policy.load(str(path)) == policy
  assert Policy.load(EXAMPLE).sites["layer0/ffn/output"].share_c


def test_policy_validation_against_model_sites_and_scaling():
  policy = _policy()
  sites = ["stage3/block1/bn2", "layer4/attn/softmax", "stage4/block0/relu1",
           "stage4/block0/relu2"]
  assert policy.validate_sites(sites) is policy
  with pytest.raises(ValueError, match=r"site 'stage3/block1/bn2' is not a "
                     r"site of this model.*Did you mean"):
    policy.validate_sites(["stage3/block1/bn1", "stage3/block2/bn2"])
  big = policy.scaled(2.0)
  assert big.sites["stage3/block1/bn2"].height == 6
  assert big.sites["layer4/attn/softmax"] == policy.sites["layer4/attn/softmax"]


@pytest.mark.parametrize("bad,match", [
    ([], "top level must be a JSON object"),
    ({"format": "other", "version": 1, "sites": {}}, "field 'format'"),
    ({"format": "dropgraph_jax.policy", "version": 2, "sites": {}},
     "field 'version' must be 1, got 2"),
    ({"format": "dropgraph_jax.policy", "version": 1, "sites": []},
     "field 'sites'"),
    ({"format": "dropgraph_jax.policy", "version": 1,
      "sites": {"a": {"kind": "cutout"}}}, "field 'kind'.*got 'cutout'"),
    ({"format": "dropgraph_jax.policy", "version": 1,
      "sites": {"a": {"kind": "conv_pattern", "hieght": 3}}},
     "unknown field 'hieght'"),
    ({"format": "dropgraph_jax.policy", "version": 1,
      "sites": {"a": {"kind": "conv_pattern", "rotate": "x"}}},
     "rotate must be a finite number, got 'x'"),
    ({"format": "dropgraph_jax.policy", "version": 1,
      "sites": {"a": {"kind": "drop_block", "rate": 1.5}}},
     r"rate must be in \[0, 1\), got 1.5"),
    ({"format": "dropgraph_jax.policy", "version": 1,
      "sites": {"a": {"kind": "drop_block", "rate": 0.1, "size": 3}}},
     "unknown field 'size' for kind 'drop_block'"),
    ({"format": "dropgraph_jax.policy", "version": 1,
      "sites": {"a": {"kind": "transformer_pattern", "stride": -1}}},
     "stride must be an int >= 0, got -1"),
])
def test_policy_bad_json_names_field_and_value(bad, match):
  with pytest.raises(ValueError, match=match):
    Policy.from_json(json.dumps(bad))
  with pytest.raises(ValueError, match="not valid JSON"):
    Policy.from_json("{not json")


@pytest.mark.slow
def test_apply_spec_dispatches_every_kind():
  key = jax.random.key(0)
  x = jnp.ones((2, 16, 16, 4))
  for site, spec in _policy().sites.items():
    inp = jnp.ones((2, 8, 6)) if "attn" in site else x
    y = apply_spec(spec, inp, key=key, train=True)
    assert y.shape == inp.shape and not np.array_equal(y, inp)
  assert apply_spec(None, x, key=key, train=True) is x
  spec = RegularizerSpec("drop_block", {"rate": 0.1, "block_size": 3})
  np.testing.assert_array_equal(
      apply_spec(spec, x, key=key, train=True, rate=0.0), x)


@pytest.mark.slow
def test_show_tool_renders_pngs(tmp_path):
  out = tmp_path / "render"
  assert show.main([EXAMPLE, "--out", str(out), "--samples", "2"]) == 0
  pngs = sorted(p.name for p in out.iterdir())
  assert "overview.png" in pngs and len(pngs) == 7
  for name in pngs:
    assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  bad = tmp_path / "bad.json"
  bad.write_text('{"format": "dropgraph_jax.policy", "version": 1, '
                 '"sites": {"s": {"kind": "conv_pattern", "height": -2}}}')
  assert show.main([str(bad), "--out", str(out)]) == 2


def test_transformer_pattern_rescaling_keeps_the_mean():
  # Eq. 1 with normalize='batch': Size(m) / Sum(m) makes the mean exact.
  x = jnp.ones((8, 24, 16))
  y = np.asarray(transformer_pattern_dropout(
      x, key=jax.random.key(0), train=True,
      pattern=TransformerPattern(size=3, stride=1, share_t=True, rate=0.4)))
  assert (y == 0).any()
  np.testing.assert_allclose(y.mean(), 1.0, rtol=1e-5)


def test_policy_zoo_files_load_and_match_their_generator():
  from experiments import policy_zoo
  root = os.path.join(os.path.dirname(__file__), "..", "policies")
  entries = policy_zoo.zoo()
  assert len(entries) >= 6
  for name, (policy, _) in entries.items():
    assert Policy.load(os.path.join(root, f"{name}.json")).to_dict() == \
        policy.to_dict(), name
    assert os.path.exists(os.path.join(root, f"{name}.png"))
