"""Flax models with named regularization sites, and their registry.

    model = get_model("resnet50_cifar", num_classes=100, policy=policy)
    sites = list_sites(model, (1, 32, 32, 3))

Every model takes ``policy`` (a :class:`dropgraph_jax.patterns.Policy`) and
``dtype`` (compute dtype; parameters stay float32), and is called as
``model.apply(variables, x, train=..., rate_factor=None)`` with keys from
the ``'dropout'`` rng collection. ``*_tiny`` variants are for tests.
"""

from __future__ import annotations

import functools
from typing import Any, Dict

from dropgraph_jax.models.dgcnn import DGCNN
from dropgraph_jax.models.efficientnet import EfficientNet
from dropgraph_jax.models.gcn import GCN, DeepGCN, GCNGraphClassifier
from dropgraph_jax.models.regnet import RegNetX
from dropgraph_jax.models.resnet import ResNet
from dropgraph_jax.models.resnet_segmentation import DeepLabV3, FCN32s
from dropgraph_jax.models.sites import Site, check_policy, list_sites
from dropgraph_jax.models.transformer_seq2seq import CONFIGS as S2S_CONFIGS
from dropgraph_jax.models.transformer_seq2seq import Seq2SeqTransformer
from dropgraph_jax.models.transformer_xl import CONFIGS as TXL_CONFIGS
from dropgraph_jax.models.transformer_xl import TransformerXL
from dropgraph_jax.models.unet import UNet
from dropgraph_jax.models.wide_resnet import WideResNet

_p = functools.partial

