"""Graph convolutional networks with named regularization sites.

Message passing is sparse: a graph is an edge list (``senders``,
``receivers``, both directions of every undirected edge) and aggregation
is ``jax.ops.segment_sum`` over the receivers, so memory grows with the
edges, never with N x N (the OGB models run on graphs of millions of
nodes this way).

- :class:`GCN`: Kipf & Welling (2017), the two-layer node classifier,
  ``H' = D^-1/2 (A + I) D^-1/2 H W`` (their Eq. 2, renormalisation trick).
  One site, ``hidden``, between the two layers: where pygcn (the code the
  DropGraph paper used) puts its dropout, and where the DropGraph paper
  puts every regularizer of Table 5 ("before the second GCN layer only").
  ``input_dropout`` (default 0) is Kipf & Welling's dropout on the input
  features, off in the paper's rows.
- :class:`GCNGraphClassifier`: ``depth`` GCN layers, each followed by a
  site ``layer{i}``, a mean + max readout per graph and a linear head (the
  PROTEINS model; the regularizer goes to ``layer0``, before the second
  layer). A batch is the disjoint union of its graphs: ``graph_ids`` maps
  each node to its graph.
- :class:`DeepGCN`: the OGB GCN (ogbg-ppa; ogbn-products with Cluster-GCN
  batches): ``depth`` layers of width ``hidden`` with batch norm, ReLU and
  a site after every layer but the last ("DropGraph between every pair of
  GCN layers").

Graph arguments are a :class:`Graph` (edge list plus the normalised edge
weights, precomputed once per graph by :func:`normalized_graph`).
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dropgraph_jax.models.sites import apply_site, check_policy
from dropgraph_jax.patterns.policy import Policy


@flax.struct.dataclass
class Graph:
  """Edges ``senders -> receivers`` with weights, and ``num_nodes``: a
  pytree whose node count is static (it sizes the segment sums)."""
  senders: Any
  receivers: Any
  weights: Any
  num_nodes: int = flax.struct.field(pytree_node=False)


def normalized_graph(senders, receivers, num_nodes: int) -> Graph:
  """Adds self loops and the symmetric normalisation
  ``w_ij = 1 / sqrt(d_i d_j)`` with degrees of ``A + I`` (numpy, once)."""
  senders = np.asarray(senders, np.int32)
  receivers = np.asarray(receivers, np.int32)
  if senders.shape != receivers.shape or senders.ndim != 1:
    raise ValueError(f"normalized_graph: senders and receivers must be 1-D "
                     f"of one length, got {senders.shape} and "
                     f"{receivers.shape}.")
  if senders.size and (min(senders.min(), receivers.min()) < 0 or
                       max(senders.max(), receivers.max()) >= num_nodes):
    raise ValueError(f"normalized_graph: edge indices must be in "
                     f"[0, {num_nodes}).")
  loops = np.arange(num_nodes, dtype=np.int32)
  s, r = np.concatenate([senders, loops]), np.concatenate([receivers, loops])
  degree = np.bincount(r, minlength=num_nodes).astype(np.float32)
  weights = 1.0 / np.sqrt(degree[s] * degree[r])
  return Graph(s, r, weights.astype(np.float32), num_nodes=int(num_nodes))


def propagate(h: jax.Array, graph: Graph) -> jax.Array:
  """``sum_j w_ij h_j`` for every receiver ``i`` (sparse, segment sum)."""
  messages = h[graph.senders] * graph.weights[:, None].astype(h.dtype)
  return jax.ops.segment_sum(messages, graph.receivers,
                             num_segments=graph.num_nodes)


class GCNLayer(nn.Module):
  """``propagate(h W) + b`` (Kipf & Welling's layer, Glorot weights)."""
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h: jax.Array, graph: Graph) -> jax.Array:
    h = nn.Dense(self.features, use_bias=False, dtype=self.dtype,
                 param_dtype=jnp.float32,
                 kernel_init=nn.initializers.glorot_uniform(),
                 name="linear")(h)
    bias = self.param("bias", nn.initializers.zeros, (self.features,),
                      jnp.float32)
    return propagate(h, graph) + bias.astype(h.dtype)


