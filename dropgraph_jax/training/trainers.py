"""The one training entry: ``train_and_evaluate(config, workdir)``.

Dispatches on the model's kind (:func:`dropgraph_jax.models.model_kind`)
through a small registry, as scenic picks trainers by name, or on
``config.trainer`` for a training mode of a kind (``'uda'``: semi-
supervised image classification). Every trainer
takes the config and the workdir, leaves the config unchanged, writes
``workdir/results.json`` and returns the results (plus the final
``state``). A new task family registers its trainer here.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

import ml_collections

from dropgraph_jax.models import model_kind
from dropgraph_jax.training import (
  classifier,
  cluster_gcn,
  common,
  graph_classification,
  graphs,
  language_model,
  points,
  segmentation,
  translation,
  uda,
)
from dropgraph_jax.training.common import NonFiniteLoss, Preempted

Trainer = Callable[[ml_collections.ConfigDict, str], Dict[str, Any]]

TRAINERS: Dict[str, Trainer] = {
    "image": classifier.train_and_evaluate,
    "tokens": language_model.train_and_evaluate,
    "graph_nodes": graphs.train_nodes,
    "graphs": graph_classification.train_graphs,
    "graph_clusters": cluster_gcn.train_clusters,
    "points": points.train_points,
    "segmentation": segmentation.train_and_evaluate,
    "translation": translation.train_and_evaluate,
    "uda": uda.train_and_evaluate,
}
# Trainers chosen by ``config.trainer`` rather than by the model's kind,
# with the model kind each one trains.
TRAINING_MODES = {"uda": "image"}


def get_trainer(kind: str) -> Trainer:
  """The trainer of a model kind (``'image'``, ``'tokens'``,
  ``'graph_nodes'``, ``'graphs'``, ``'points'``, ``'segmentation'``,
  ``'translation'``) or of a training mode (``'uda'``)."""
  if kind not in TRAINERS:
    raise ValueError(f"get_trainer: no trainer for model kind {kind!r}; "
                     f"registered kinds: {sorted(TRAINERS)}.")
  return TRAINERS[kind]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str
                       ) -> Dict[str, Any]:
  """Trains and evaluates ``config`` in ``workdir`` with its kind's
  trainer; returns the results. Every numeric and boolean field is
  checked first (:func:`common.check_numbers`), whatever the kind."""
  common.check_numbers(config)
  kind, mode = model_kind(config.model), config.get("trainer", "")
  if mode and TRAINING_MODES[mode] != kind:
    raise ValueError(f"train_and_evaluate: config.trainer={mode!r} trains "
                     f"{TRAINING_MODES[mode]!r} models; config.model="
                     f"{config.model!r} is a {kind!r} model.")
  return get_trainer(mode or kind)(config, workdir)


__all__ = ["NonFiniteLoss", "Preempted", "TRAINERS", "get_trainer", "train_and_evaluate"]
