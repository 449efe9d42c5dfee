"""Graph data: Planetoid citation graphs, TU graph sets, OGB raw CSV.

Edges are ``senders -> receivers`` lists, both directions of every edge, no
self loops, no repeats, sorted by (sender, receiver), whatever the files hold.

Planetoid (Yang et al. 2016), read as tkipf/gcn's ``utils.load_data``:
``ind.NAME.{x,y,tx,ty,allx,ally,graph}`` are Python-2 pickles, ``.test.index``
one id a line. Features: ``vstack(allx, tx)``, test rows moved to the index's
ids, row-normalised (``preprocess_features``; zero rows stay zero). The
citeseer index skips isolated nodes: ``tx``/``ty`` get zero rows there
(``tx_extended``; done whenever the index range outgrows ``tx``, never on
cora or pubmed). Labels: argmax of the one-hot rows (0 for a zero row, as
PyG). Train ``range(len(y))``, val the next 500, test the index. Real Cora:
2,708 nodes, 1,433 features, 7 classes; 10,858 list entries (302 repeats, no
self loops) give 10,556 directed = 5,278 undirected edges (as PyG); 140 / 500
/ 1,000. The unpickler resolves only the numpy, scipy.sparse (old and new
paths) and builtin names of :mod:`safe_pickle`; any other global (``os.system`` in
a crafted ``__reduce__``) raises ``ValueError`` before anything runs.

TU Dortmund (Morris et al. 2020), in ``root`` or ``root/NAME``: ``NAME_A``
(1-based ``i, j``), ``_graph_indicator``, ``_graph_labels`` (to 0..C-1,
sorted), optional ``_node_labels`` (one-hot per column), ``_node_attributes``
(appended; GIN: ``node_attributes=False``), else a constant 1. PROTEINS:
1,113 graphs (663 / 450), 43,471 nodes, 81,044 undirected edges, 3 node
labels, 1 attribute; no split: :func:`stratified_folds` is GIN's folds.

OGB (Hu et al. 2020) raw CSV as ``ogb`` unpacks it: ``raw/edge`` (``src,dst``
0-based, graph-local for graph sets), ``node-feat`` (none in ogbg-ppa, whose
reference embeds one shared index: a constant 1 here), ``node-label`` (NaN
-> -1), ``graph-label``, ``num-node-list``, ``num-edge-list``, ``edge-feat``
(all ``.csv.gz``), ``split/<scheme>/{train,valid,test}.csv.gz``.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
import warnings
import zlib
from typing import Dict, List, Optional, Tuple

import numpy as np
from scipy import sparse

from dropgraph_jax.data import safe_pickle

SPLITS = ("train", "valid", "test")
_PLANETOID = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")


@dataclasses.dataclass
class NodeGraph:
  """One graph for node classification (checked on construction)."""
  features: np.ndarray  # float32 (N, F)
  labels: np.ndarray  # int32 (N,)
  senders: np.ndarray  # int32 (E,)
  receivers: np.ndarray  # int32 (E,)
  train_mask: np.ndarray  # bool (N,)
  val_mask: np.ndarray
  test_mask: np.ndarray
  num_classes: int

  def __post_init__(self):
    n, edges = len(self.features), (len(self.senders), len(self.receivers))
    sizes = [len(self.labels), len(self.train_mask), len(self.val_mask),
             len(self.test_mask)]
    if sizes != [n] * 4 or edges[0] != edges[1]:
      raise ValueError(f"NodeGraph: labels and masks need {n} entries (the "
                       f"rows of features), got {sizes}; senders and "
                       f"receivers one each per edge, got {edges}.")
    _check_edges(np.stack([self.senders, self.receivers], 1), n, "NodeGraph")


@dataclasses.dataclass
class GraphDataset:
  """Graphs for graph classification, node ids local to each graph;
  ``splits``: the official 'train'/'valid'/'test' graph indices (OGB)."""
  node_features: List[np.ndarray]  # float32 (n_i, F) each
  senders: List[np.ndarray]  # int32 (e_i,) each
  receivers: List[np.ndarray]
  labels: np.ndarray  # int32 (G,)
  num_classes: int
  splits: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  edge_features: Optional[List[np.ndarray]] = None  # float32 (e_i, D) each


def _check_edges(edges: np.ndarray, num_nodes: int, what: str):
  if edges.size and (edges.min() < 0 or edges.max() >= num_nodes):
    raise ValueError(f"{what}: an edge names a node outside [0, {num_nodes}); "
                     "edges and node count disagree.")


def _symmetrize(edges: np.ndarray, num_nodes: int, what: str):
  """``(senders, receivers, origin)`` of ``(E, 2)`` edges: both directions,
  no loops, no repeats; output edge k is input edge ``origin[k]``."""
  _check_edges(edges, num_nodes, what)
  lo, hi = edges.min(1).astype(np.int64), edges.max(1).astype(np.int64)
  keep = np.flatnonzero(lo != hi)
  first = keep[np.unique(lo[keep] * num_nodes + hi[keep],
                         return_index=True)[1]]
  s = np.concatenate([lo[first], hi[first]])
  r = np.concatenate([hi[first], lo[first]])
  by = np.lexsort((r, s))
  return s[by].astype(np.int32), r[by].astype(np.int32), np.tile(first, 2)[by]


def _unpickle(path: str):
  return safe_pickle.load(
      path, "load_planetoid", "root must hold whole ind.NAME.{x,y,tx,ty,"
      "allx,ally,graph,test.index} files of tkipf/gcn.")


def _dense(obj, path: str) -> np.ndarray:
  obj = obj.toarray() if sparse.issparse(obj) else obj
  if not isinstance(obj, np.ndarray) or obj.ndim != 2:
    raise ValueError(f"load_planetoid: {path!r} holds a {type(obj).__name__},"
                     " expected a 2-D scipy.sparse matrix or numpy array.")
  return obj.astype(np.float64)


def _adjacency(graph, path: str) -> np.ndarray:
  try:
    return np.array([(u, v) for u in graph for v in graph[u]],
                    np.int64).reshape(-1, 2)
  except (TypeError, ValueError, LookupError) as e:
    raise ValueError(f"load_planetoid: {path!r} is not a dict of integer "
                     f"neighbour lists ({e}).") from None


def _place_test_rows(rows: np.ndarray, test_rows: np.ndarray,
                     index: np.ndarray, path: str) -> np.ndarray:
  """``vstack(rows, test_rows)``, row k of ``test_rows`` at ``index[k]``."""
  order = np.sort(index)
  if order[0] != len(rows) or len(np.unique(index)) != len(index):
    raise ValueError(f"load_planetoid: {path!r} must list distinct ids from "
                     f"{len(rows)} (the rows of allx) on; it starts at "
                     f"{order[0]}. The files do not belong together.")
  span = order[-1] - order[0] + 1
  if span != len(test_rows):  # citeseer: no rows for isolated test nodes
    padded = np.zeros((span, test_rows.shape[1]))
    padded[order - order[0]] = test_rows
    test_rows = padded
  rows = np.concatenate([rows, test_rows])
  rows[index] = rows[order]
  return rows


def load_planetoid(root: str, name: str = "cora") -> NodeGraph:
  """Cora, Citeseer or Pubmed as Kipf & Welling's GCN reads them."""
  path = {p: os.path.join(root, f"ind.{name}.{p}") for p in _PLANETOID}
  obj = {p: _unpickle(path[p]) for p in _PLANETOID[:-1]}
  x, y, tx, ty, allx, ally = (_dense(obj[p], path[p]) for p in _PLANETOID[:6])
  index = _read_table(path["test.index"], np.int64, "load_planetoid", None, 1)
  n = [len(v) for v in (x, y, tx, ty, allx, ally, index)]
  w = [v.shape[1] for v in (x, y, tx, ty, allx, ally)]
  if n[0] != n[1] or n[4] != n[5] or not n[2] == n[3] == n[6] or n[1] + 500 \
     > n[5] + n[6] or w[0::2] != [w[0]] * 3 or w[1::2] != [w[1]] * 3:
    raise ValueError(f"load_planetoid: x, y, tx, ty, allx, ally, test.index "
                     f"in {root!r} disagree: rows {n}, columns {w}.")
  features = _place_test_rows(allx, tx, index[:, 0], path["test.index"])
  labels = _place_test_rows(ally, ty, index[:, 0], path["test.index"])
  sums = features.sum(1, keepdims=True)  # preprocess_features
  features = np.divide(features, sums, out=np.zeros_like(features),
                       where=sums != 0)
  s, r, _ = _symmetrize(_adjacency(obj["graph"], path["graph"]),
                        len(features), f"load_planetoid: {path['graph']!r}")
  node, k = np.arange(len(features)), len(y)
  return NodeGraph(features.astype(np.float32), labels.argmax(1).astype(
      np.int32), s, r, node < k, (k <= node) & (node < k + 500),
      np.isin(node, index), labels.shape[1])