# name -> (constructor, kind, example input shape for list_sites / tests)
REGISTRY: Dict[str, tuple] = {
    "resnet18_cifar": (_p(ResNet, stage_sizes=(2, 2, 2, 2), block="basic",
                          num_classes=10, stem="cifar"),
                       "image", (1, 32, 32, 3)),
    # He et al.'s CIFAR ResNet-56 (3 stages of 9 basic blocks, 16/32/64
    # features; projection shortcuts), DropGraph Table 7's classifier.
    "resnet56_cifar": (_p(ResNet, stage_sizes=(9, 9, 9), block="basic",
                          num_classes=10, width=16, stem="cifar"), "image",
                       (2, 32, 32, 3)),
    "resnet50_cifar": (_p(ResNet, stage_sizes=(3, 4, 6, 3),
                          block="bottleneck", num_classes=10, stem="cifar"),
                       "image", (1, 32, 32, 3)),
    "resnet50": (_p(ResNet, stage_sizes=(3, 4, 6, 3), block="bottleneck",
                    num_classes=1000), "image", (1, 224, 224, 3)),
    "wrn28_2": (_p(WideResNet, depth=28, widen=2, num_classes=10), "image",
                (1, 32, 32, 3)),
    "wrn28_10": (_p(WideResNet, depth=28, widen=10, num_classes=10), "image",
                 (1, 32, 32, 3)),
    "regnetx_200mf": (RegNetX, "image", (1, 224, 224, 3)),
    "regnetx_200mf_cifar": (_p(RegNetX, stem=64, stem_stride=1,
                               strides=(1, 1, 2, 2), num_classes=10),
                            "image", (1, 32, 32, 3)),
    **{f"efficientnet_b{i}": (_p(EfficientNet, variant=f"b{i}"), "image",
                              (1, 224, 224, 3)) for i in range(8)},
    "transformer_xl_ptb": (_p(TransformerXL, config=TXL_CONFIGS["ptb"]),
                           "tokens", (1, 70)),
    "transformer_xl_small": (_p(TransformerXL, config=TXL_CONFIGS["small"]),
                             "tokens", (1, 70)),
    # The main job's model: 8x8 digits, stages at 8x8 and 4x4.
    "resnet_digits": (_p(ResNet, stage_sizes=(2, 2), block="basic",
                         num_classes=10, width=16, stem="cifar"), "image",
                      (2, 8, 8, 1)),
    # Tiny variants: same code paths, seconds to compile on CPU.
    "resnet_tiny": (_p(ResNet, stage_sizes=(1, 1, 1, 1), block="basic",
                       num_classes=10, width=8, stem="cifar"), "image",
                    (2, 16, 16, 3)),
    "resnet_bottleneck_tiny": (_p(ResNet, stage_sizes=(1, 1),
                                  block="bottleneck", num_classes=10,
                                  width=4, stem="cifar"), "image",
                               (2, 16, 16, 3)),
    "wrn_tiny": (_p(WideResNet, depth=10, widen=1, num_classes=10), "image",
                 (2, 16, 16, 3)),
    "regnetx_tiny": (_p(RegNetX, stem=8, depths=(1, 1, 1, 1),
                        widths=(8, 16, 16, 24), group_width=8,
                        num_classes=10), "image", (2, 32, 32, 3)),
    "efficientnet_tiny": (_p(EfficientNet, variant="b0", num_classes=10,
                             width_override=0.25, depth_override=0.2),
                          "image", (2, 32, 32, 3)),
    "transformer_xl_tiny": (_p(TransformerXL, config=TXL_CONFIGS["tiny"]),
                            "tokens", (2, 12)),
    # Graph models (DropGraph Tables 4 and 5). Their calls also take the
    # graph (see models/gcn.py); the shape is of the node features.
    "gcn": (_p(GCN, hidden=16), "graph_nodes", (2708, 1433)),
    "gcn_graph_classifier": (_p(GCNGraphClassifier, hidden=64, depth=2),
                             "graphs", (64, 4)),
    "gcn_ogbg_ppa": (_p(DeepGCN, num_classes=37, hidden=300, depth=5),
                     "graphs", (64, 1)),
    "cluster_gcn_ogbn_products": (_p(DeepGCN, num_classes=47, hidden=256,
                                     depth=3), "graph_clusters", (1024, 100)),
    "dgcnn": (DGCNN, "points", (2, 1024, 3)),
    # Segmentation (DropGraph Table 3): per-pixel logits.
    "unet": (_p(UNet, width=64, levels=4), "segmentation", (2, 512, 512, 3)),
    "attention_unet": (_p(UNet, width=64, levels=4, attention=True),
                       "segmentation", (2, 512, 512, 3)),
    "unet_tiny": (_p(UNet, width=4, levels=2), "segmentation",
                  (2, 16, 16, 3)),
    "attention_unet_tiny": (_p(UNet, width=4, levels=2, attention=True),
                            "segmentation", (2, 16, 16, 3)),
    "fcn32s_resnet50": (_p(FCN32s, stage_sizes=(3, 4, 6, 3), num_classes=21),
                        "segmentation", (2, 224, 224, 3)),
    "deeplabv3_resnet50": (_p(DeepLabV3, stage_sizes=(3, 4, 6, 3),
                              num_classes=21), "segmentation",
                           (2, 224, 224, 3)),
    "fcn32s_tiny": (_p(FCN32s, stage_sizes=(1, 1, 1, 1), block="basic",
                       width=4, num_classes=3), "segmentation",
                    (2, 32, 32, 3)),
    "deeplabv3_tiny": (_p(DeepLabV3, stage_sizes=(1, 1, 1, 1), block="basic",
                          width=4, num_classes=3), "segmentation",
                       (2, 32, 32, 3)),
    # Translation (AutoDropout Table 4): (src, tgt_in) token pairs.
    "transformer_base": (_p(Seq2SeqTransformer, config=S2S_CONFIGS["base"]),
                         "translation", (2, 64)),
    "transformer_iwslt": (_p(Seq2SeqTransformer,
                             config=S2S_CONFIGS["iwslt"]), "translation",
                          (2, 64)),
    "transformer_small": (_p(Seq2SeqTransformer,
                             config=S2S_CONFIGS["small"]), "translation",
                          (2, 64)),
    "transformer_mini": (_p(Seq2SeqTransformer, config=S2S_CONFIGS["mini"]),
                         "translation", (2, 48)),
    "transformer_seq2seq_tiny": (_p(Seq2SeqTransformer,
                                    config=S2S_CONFIGS["tiny"]),
                                 "translation", (2, 16)),
    "dgcnn_small": (_p(DGCNN, k=10, widths=(32, 32, 64, 64), emb=256,
                       head=(128, 64)), "points", (2, 256, 3)),
}


def get_model(name: str, **kwargs: Any):
  """Builds a registered model; ``kwargs`` override its fields."""
  if name not in REGISTRY:
    raise ValueError(f"Unknown model {name!r}; known models: "
                     f"{sorted(REGISTRY)}.")
  ctor, _, _ = REGISTRY[name]
  return ctor(**kwargs)


def model_kind(name: str) -> str:
  """'image' (NHWC float input), 'tokens' ((N, T) int input), or a graph
  kind: 'graph_nodes' (one graph), 'graphs' (batches of graphs), 'points'
  ((B, N, 3) point clouds), 'segmentation' (NHWC images to per-pixel
  logits) or 'translation' ((N, S) source and (N, T) target tokens)."""
  if name not in REGISTRY:
    raise ValueError(f"Unknown model {name!r}; known models: "
                     f"{sorted(REGISTRY)}.")
  return REGISTRY[name][1]


def example_shape(name: str) -> tuple:
  model_kind(name)
  return REGISTRY[name][2]


__all__ = ["DGCNN", "DeepGCN", "EfficientNet", "GCN", "GCNGraphClassifier",
           "DeepLabV3", "FCN32s", "REGISTRY", "RegNetX", "ResNet", "Site",
           "TransformerXL", "UNet", "WideResNet", "check_policy", "example_shape",
           "get_model", "list_sites", "model_kind"]
