"""Renders what a dropout policy does, one PNG per site plus an overview.

    python -m dropgraph_jax.tools.show_policy POLICY.json --out DIR
        [--size 32] [--length 32] [--channels 16] [--samples 4] [--seed 0]

Like the paper's Figures 1, 2 and 4: ConvNet sites are drawn on a
``size x size`` map (black = dropped), one panel per random draw (or per
channel when masks are not shared); Transformer sites as a
``length x channels`` grid of one sequence. Library regularizers are drawn
the same way from their output on an all-ones input.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import List

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dropgraph_jax.patterns.conv import ConvPattern  # noqa: E402
from dropgraph_jax.patterns.policy import (  # noqa: E402
  Policy,
  RegularizerSpec,
  apply_spec,
  spec_to_dict,
)
from dropgraph_jax.patterns.transformer import TransformerPattern  # noqa: E402
from dropgraph_jax.regularizers import dropgraph as dropgraph_lib  # noqa: E402
from dropgraph_jax.regularizers._validate import check_number

_SEQUENCE_KINDS = ("variational_dropout", "word_dropout")


def site_panels(spec, key, size: int, length: int, channels: int,
                samples: int) -> List[np.ndarray]:
  """2-D arrays, 1 = kept, 0 = dropped or distorted, for one site's spec."""
  if isinstance(spec, TransformerPattern) or (
      isinstance(spec, RegularizerSpec) and spec.kind in _SEQUENCE_KINDS):
    x = jnp.ones((samples, length, channels))
    y = np.asarray(apply_spec(spec, x, key=key, train=True))
    return [(y[i] == 1.0 * y[i].max()).T.astype(float) if y[i].max() > 0 else
            np.zeros_like(y[i].T) for i in range(samples)]
  if isinstance(spec, RegularizerSpec) and spec.kind == "dropgraph":
    shape = (samples, size, size, 4)
    options = {k: val for k, val in spec.options.items()
               if k in ("alpha", "adjacency", "generator", "reduction")}
    params = dropgraph_lib.init_params(key, shape, **options)
    y = np.asarray(apply_spec(spec, jnp.ones(shape) * 10.0, key=key,
                              train=True, params=params))
    return [(y[i, :, :, 0] == 10.0).astype(float) for i in range(samples)]
  per_channel = isinstance(spec, ConvPattern) and not spec.share_c
  shape = (1, size, size, samples) if per_channel else (samples, size, size,
                                                        1)
  y = np.asarray(apply_spec(spec, jnp.ones(shape), key=key, train=True))
  if per_channel:
    return [(y[0, :, :, i] != 0).astype(float) for i in range(samples)]
  return [(y[i, :, :, 0] != 0).astype(float) for i in range(samples)]


def _file_name(site: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]+", "__", site) + ".png"


def render(policy: Policy, out_dir: str, size: int = 32, length: int = 32,
           channels: int = 16, samples: int = 4, seed: int = 0) -> List[str]:
  """Writes one PNG per site and ``overview.png``; returns the paths."""
  for name, value in (("size", size), ("length", length),
                      ("channels", channels), ("samples", samples)):
    check_number("show_policy", f"--{name}", value, 1, integer=True)
  check_number("show_policy", "--seed", seed, 0, integer=True)
  os.makedirs(out_dir, exist_ok=True)
  key = jax.random.key(seed)
  written = []
  rows = []
  for i, (site, spec) in enumerate(sorted(policy.sites.items())):
    panels = site_panels(spec, jax.random.fold_in(key, i), size, length,
                         channels, samples)
    rows.append((site, spec, panels))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.6),
                             squeeze=False)
    for ax, panel in zip(axes[0], panels):
      ax.imshow(panel, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
    fig.suptitle(f"{site}: {_describe(spec)}", fontsize=8)
    path = os.path.join(out_dir, _file_name(site))
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    written.append(path)
  if rows:
    fig, axes = plt.subplots(len(rows), samples,
                             figsize=(1.8 * samples, 1.9 * len(rows)),
                             squeeze=False)
    for r, (site, _, panels) in enumerate(rows):
      for c in range(samples):
        ax = axes[r][c]
        ax.imshow(panels[c], cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
      axes[r][0].set_ylabel(site, fontsize=6, rotation=0, ha="right")
    path = os.path.join(out_dir, "overview.png")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    written.append(path)
  return written


def _describe(spec) -> str:
  return ", ".join(f"{k}={v}" for k, v in spec_to_dict(spec).items())


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("policy", help="policy JSON file")
  parser.add_argument("--out", required=True, help="output directory")
  parser.add_argument("--size", type=int, default=32)
  parser.add_argument("--length", type=int, default=32)
  parser.add_argument("--channels", type=int, default=16)
  parser.add_argument("--samples", type=int, default=4)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  try:
    policy = Policy.load(args.policy)
    paths = render(policy, args.out, args.size, args.length, args.channels,
                   args.samples, args.seed)
  except (ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for path in paths:
    print(path)
  return 0


if __name__ == "__main__":
  sys.exit(main())