def _first_bad_line(path: str) -> str:
  """Which line of ``path`` (1-based) is not comma-separated numbers."""
  try:
    with (gzip.open if path.endswith(".gz") else open)(path, "rt") as f:
      for number, line in enumerate(f, 1):
        try:
          [float(v) for v in line.split(",") if line.strip()]
        except ValueError:
          return f"line {number} is not numeric: {line.strip()[:60]!r}"
  except (OSError, EOFError, UnicodeDecodeError, zlib.error) as e:
    return f"truncated or corrupt ({type(e).__name__}: {e})"
  return ""


def _read_table(path: str, dtype, caller: str, rows: Optional[int] = None,
                width: Optional[int] = None) -> np.ndarray:
  """Comma-separated numbers (plain or .gz), 2-D, blanks skipped; of shape
  ``(rows, width)`` where given."""
  if not os.path.isfile(path):
    raise ValueError(f"{caller}: file {path!r} does not exist.")
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
      table = np.loadtxt(path, delimiter=",", dtype=dtype, ndmin=2)
  except (ValueError, OSError, EOFError, UnicodeDecodeError, zlib.error) as e:
    raise ValueError(f"{caller}: cannot read {path!r}: "
                     f"{_first_bad_line(path) or e}.") from None
  if not table.size or rows not in (None, len(table)) or \
     width not in (None, table.shape[1]):
    raise ValueError(f"{caller}: {path!r} holds {len(table)} lines of "
                     f"{table.shape[1]} numbers; expected {rows or 'any'} "
                     f"lines of {width or 'any'}.")
  return table


