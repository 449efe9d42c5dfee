"""The policy zoo: the patterns the AutoDropout paper reports, as policy
JSON files, each rendered as PNG.

    python -m experiments.policy_zoo --out policies

The paper publishes no searched policy file; what it reports are the
example patterns of its figures and the qualitative description of the PTB
pattern, plus the classic dropouts its search space contains. Each entry
below says which. Load one in a training config with
``--config.regularizer.name=policy --config.regularizer.policy_file=
policies/NAME.json`` (its site names must be the model's; the ``ptb_*``
entry names Transformer-XL's sites, the conv entries a generic site to
copy to your own).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

from dropgraph_jax.models import get_model, list_sites
from dropgraph_jax.models.transformer_xl import autodropout_paper_policy
from dropgraph_jax.patterns import ConvPattern, Policy, TransformerPattern
from dropgraph_jax.tools import show_policy

SITE = "stage3/block0/bn2"  # a ResNet site: rename to your model's


def zoo() -> dict:
  """name -> (policy, what it is)."""
  model = get_model("transformer_xl_tiny")
  tiny_sites = list_sites(model, (1, model.config.tgt_len), dtype="int32")
  ptb = autodropout_paper_policy([s for s in tiny_sites
                                  if s.startswith("layer0/")],
                                 seq_len=model.config.tgt_len)
  return {
      "fig1_tiled_rotated": (Policy({SITE: ConvPattern(
          height=3, width=5, stride_h=8, stride_w=8, repeats_h=3,
          repeats_w=3, rotate=30.0)}),
          "Figure 1: a rectangle tiled and rotated (sizes ours)."),
      "fig2_tiled_sheared": (Policy({SITE: ConvPattern(
          height=2, width=2, stride_h=4, stride_w=4, repeats_h=4,
          repeats_w=4, shear_x=0.3)}),
          "Figure 2: a basic rectangle tiled by stride and repeats, "
          "sheared (sizes ours)."),
      "dropblock_as_pattern": (Policy({SITE: ConvPattern(
          height=7, width=7, share_c=False)}),
          "DropBlock's 7x7 block per channel, inside the search space."),
      "spatial_dropout_as_pattern": (Policy({SITE: ConvPattern(
          height=32, width=32, share_c=False, prob=0.1)}),
          "SpatialDropout: whole channels with probability 0.1 (our `prob` "
          "extension)."),
      "fig4_attention": (Policy({"layer0/attn/softmax": TransformerPattern(
          size=2, stride=1, share_t=True, share_c=False, rate=0.25)}),
          "Figure 4: size=2, stride=1, share_t=True, share_c=False on "
          "self-attention (rate ours)."),
      "ptb_qualitative": (ptb,
          "PTB (Transformer-XL): attention patterns like variational "
          "dropout, feed-forward like word dropout, as the paper's "
          "qualitative analysis describes (layer 0 shown; rates ours)."),
  }


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="policies")
  args = parser.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  for name, (policy, what) in zoo().items():
    policy.save(os.path.join(args.out, f"{name}.json"))
    with tempfile.TemporaryDirectory() as tmp:
      show_policy.render(policy, tmp, size=32, length=16, channels=16,
                         samples=4, seed=0)
      shutil.copy(os.path.join(tmp, "overview.png"),
                  os.path.join(args.out, f"{name}.png"))
    print(f"{name}: {what}")


if __name__ == "__main__":
  main()
