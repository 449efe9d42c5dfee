"""Cluster-GCN batches (Chiang et al. 2019) for graphs too large for one
full-batch step (ogbn-products: 2.4M nodes, 61.9M edges).

The graph is cut once into ``num_parts`` clusters by METIS (through
``pymetis``, the maintained Python binding of the METIS library; install
with ``pip install -e ".[graphs]"``), as the reference code does. Each
training step takes ``clusters_per_batch`` clusters drawn at random without
replacement (the reference's "stochastic multiple partitions") and the
subgraph they induce: every edge with both ends inside the batch, so edges
between the chosen clusters are kept. Batches are padded to a fixed node
and edge count (one compiled step): padding nodes are masked out of the
loss and carry only loops.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

import numpy as np


def metis_parts(senders, receivers, num_nodes: int, num_parts: int
                ) -> np.ndarray:
  """The cluster id ``(num_nodes,)`` of every node, from METIS."""
  if not 1 <= num_parts <= num_nodes:
    raise ValueError(f"metis_parts: num_parts must be in [1, {num_nodes}], "
                     f"got {num_parts}.")
  try:
    import pymetis  # an optional extra: only Cluster-GCN needs it
  except ImportError:
    raise ValueError("metis_parts: Cluster-GCN needs pymetis: pip install "
                     "-e \".[graphs]\".") from None
  order = np.argsort(senders, kind="stable")
  adjncy = np.asarray(receivers)[order]
  xadj = np.concatenate([[0], np.cumsum(np.bincount(
      np.asarray(senders), minlength=num_nodes))])
  _, parts = pymetis.part_graph(
      num_parts, adjacency=pymetis.CSRAdjacency(adj_starts=xadj,
                                                adjacent=adjncy))
  return np.asarray(parts, np.int32)


def batch_budget(parts: np.ndarray, senders, clusters_per_batch: int):
  """(nodes, edges) that fit any ``clusters_per_batch`` clusters, + 1 pad."""
  sizes = np.sort(np.bincount(parts))[::-1]
  degree = np.bincount(parts[np.asarray(senders)], minlength=len(sizes))
  return (int(sizes[:clusters_per_batch].sum()) + 1,
          int(np.sort(degree)[::-1][:clusters_per_batch].sum()) + 1)


def cluster_node_sets(parts: np.ndarray, clusters_per_batch: int,
                      rng: np.random.Generator) -> List[np.ndarray]:
  """One epoch's batches as sorted node ids: the clusters in a random
  order, ``clusters_per_batch`` at a time."""
  # Each cluster's nodes once per epoch (not a scan of all nodes a batch).
  order = np.argsort(parts, kind="stable")
  members = np.split(order, np.cumsum(np.bincount(parts))[:-1])
  clusters = rng.permutation(len(members))
  return [np.sort(np.concatenate([members[c] for c in
                                  clusters[lo:lo + clusters_per_batch]]))
          for lo in range(0, len(clusters), clusters_per_batch)]


def cluster_batches(graph, parts: np.ndarray, clusters_per_batch: int,
                    rng: np.random.Generator, budget
                    ) -> Iterator[Dict[str, Any]]:
  """One epoch of padded subgraph batches of ``graph`` (a ``NodeGraph``)."""
  for nodes in cluster_node_sets(parts, clusters_per_batch, rng):
    yield induced(graph, nodes, budget)


def induced(graph, nodes: np.ndarray, budget) -> Dict[str, Any]:
  """The subgraph on ``nodes`` (relabelled 0..n-1), padded to ``budget``."""
  max_nodes, max_edges = budget
  local = np.full(len(graph.labels), -1, np.int64)
  local[nodes] = np.arange(len(nodes))
  keep = (local[graph.senders] >= 0) & (local[graph.receivers] >= 0)
  pad = max_nodes - 1
  senders = np.full(max_edges, pad, np.int32)
  receivers = np.full(max_edges, pad, np.int32)
  count = int(keep.sum())
  senders[:count] = local[graph.senders[keep]]
  receivers[:count] = local[graph.receivers[keep]]
  x = np.zeros((max_nodes, graph.features.shape[1]), np.float32)
  x[:len(nodes)] = graph.features[nodes]
  labels = np.zeros(max_nodes, np.int32)
  labels[:len(nodes)] = graph.labels[nodes]
  mask = np.zeros(max_nodes, np.float32)
  mask[:len(nodes)] = graph.train_mask[nodes]
  return {"x": x, "senders": senders, "receivers": receivers,
          "labels": labels, "train_mask": mask, "num_nodes": max_nodes}