def _column(path: str, caller: str, rows: Optional[int] = None) -> np.ndarray:
  return _read_table(path, np.float64, caller, rows, 1)[:, 0]


def _class_ids(path: str, caller: str, rows: Optional[int]) -> np.ndarray:
  """The integer labels of ``path`` as 0..C-1 in sorted order."""
  values = _column(path, caller, rows)
  if np.isnan(values).any() or (values != np.round(values)).any():
    raise ValueError(f"{caller}: {path!r} holds a non-integer or missing "
                     "label; only single-task classification is supported.")
  return np.unique(values, return_inverse=True)[1].astype(np.int32)


def _per_graph(graph, senders, receivers, features, num_graphs):
  """Global arrays cut into per-graph lists with graph-local node ids:
  ``(features, senders, receivers, edge order)``."""
  order = np.argsort(graph, kind="stable")
  counts = np.bincount(graph, minlength=num_graphs)
  local = np.empty_like(order)
  local[order] = np.arange(len(order)) - (np.cumsum(counts) - counts)[
      graph[order]]
  by = np.lexsort((local[receivers], local[senders], graph[senders]))
  cuts = np.cumsum(np.bincount(graph[senders], minlength=num_graphs))[:-1]
  return (np.split(features[order], np.cumsum(counts)[:-1]),
          np.split(local[senders[by]].astype(np.int32), cuts),
          np.split(local[receivers[by]].astype(np.int32), cuts), by)


def _tu_features(file, n: int, node_attributes: bool) -> np.ndarray:
  parts = []
  if os.path.isfile(file("node_labels")):
    for column in _read_table(file("node_labels"), np.int64, "load_tu", n).T:
      values, ids = np.unique(column, return_inverse=True)
      parts.append(np.eye(len(values), dtype=np.float32)[ids])
  if node_attributes and os.path.isfile(file("node_attributes")):
    parts.append(_read_table(file("node_attributes"), np.float32, "load_tu",
                             n))
  return np.concatenate(parts, 1) if parts else np.ones((n, 1), np.float32)


def _tu_file(folder: str, name: str, part: str) -> str:
  return os.path.join(folder, f"{name}_{part}.txt")


def load_tu(root: str, name: str = "PROTEINS", node_attributes: bool = True
            ) -> GraphDataset:
  """A TU Dortmund graph-classification set in ``root`` or ``root/name``."""
  folder = root if os.path.isfile(os.path.join(root, f"{name}_A.txt")) \
      else os.path.join(root, name)
  file = functools.partial(_tu_file, folder, name)
  edges = _read_table(file("A"), np.int64, "load_tu", None, 2)
  graph = _column(file("graph_indicator"), "load_tu").astype(np.int64) - 1
  labels = _class_ids(file("graph_labels"), "load_tu", None)
  n, num_graphs = len(graph), len(labels)
  if graph.min() < 0 or graph.max() >= num_graphs:
    raise ValueError(f"load_tu: {file('graph_indicator')!r} must hold ids in "
                     f"1..{num_graphs}, the number of graph labels.")
  s, r, _ = _symmetrize(edges - 1, n, f"load_tu: {file('A')!r}")
  if (graph[s] != graph[r]).any():
    raise ValueError(f"load_tu: {file('A')!r} joins nodes of different "
                     f"graphs of {file('graph_indicator')!r}.")
  x, s, r, _ = _per_graph(graph, s, r, _tu_features(file, n, node_attributes),
                          num_graphs)
  return GraphDataset(x, s, r, labels, int(labels.max()) + 1)


