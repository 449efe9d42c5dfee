"""Dropout policies: named model sites -> a pattern or a library regularizer.

A policy is what AutoDropout's search produces and what a model consumes,
reusable the way AutoAugment policies are. It serialises to JSON::

    {
      "format": "dropgraph_jax.policy", "version": 1,
      "sites": {
        "stage3/block1/bn2":   {"kind": "conv_pattern", "height": 3,
                                "width": 5, "stride_h": 8, ...},
        "layer4/attn/softmax": {"kind": "transformer_pattern", "size": 2,
                                "stride": 1, "share_t": true,
                                "share_c": false, "rate": 0.1},
        "stage4/block0/relu1": {"kind": "drop_block", "rate": 0.1,
                                "block_size": 3}
      }
    }

``kind`` is ``conv_pattern``, ``transformer_pattern`` or the name of any
regularizer of the library (``dropout``, ``spatial_dropout``,
``drop_block``, ``disout``, ``drop_path``, ``variational_dropout``,
``word_dropout``, ``dropgraph``) with its keyword options. Every field is
validated; a wrong one raises ``ValueError`` naming the site, the field and
the value.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from typing import Any, Dict, Iterable, Mapping, Optional, Union

import jax

from dropgraph_jax.patterns.conv import ConvPattern, conv_pattern_dropout
from dropgraph_jax.patterns.transformer import (
  TransformerPattern,
  transformer_pattern_dropout,
)
from dropgraph_jax.regularizers import registry

FORMAT = "dropgraph_jax.policy"
VERSION = 1

# Library regularizers a policy may name, with the function that takes them.
REGULARIZERS = {name: entry.fn for name, entry in registry.REGISTRY.items()}
PATTERNS = {"conv_pattern": ConvPattern,
            "transformer_pattern": TransformerPattern}


@dataclasses.dataclass(frozen=True)
class RegularizerSpec:
  """A library regularizer and its keyword options (``rate``, ...)."""
  kind: str
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def validate(self, where: str = "RegularizerSpec") -> "RegularizerSpec":
    if self.kind not in REGULARIZERS:
      raise ValueError(f"{where}: kind must be one of "
                       f"{sorted(REGULARIZERS) + sorted(PATTERNS)}, got "
                       f"{self.kind!r}.")
    if "rate" not in self.options:
      raise ValueError(f"{where}: field 'rate' is required for kind "
                       f"{self.kind!r}.")
    registry.check_options(self.kind, self.options, where)
    return self

  def to_dict(self) -> Dict[str, Any]:
    return {"kind": self.kind, **dict(self.options)}


Spec = Union[ConvPattern, TransformerPattern, RegularizerSpec]


def spec_from_dict(data: Any, where: str) -> Spec:
  """Parses one site's JSON object into a validated spec."""
  if not isinstance(data, dict):
    raise ValueError(f"{where}: must be a JSON object, got "
                     f"{type(data).__name__} {data!r}.")
  if "kind" not in data:
    raise ValueError(f"{where}: field 'kind' is missing.")
  kind = data["kind"]
  fields = {k: val for k, val in data.items() if k != "kind"}
  if kind in PATTERNS:
    cls = PATTERNS[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    for name in fields:
      if name not in names:
        raise ValueError(f"{where}: unknown field {name!r} for kind "
                         f"{kind!r}; allowed: {sorted(names)}.")
    return cls(**fields).validate(where)
  if kind in REGULARIZERS:
    return RegularizerSpec(kind, fields).validate(where)
  raise ValueError(f"{where}: field 'kind' must be one of "
                   f"{sorted(PATTERNS) + sorted(REGULARIZERS)}, got "
                   f"{kind!r}.")


def spec_to_dict(spec: Spec) -> Dict[str, Any]:
  if isinstance(spec, RegularizerSpec):
    return spec.to_dict()
  return {"kind": spec.kind, **dataclasses.asdict(spec)}


@dataclasses.dataclass(frozen=True)
class Policy:
  """Site name -> spec. Sites absent from the policy are left alone."""
  sites: Mapping[str, Spec] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    for site, spec in self.sites.items():
      if not isinstance(site, str) or not site:
        raise ValueError(f"Policy: site names must be non-empty strings, "
                         f"got {site!r}.")
      if not isinstance(spec, (ConvPattern, TransformerPattern,
                               RegularizerSpec)):
        raise ValueError(f"Policy: site {site!r} must map to a ConvPattern, "
                         f"TransformerPattern or RegularizerSpec, got "
                         f"{type(spec).__name__}.")
      spec.validate(f"policy site {site!r}")

  # --- JSON -----------------------------------------------------------------
  def to_dict(self) -> Dict[str, Any]:
    return {"format": FORMAT, "version": VERSION,
            "sites": {site: spec_to_dict(spec)
                      for site, spec in sorted(self.sites.items())}}

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2)

  @classmethod
  def from_dict(cls, data: Any) -> "Policy":
    if not isinstance(data, dict):
      raise ValueError(f"policy: top level must be a JSON object, got "
                       f"{type(data).__name__}.")
    if data.get("format") != FORMAT:
      raise ValueError(f"policy: field 'format' must be {FORMAT!r}, got "
                       f"{data.get('format')!r}.")
    if data.get("version") != VERSION:
      raise ValueError(f"policy: field 'version' must be {VERSION}, got "
                       f"{data.get('version')!r}.")
    sites = data.get("sites")
    if not isinstance(sites, dict):
      raise ValueError(f"policy: field 'sites' must be an object of site -> "
                       f"spec, got {type(sites).__name__}.")
    extra = set(data) - {"format", "version", "sites"}
    if extra:
      raise ValueError(f"policy: unknown top-level field(s) {sorted(extra)}.")
    return cls({site: spec_from_dict(spec, f"policy site {site!r}")
                for site, spec in sites.items()})

  @classmethod
  def from_json(cls, text: str) -> "Policy":
    try:
      data = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f"policy: not valid JSON ({e}).") from None
    return cls.from_dict(data)

  def save(self, path: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
      f.write(self.to_json() + "\n")
    os.replace(tmp, path)

  @classmethod
  def load(cls, path: str) -> "Policy":
    with open(path) as f:
      return cls.from_json(f.read())

  # --- use ------------------------------------------------------------------
  def validate_sites(self, model_sites: Iterable[str]) -> "Policy":
    """Raises if the policy names a site the model does not declare."""
    known = list(model_sites)
    for site in self.sites:
      if site not in known:
        close = difflib.get_close_matches(site, known, n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(f"policy: site {site!r} is not a site of this model "
                         f"({len(known)} sites).{hint}")
    return self

  def scaled(self, factor: float) -> "Policy":
    """ConvNet pattern sizes and strides scaled for a larger resolution."""
    if not factor > 0:
      raise ValueError(f"Policy.scaled: factor must be > 0, got {factor!r}.")
    return Policy({site: spec.scaled(factor) if isinstance(spec, ConvPattern)
                   else spec for site, spec in self.sites.items()})

  def get(self, site: str) -> Optional[Spec]:
    return self.sites.get(site)

  def __len__(self) -> int:
    return len(self.sites)


def apply_spec(spec: Optional[Spec], x: jax.Array, *, key, train: bool,
               params=None, rate=None, next_conv_kernel=None) -> jax.Array:
  """Applies a site's spec to ``x`` (``None``: identity).

  ``rate`` overrides a RegularizerSpec's rate (e.g. a traced schedule
  value); ``params`` are the graph weights for ``dropgraph``;
  ``next_conv_kernel`` is passed to regularizers that read it (Disout),
  unless the spec sets it.
  """
  if spec is None:
    return x
  if isinstance(spec, ConvPattern):
    return conv_pattern_dropout(x, key=key, pattern=spec, train=train)
  if isinstance(spec, TransformerPattern):
    return transformer_pattern_dropout(x, key=key, pattern=spec, train=train)
  options = dict(spec.options)
  if rate is not None:
    options["rate"] = rate
  entry = registry.get(spec.kind)
  if entry.reads_next_conv and next_conv_kernel is not None:
    options.setdefault("next_conv_kernel", next_conv_kernel)
  if entry.needs_params:
    return entry.fn(x, params, key=key, train=train, **options)
  return entry.fn(x, key=key, train=train, **options)