class GCN(nn.Module):
  """Two-layer GCN node classifier: ``(N, F) -> (N, classes)`` logits."""
  num_classes: int = 7
  hidden: int = 16
  input_dropout: float = 0.0
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None, graph: Graph = None):
    if graph is None:
      raise ValueError("GCN: pass graph=normalized_graph(...).")
    site = functools.partial(apply_site, self.policy, "graph", train,
                             rate_factor)
    x = nn.Dropout(self.input_dropout, deterministic=not train)(
        x.astype(self.dtype))
    h = nn.relu(GCNLayer(self.hidden, self.dtype, name="gcn1")(x, graph))
    h = site("hidden", h)
    out = GCNLayer(self.num_classes, self.dtype, name="gcn2")(
        h, graph).astype(jnp.float32)
    check_policy(self, self.policy)
    return out


def mean_readout(h: jax.Array, graph_ids: jax.Array, num_graphs: int,
                 node_mask: jax.Array):
  """``(mean of each graph's real nodes, their count)``."""
  h = jnp.where(node_mask[:, None], h, 0)
  count = jax.ops.segment_sum(node_mask.astype(h.dtype), graph_ids,
                              num_segments=num_graphs)
  mean = jax.ops.segment_sum(h, graph_ids, num_segments=num_graphs) / \
      jnp.maximum(count, 1)[:, None]
  return mean, count


def readout(h: jax.Array, graph_ids: jax.Array, num_graphs: int,
            node_mask: jax.Array) -> jax.Array:
  """Mean and max of each graph's real nodes, concatenated."""
  mean, count = mean_readout(h, graph_ids, num_graphs, node_mask)
  low = jnp.finfo(h.dtype).min
  peak = jax.ops.segment_max(jnp.where(node_mask[:, None], h, low),
                             graph_ids, num_segments=num_graphs)
  peak = jnp.where(count[:, None] > 0, peak, 0)
  return jnp.concatenate([mean, peak], axis=-1)


class GCNGraphClassifier(nn.Module):
  """GCN layers, a mean + max readout and a linear head: ``(N_total, F)``
  node features of a batch of graphs -> ``(num_graphs, classes)``."""
  num_classes: int = 2
  hidden: int = 64
  depth: int = 2
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None, graph: Graph = None,
               graph_ids=None, num_graphs: int = 1, node_mask=None):
    if graph is None or graph_ids is None:
      raise ValueError("GCNGraphClassifier: pass graph= and graph_ids=.")
    node_mask = (jnp.ones(x.shape[0], bool) if node_mask is None
                 else node_mask)
    site = functools.partial(apply_site, self.policy, "graph", train,
                             rate_factor)
    h = x.astype(self.dtype)
    for i in range(self.depth):
      h = nn.relu(GCNLayer(self.hidden, self.dtype, name=f"gcn{i}")(h, graph))
      h = site(f"layer{i}", h)
    pooled = readout(h, graph_ids, num_graphs, node_mask)
    out = nn.Dense(self.num_classes, dtype=self.dtype,
                   param_dtype=jnp.float32, name="head")(pooled)
    check_policy(self, self.policy)
    return out.astype(jnp.float32)


class DeepGCN(nn.Module):
  """The OGB GCN: ``depth`` GCN layers of ``hidden`` units with batch
  norm and ReLU, sites ``layer{i}`` between layers; node logits, or graph
  logits through a mean readout when ``graph_ids`` is given."""
  num_classes: int = 47
  hidden: int = 256
  depth: int = 3
  policy: Optional[Policy] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool, rate_factor=None, graph: Graph = None,
               graph_ids=None, num_graphs: int = 1, node_mask=None):
    if graph is None:
      raise ValueError("DeepGCN: pass graph=normalized_graph(...).")
    site = functools.partial(apply_site, self.policy, "graph", train,
                             rate_factor)
    h = x.astype(self.dtype)
    for i in range(self.depth - 1):
      h = GCNLayer(self.hidden, self.dtype, name=f"gcn{i}")(h, graph)
      h = nn.relu(nn.BatchNorm(use_running_average=not train,
                               dtype=self.dtype, param_dtype=jnp.float32,
                               name=f"norm{i}")(h))
      h = site(f"layer{i}", h)
    if graph_ids is not None:
      h = GCNLayer(self.hidden, self.dtype, name=f"gcn{self.depth - 1}")(
          h, graph)
      mask = (jnp.ones(h.shape[0], bool) if node_mask is None
              else node_mask)
      h, _ = mean_readout(h, graph_ids, num_graphs, mask)
      out = nn.Dense(self.num_classes, param_dtype=jnp.float32,
                     name="head")(h)
    else:
      out = GCNLayer(self.num_classes, self.dtype,
                     name=f"gcn{self.depth - 1}")(h, graph)
    check_policy(self, self.policy)
    return out.astype(jnp.float32)