def stratified_folds(labels, num_folds: int = 10, seed: int = 0
                     ) -> List[Tuple[np.ndarray, np.ndarray]]:
  """(train, test) index pairs: GIN's seeded, shuffled StratifiedKFold."""
  labels = np.asarray(labels)
  if labels.ndim != 1 or not 2 <= num_folds <= len(labels):
    raise ValueError(f"stratified_folds: need 1-D labels and 2 <= num_folds <="
                     f" {len(labels)}, got {labels.shape}, {num_folds}.")
  # Imported here: scikit-learn costs ~1.7 s a process (see images._digits).
  from sklearn.model_selection import StratifiedKFold  # pylint: disable=g-import-not-at-top
  folds = StratifiedKFold(num_folds, shuffle=True, random_state=seed)
  return [(train.astype(np.int64), test.astype(np.int64))
          for train, test in folds.split(np.zeros(len(labels)), labels)]


def _ogb_splits(root: str, num: int, caller: str, prefer: str = "",
                required: bool = True) -> Dict[str, np.ndarray]:
  """``split/<scheme>/{train,valid,test}.csv.gz`` (``prefer`` if present)."""
  top = os.path.join(root, "split")
  schemes = sorted(os.listdir(top)) if os.path.isdir(top) else []
  schemes = [prefer] if prefer in schemes else schemes
  if len(schemes) != 1 and (schemes or required):
    raise ValueError(f"{caller}: need exactly one split scheme under {top!r}, "
                     f"found {schemes}.")
  splits = {}
  for part in SPLITS if schemes else ():
    path = os.path.join(top, schemes[0], f"{part}.csv.gz")
    splits[part] = ids = _column(path, caller).astype(np.int64)
    if ids.min() < 0 or ids.max() >= num:
      raise ValueError(f"{caller}: {path!r} names ids outside [0, {num}).")
  return splits


def _ogb(root: str, name: str, caller: str, dtype=np.float64,
         rows: Optional[int] = None) -> Optional[np.ndarray]:
  """``root/raw/{name}.csv.gz`` with ``rows`` rows if given; a missing
  ``node-feat`` is ones ``(rows, 1)``, a missing ``edge-feat`` None."""
  path = os.path.join(root, "raw", f"{name}.csv.gz")
  if name in ("node-feat", "edge-feat") and not os.path.isfile(path):
    return np.ones((rows, 1), np.float32) if name == "node-feat" else None
  width = None if "feat" in name else 2 if name == "edge" else 1
  table = _read_table(path, dtype, caller, rows, width)
  return table[:, 0] if width == 1 else table


def load_ogb_node_csv(root: str) -> NodeGraph:
  """An OGB node-property set (ogbn-products) from its raw CSV files."""
  caller = "load_ogb_node_csv"
  labels = _ogb(root, "node-label", caller)
  n, labels = len(labels), np.nan_to_num(labels, nan=-1).astype(np.int32)
  s, r, _ = _symmetrize(_ogb(root, "edge", caller, np.int64), n,
                        f"{caller}: edge.csv.gz")
  splits = _ogb_splits(root, n, caller, prefer="sales_ranking")
  return NodeGraph(_ogb(root, "node-feat", caller, np.float32, n), labels,
                   s, r, *(np.isin(np.arange(n), splits[p]) for p in SPLITS),
                   int(labels.max()) + 1)


def load_ogb_graph_csv(root: str) -> GraphDataset:
  """An OGB graph-property set (ogbg-ppa, ogbg-molhiv) from raw CSV files."""
  caller = "load_ogb_graph_csv"
  nodes = _ogb(root, "num-node-list", caller).astype(np.int64)
  num_edges = _ogb(root, "num-edge-list", caller, rows=len(nodes))
  labels = _class_ids(os.path.join(root, "raw", "graph-label.csv.gz"), caller,
                      len(nodes))
  edges = _ogb(root, "edge", caller, np.int64, int(num_edges.sum()))
  graph, edge_graph = (np.repeat(np.arange(len(nodes)), c.astype(np.int64))
                       for c in (nodes, num_edges))
  if len(edges) and (edges.min() < 0 or
                     (edges.max(1) >= nodes[edge_graph]).any()):
    raise ValueError(f"{caller}: edge.csv.gz names a node outside its graph.")
  s, r, origin = _symmetrize(edges + (np.cumsum(nodes) - nodes)[
      edge_graph, None], len(graph), f"{caller}: edge.csv.gz")
  x, ls, lr, by = _per_graph(graph, s, r, _ogb(
      root, "node-feat", caller, np.float32, len(graph)), len(nodes))
  table = _ogb(root, "edge-feat", caller, np.float32, len(edges))
  edge_features = None if table is None else np.split(
      table[origin[by]], np.cumsum([len(e) for e in ls])[:-1])
  return GraphDataset(x, ls, lr, labels, int(labels.max()) + 1,
                      _ogb_splits(root, len(nodes), caller, required=False),
                      edge_features)
