"""AutoDropout search spaces: token sequences <-> dropout policies.

A search space lists the decisions the controller makes, one *token* each,
and decodes a token sequence into a :class:`~dropgraph_jax.patterns.Policy`.

ConvNets ("Search Space for Dropout Patterns in ConvNets", Figure 3): 8
tokens per site, in this order: ``size``, ``stride``, ``repeat``,
``rotate``, ``shear_x``, ``shear_y``, ``share_c``, ``residual``. ``size``
is the side of the basic (square) rectangle, ``stride`` and ``repeat``
its tiling (the same along both axes: the paper has one token each), the
rest as in :class:`~dropgraph_jax.patterns.ConvPattern`. As for
Transformers, ``size = 0`` means no pattern at that site (the paper's best
ResNet-50 policy acts at two blocks only, so "no pattern" must be
expressible). One site per batch-norm output (``site_regex``). With
``map_sizes`` (each site's ``(H, W)``, from
:func:`~dropgraph_jax.models.sites.site_shapes`), decoding
fits a pattern to its map: the rectangle is clipped to the map and the
repeats are reduced until the tiling fits (so every token sequence is a
valid policy, as the paper's controller needs).

Transformers ("Search Space for Dropout Patterns in Transformers"): 4
tokens (``size``, ``stride``, ``share_t``, ``share_c``) for each of the six
sub-layers ``query, key, value, softmax, output, residual``; each pattern is
used at every layer ("We will use this pattern at all Transformer
layers"). ``size = 0`` disables a sub-layer's pattern. The dropout rate of
the affected units is ``rate`` (not searched, as in the paper).

The choice lists are fields, so a user can narrow or widen a space; the
defaults are ours (the paper does not list its value sets).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Dict, List, Sequence, Tuple

import numpy as np

from dropgraph_jax.patterns import (
  TRANSFORMER_SITES,
  ConvPattern,
  Policy,
  TransformerPattern,
)
from dropgraph_jax.regularizers._validate import compile_regex

CONV_TOKENS = ("size", "stride", "repeat", "rotate", "shear_x", "shear_y",
               "share_c", "residual")
TRANSFORMER_TOKENS = ("size", "stride", "share_t", "share_c")


@dataclasses.dataclass(frozen=True)
class ConvSpace:
  """8 tokens per site of ``sites`` (see the module docstring)."""
  sites: Tuple[str, ...]
  size: Tuple[int, ...] = (0, 1, 2, 3, 4, 5)
  stride: Tuple[int, ...] = (1, 2, 4, 8)
  repeat: Tuple[int, ...] = (1, 2, 3, 4)
  rotate: Tuple[float, ...] = (0.0, 15.0, 30.0, 45.0, 60.0, 75.0)
  shear_x: Tuple[float, ...] = (0.0, 0.1, 0.2, 0.3)
  shear_y: Tuple[float, ...] = (0.0, 0.1, 0.2, 0.3)
  share_c: Tuple[bool, ...] = (False, True)
  residual: Tuple[bool, ...] = (False, True)
  map_sizes: Tuple[Tuple[int, int], ...] = ()  # per site; () = unchecked

  kind = "conv"

  def __post_init__(self):
    _check_sites("ConvSpace", self.sites)
    if self.map_sizes and len(self.map_sizes) != len(self.sites):
      raise ValueError(f"ConvSpace: map_sizes must give one (H, W) per site "
                       f"({len(self.sites)}), got {len(self.map_sizes)}.")
    for name in CONV_TOKENS:
      _check_choices("ConvSpace", name, getattr(self, name))

  def vocab_sizes(self) -> List[int]:
    per_site = [len(getattr(self, name)) for name in CONV_TOKENS]
    return per_site * len(self.sites)

  def decode(self, tokens: Sequence[int]) -> Policy:
    tokens = _check_tokens(self, tokens)
    specs = {}
    for i, site in enumerate(self.sites):
      value = {name: getattr(self, name)[int(t)] for name, t in
               zip(CONV_TOKENS, tokens[8 * i:8 * i + 8])}
      if value["size"] == 0:
        continue
      size, stride = value["size"], value["stride"]
      reps = [value["repeat"]] * 2
      sides = [size, size]
      if self.map_sizes:
        for axis, extent in enumerate(self.map_sizes[i]):
          sides[axis] = min(size, extent)
          reps[axis] = max(1, min(reps[axis],
                                  (extent - sides[axis]) // stride + 1))
      specs[site] = ConvPattern(
          height=sides[0], width=sides[1],
          stride_h=stride, stride_w=stride,
          repeats_h=reps[0], repeats_w=reps[1],
          rotate=value["rotate"], shear_x=value["shear_x"],
          shear_y=value["shear_y"], share_c=value["share_c"],
          residual=value["residual"])
    return Policy(specs)

  def describe(self) -> Dict:
    return {"kind": self.kind, "sites": list(self.sites),
            **{n: list(getattr(self, n)) for n in CONV_TOKENS}}


@dataclasses.dataclass(frozen=True)
class TransformerSpace:
  """4 tokens per sub-layer, shared by every layer of ``layers``."""
  layers: Tuple[str, ...]            # e.g. ('layer0', 'layer1', ...)
  size: Tuple[int, ...] = (0, 1, 2, 4, 8, 16, 32, 70)
  stride: Tuple[int, ...] = (0, 1, 2, 4)
  share_t: Tuple[bool, ...] = (False, True)
  share_c: Tuple[bool, ...] = (False, True)
  rate: float = 0.1
  sublayers: Tuple[str, ...] = TRANSFORMER_SITES

  kind = "transformer"

  def __post_init__(self):
    _check_sites("TransformerSpace", self.layers)
    for name in TRANSFORMER_TOKENS:
      _check_choices("TransformerSpace", name, getattr(self, name))
    if not 0.0 < self.rate < 1.0:
      raise ValueError(f"TransformerSpace: rate must be in (0, 1), got "
                       f"{self.rate!r}.")

  @property
  def sites(self) -> Tuple[str, ...]:
    return tuple(f"{layer}/{_sub_path(sub)}" for layer in self.layers
                 for sub in self.sublayers)

  def vocab_sizes(self) -> List[int]:
    per = [len(getattr(self, name)) for name in TRANSFORMER_TOKENS]
    return per * len(self.sublayers)

  def decode(self, tokens: Sequence[int]) -> Policy:
    tokens = _check_tokens(self, tokens)
    specs = {}
    for i, sub in enumerate(self.sublayers):
      value = {name: getattr(self, name)[int(t)] for name, t in
               zip(TRANSFORMER_TOKENS, tokens[4 * i:4 * i + 4])}
      if value["size"] == 0:
        continue
      pattern = TransformerPattern(rate=self.rate, **value)
      for layer in self.layers:
        specs[f"{layer}/{_sub_path(sub)}"] = pattern
    return Policy(specs)

  def describe(self) -> Dict:
    return {"kind": self.kind, "layers": list(self.layers),
            "rate": self.rate,
            **{n: list(getattr(self, n)) for n in TRANSFORMER_TOKENS}}


def _sub_path(sub: str) -> str:
  return sub if sub == "residual" else f"attn/{sub}"


def conv_space_for(model_sites, site_regex: str = r"(^|/)bn[^/]*$",
                   **choices) -> ConvSpace:
  """A ConvSpace over the model's sites matching ``site_regex`` (default:
  every batch-norm output, AutoDropout's placement). ``model_sites`` is a
  list of names, or the dict of
  :func:`~dropgraph_jax.models.sites.site_shapes` (then patterns are
  fitted to each site's map)."""
  pattern = compile_regex("conv_space_for", "site_regex", site_regex)
  sites = tuple(s for s in model_sites if pattern.search(s))
  if isinstance(model_sites, dict) and sites:
    choices.setdefault("map_sizes", tuple(
        tuple(model_sites[s][1:3]) for s in sites))
  if not sites:
    raise ValueError(f"conv_space_for: no site matches site_regex="
                     f"{site_regex!r} among {len(model_sites)} sites "
                     f"(e.g. {list(model_sites)[:4]}).")
  return ConvSpace(sites, **choices)


def transformer_space_for(model_sites: Sequence[str], **choices
                          ) -> TransformerSpace:
  """A TransformerSpace over every ``layer{i}`` of the model."""
  layers = sorted({s.split("/")[0] for s in model_sites
                   if re.match(r"^layer\d+/", s)},
                  key=lambda name: int(name[5:]))
  if not layers:
    raise ValueError("transformer_space_for: the model declares no "
                     "layer{i}/... sites.")
  space = TransformerSpace(tuple(layers), **choices)
  missing = sorted(set(space.sites) - set(model_sites))
  if missing:
    raise ValueError(f"transformer_space_for: the model lacks sites "
                     f"{missing[:4]}...")
  return space


def random_tokens(space, rng: np.random.Generator) -> List[int]:
  """Uniformly random tokens: the random-search baseline's sampler."""
  return [int(rng.integers(0, n)) for n in space.vocab_sizes()]


def _check_sites(where: str, sites) -> None:
  if not isinstance(sites, tuple) or not sites or not all(
      isinstance(s, str) and s for s in sites):
    raise ValueError(f"{where}: sites must be a non-empty tuple of site "
                     f"names, got {sites!r}.")


def _check_choices(where: str, name: str, choices) -> None:
  if not isinstance(choices, tuple) or not choices:
    raise ValueError(f"{where}: {name} must be a non-empty tuple of "
                     f"choices, got {choices!r}.")


def _check_tokens(space, tokens) -> List[int]:
  sizes = space.vocab_sizes()
  tokens = [int(t) for t in np.asarray(tokens).reshape(-1)]
  if len(tokens) != len(sizes):
    raise ValueError(f"{type(space).__name__}.decode: expected "
                     f"{len(sizes)} tokens, got {len(tokens)}.")
  for i, (t, n) in enumerate(zip(tokens, sizes)):
    if not 0 <= t < n:
      raise ValueError(f"{type(space).__name__}.decode: token {i} must be "
                       f"in [0, {n}), got {t}.")
  return tokens
