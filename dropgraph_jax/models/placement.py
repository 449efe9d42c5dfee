"""Where a library regularizer goes inside a residual block.

Blocks are ``stageS/blockB`` module paths whose sites end in ``bnK``,
``reluK`` and ``shortcut`` (ResNet, RegNetX). A placement names the sites
of each block that get the regularizer:

- ``'reference'`` (default): DropBlock's reference (TPU ResNet) and
  Disout's (huawei-noah/Disout): every activation inside the residual
  branch, the branch's last batch norm (before the addition) and the
  shortcut; ``relu1, relu2, bn3, shortcut`` in a bottleneck or X block,
  ``relu1, bn2, shortcut`` in a basic block.
- ``'post_activation'``: every activation, including the one after the
  addition, and the shortcut (this project's placement before 0.2; it
  regularizes the identity path twice and the branch's end never; kept
  for ablations).
"""

from __future__ import annotations

import re
from typing import Sequence

from dropgraph_jax.patterns.policy import Policy, RegularizerSpec

# Placement -> regex of the labels it picks (None: per block, see
# :func:`reference_labels`).
PLACEMENTS = {"reference": None, "post_activation": r"relu\d|shortcut"}


def reference_labels(sites: Sequence[str], block: str) -> str:
  """The reference placement's labels for ``block`` (a ``stageS/blockB``
  path): the relus but the last (which follows the addition), the last
  batch norm, and the shortcut."""
  labels = [s.rsplit("/", 1)[1] for s in sites
            if s.rsplit("/", 1)[0] == block]
  relus = sorted(lab for lab in labels if re.fullmatch(r"relu\d", lab))
  bns = sorted(lab for lab in labels if re.fullmatch(r"bn\d", lab))
  chosen = relus[:-1] + bns[-1:] + [lab for lab in labels
                                    if lab == "shortcut"]
  return "|".join(chosen)


def placement_policy(sites: Sequence[str], spec: RegularizerSpec,
                     blocks: Sequence[str], placement: str = "reference",
                     labels: str = "") -> Policy:
  """``spec`` at the sites ``placement`` picks in each of ``blocks``
  (``'stageS/blockB'`` paths); ``labels``, a regex, overrides it."""
  if placement not in PLACEMENTS:
    raise ValueError(f"placement must be one of {sorted(PLACEMENTS)}, got "
                     f"{placement!r}.")
  out = {}
  for block in blocks:
    chosen = labels or PLACEMENTS[placement] or reference_labels(sites,
                                                                 block)
    pattern = re.compile(rf"^{re.escape(block)}/({chosen})$")
    out.update({site: spec for site in sites if pattern.match(site)})
  return Policy(out)


def stage_blocks(sites: Sequence[str], stages: Sequence[int]) -> list:
  """The ``stageS/blockB`` paths of the given stages, in order."""
  pattern = re.compile(rf"^(stage({'|'.join(map(str, stages))})/block\d+)/")
  return sorted({m.group(1) for m in map(pattern.match, sites) if m})
