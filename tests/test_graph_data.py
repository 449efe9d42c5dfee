"""Graph and point-cloud readers on small files in the real formats.

Every file is written here, into ``tmp_path``, the way its source writes it
(Planetoid: protocol-2 pickles of scipy.sparse / numpy / defaultdict; TU:
comma-separated text; OGB: ``.csv.gz``; ModelNet40: PointNet's HDF5).
"""

import collections
import gzip
import os
import pickle

import h5py
import numpy as np
import pytest
from scipy import sparse

from dropgraph_jax.data import graphs
from dropgraph_jax.data import point_clouds as pc

NUM_TRAIN, NUM_ALL, NUM_TEST, FEATURES, CLASSES = 3, 510, 10, 6, 3


def _pickle(path, obj):
  with open(path, "wb") as f:
    pickle.dump(obj, f, protocol=2)


def _one_hot(labels):
  return np.eye(CLASSES, dtype=np.int32)[labels]


def _write_planetoid(root, test_ids, rng):
  """A Planetoid set; ``test_ids`` in file order (may skip ids)."""
  allx = (rng.random((NUM_ALL, FEATURES)) < 0.4).astype(np.float32)
  allx[5] = 0  # a node without features: its row stays zero
  tx = (rng.random((len(test_ids), FEATURES)) < 0.4).astype(np.float32) + 1
  ally = _one_hot(rng.integers(0, CLASSES, NUM_ALL))
  ty = _one_hot(rng.integers(0, CLASSES, len(test_ids)))
  graph = collections.defaultdict(list)
  graph[0] += [1, 1, 2, 0]  # a repeat and a self loop
  graph[2] += [0, 515]  # 0-2 listed both ways, 2-515 one way only
  graph[515] += [7]
  parts = {"x": allx[:NUM_TRAIN], "y": ally[:NUM_TRAIN], "tx": tx, "ty": ty,
           "allx": allx, "ally": ally, "graph": graph}
  for name, value in parts.items():
    value = value if name == "graph" or name.endswith("y") else \
        sparse.csr_matrix(value)
    _pickle(root / f"ind.toy.{name}", value)
  (root / "ind.toy.test.index").write_text(
      "".join(f"{i}\n" for i in test_ids))
  return parts


def _normalized(rows):
  sums = rows.sum(1, keepdims=True)
  return np.where(sums > 0, rows / np.where(sums > 0, sums, 1), 0)


def _undirected(senders, receivers):
  pairs = list(zip(senders.tolist(), receivers.tolist()))
  assert len(set(pairs)) == len(pairs), "repeated edge"
  assert all(s != r for s, r in pairs), "self loop"
  assert set(pairs) == {(r, s) for s, r in pairs}, "missing direction"
  return {tuple(sorted(p)) for p in pairs}


def test_planetoid_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  test_ids = NUM_ALL + rng.permutation(NUM_TEST)
  parts = _write_planetoid(tmp_path, test_ids, rng)
  g = graphs.load_planetoid(str(tmp_path), "toy")
  assert g.features.shape == (NUM_ALL + NUM_TEST, FEATURES)
  assert g.features.dtype == np.float32 and g.num_classes == CLASSES
  np.testing.assert_allclose(g.features[:NUM_ALL],
                             _normalized(parts["allx"]), rtol=1e-6)
  np.testing.assert_allclose(g.features[test_ids], _normalized(parts["tx"]),
                             rtol=1e-6)
  assert not g.features[5].any()
  np.testing.assert_array_equal(g.labels[test_ids], parts["ty"].argmax(1))
  np.testing.assert_array_equal(g.labels[:NUM_ALL], parts["ally"].argmax(1))
  assert np.flatnonzero(g.train_mask).tolist() == [0, 1, 2]
  assert np.flatnonzero(g.val_mask).tolist() == list(range(3, 503))
  assert sorted(np.flatnonzero(g.test_mask)) == sorted(test_ids)
  assert _undirected(g.senders, g.receivers) == {(0, 1), (0, 2), (2, 515),
                                                 (7, 515)}
  assert g.senders.dtype == g.receivers.dtype == np.int32


def test_planetoid_pads_skipped_test_ids_like_citeseer(tmp_path):
  rng = np.random.default_rng(1)
  test_ids = NUM_ALL + np.array([3, 0, 11, 1, 2, 4, 5, 6, 7, 9])  # 8, 10 gone
  parts = _write_planetoid(tmp_path, test_ids, rng)
  g = graphs.load_planetoid(str(tmp_path), "toy")
  assert len(g.features) == NUM_ALL + 12
  np.testing.assert_allclose(g.features[test_ids], _normalized(parts["tx"]),
                             rtol=1e-6)
  for isolated in (NUM_ALL + 8, NUM_ALL + 10):
    assert not g.features[isolated].any() and not g.test_mask[isolated]


def test_planetoid_accepts_old_module_paths(tmp_path):
  _write_planetoid(tmp_path, NUM_ALL + np.arange(NUM_TEST),
                   np.random.default_rng(2))
  path = tmp_path / "ind.toy.allx"  # as the 2016 files spell them
  data = path.read_bytes()
  for new, old in ((b"scipy.sparse._csr\n", b"scipy.sparse.csr\n"),
                   (b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")):
    assert new in data
    data = data.replace(new, old)
  path.write_bytes(data)
  assert graphs.load_planetoid(str(tmp_path), "toy").features.shape[0] == 520


class _Sneaky(collections.OrderedDict):
  pass


class _Payload:
  def __init__(self, target):
    self.target = target

  def __reduce__(self):
    return os.mkdir, (self.target,)


def test_planetoid_refuses_foreign_globals_and_runs_nothing(tmp_path):
  _write_planetoid(tmp_path, NUM_ALL + np.arange(NUM_TEST),
                   np.random.default_rng(3))
  marker = tmp_path / "pwned"
  graph_file = tmp_path / "ind.toy.graph"
  pickle.loads(pickle.dumps(_Payload(str(marker)), protocol=2))
  assert marker.is_dir()  # the payload is live with a plain unpickler
  marker.rmdir()
  payload = collections.defaultdict(list, {0: [1, _Payload(str(marker))]})
  _pickle(graph_file, payload)
  with pytest.raises(ValueError, match=r"refusing to unpickle .*mkdir from "
                     r".*ind\.toy\.graph.*only numpy/scipy/builtin"):
    graphs.load_planetoid(str(tmp_path), "toy")
  assert not marker.exists()
  _pickle(graph_file, _Sneaky({0: [1]}))
  with pytest.raises(ValueError, match=r"_Sneaky from .*ind\.toy\.graph"):
    graphs.load_planetoid(str(tmp_path), "toy")


def test_planetoid_broken_files_are_named(tmp_path):
  _write_planetoid(tmp_path, NUM_ALL + np.arange(NUM_TEST),
                   np.random.default_rng(4))
  allx = tmp_path / "ind.toy.allx"
  allx.write_bytes(allx.read_bytes()[:300])
  with pytest.raises(ValueError, match=r"cannot read .*ind\.toy\.allx.*"
                     r"truncated"):
    graphs.load_planetoid(str(tmp_path), "toy")
  allx.unlink()
  with pytest.raises(ValueError, match=r"ind\.toy\.allx"):
    graphs.load_planetoid(str(tmp_path), "toy")
  with pytest.raises(ValueError, match=r"ind\.nope\.x"):
    graphs.load_planetoid(str(tmp_path), "nope")


def _write_tu(folder, name="TOY"):
  """4 graphs of 3, 2, 4 and 1 nodes, labels -1/1, as TU files."""
  folder.mkdir(parents=True, exist_ok=True)
  edges = ["1, 2", "2, 1", "2, 3", "3, 2", "2, 3",  # one repeated line
           "4, 5",  # one direction only
           "6, 7", "7, 6", "8, 9", "9, 8", "6, 9", "9, 6"]
  files = {"A": edges, "graph_indicator": "1 1 1 2 2 3 3 3 3 4".split(),
           "graph_labels": ["1", "-1", "1", "-1"],
           "node_labels": "0 2 5 0 0 2 2 5 0 5".split(),
           "node_attributes": [f"{i}.5, {-i}.0" for i in range(10)]}
  for part, lines in files.items():
    (folder / f"{name}_{part}.txt").write_text("\n".join(lines) + "\n")


def test_tu_round_trip(tmp_path):
  _write_tu(tmp_path / "TOY")
  data = graphs.load_tu(str(tmp_path), "TOY")  # root is the parent folder
  assert data.labels.tolist() == [1, 0, 1, 0] and data.num_classes == 2
  assert [len(x) for x in data.node_features] == [3, 2, 4, 1]
  np.testing.assert_array_equal(  # one-hot of {0, 2, 5}, then attributes
      data.node_features[1], [[1, 0, 0, 3.5, -3], [1, 0, 0, 4.5, -4]])
  np.testing.assert_array_equal(data.node_features[2][:, :3],
                                [[0, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
  expected = [{(0, 1), (1, 2)}, {(0, 1)}, {(0, 1), (2, 3), (0, 3)}, set()]
  for s, r, pairs in zip(data.senders, data.receivers, expected):
    assert _undirected(s, r) == pairs
  same = graphs.load_tu(str(tmp_path / "TOY"), "TOY", node_attributes=False)
  assert same.node_features[0].shape == (3, 3)


@pytest.mark.parametrize("part, index, line, match", [
    ("A", 3, "3, x", r"TOY_A\.txt.*line 4 is not numeric: '3, x'"),
    ("A", 3, "1, 4", r"TOY_A\.txt.*joins nodes of different graphs"),
    ("A", 3, "1, 11", r"TOY_A\.txt.*outside \[0, 10\)"),
    ("graph_indicator", -1, "7", r"TOY_graph_indicator\.txt.*ids in 1\.\.4"),
    ("node_labels", -1, None, r"TOY_node_labels\.txt.*expected 10 lines"),
])
def test_tu_errors_name_the_file(tmp_path, part, index, line, match):
  _write_tu(tmp_path)
  path = tmp_path / f"TOY_{part}.txt"
  lines = path.read_text().splitlines()
  if line is None:
    del lines[index]
  else:
    lines[index] = line
  path.write_text("\n".join(lines) + "\n")
  with pytest.raises(ValueError, match=match):
    graphs.load_tu(str(tmp_path), "TOY")


def test_tu_missing_file_is_named(tmp_path):
  _write_tu(tmp_path)
  (tmp_path / "TOY_graph_labels.txt").unlink()
  with pytest.raises(ValueError, match=r"TOY_graph_labels\.txt.*not exist"):
    graphs.load_tu(str(tmp_path), "TOY")


def test_stratified_folds_cover_disjointly_and_stratify():
  sizes = np.array([37, 23, 10])
  labels = np.repeat([0, 1, 2], sizes)
  folds = graphs.stratified_folds(labels, num_folds=10, seed=3)
  tests = np.concatenate([test for _, test in folds])
  assert sorted(tests) == list(range(len(labels)))  # each index once
  for train, test in folds:
    assert set(train).isdisjoint(test) and len(train) + len(test) == 70
    counts = np.bincount(labels[test], minlength=3)  # each class split evenly
    assert ((counts == sizes // 10) | (counts == -(-sizes // 10))).all()
  again = graphs.stratified_folds(labels, num_folds=10, seed=3)
  assert all((a[1] == b[1]).all() for a, b in zip(folds, again))
  other = graphs.stratified_folds(labels, num_folds=10, seed=4)
  assert any((a[1] != b[1]).any() for a, b in zip(folds, other))
  with pytest.raises(ValueError, match="stratified_folds: need"):
    graphs.stratified_folds(labels, num_folds=1)


def _csv_gz(path, rows):
  path.parent.mkdir(parents=True, exist_ok=True)
  with gzip.open(path, "wt") as f:
    f.writelines(",".join(str(v) for v in np.atleast_1d(row)) + "\n"
                 for row in rows)


def test_ogb_node_csv(tmp_path):
  raw, features = tmp_path / "raw", np.arange(12.0).reshape(6, 2) / 4
  _csv_gz(raw / "edge.csv.gz", [(0, 1), (1, 2), (2, 1), (3, 3), (4, 5)])
  _csv_gz(raw / "node-feat.csv.gz", features)
  _csv_gz(raw / "node-label.csv.gz", [2, 0, 1, 1, 0, 2])
  _csv_gz(raw / "num-node-list.csv.gz", [6])
  for scheme in ("sales_ranking", "other"):
    for part, ids in (("train", [0, 1, 2]), ("valid", [3]), ("test", [4, 5])):
      _csv_gz(tmp_path / "split" / scheme / f"{part}.csv.gz",
              ids if scheme == "sales_ranking" else [5])
  g = graphs.load_ogb_node_csv(str(tmp_path))
  np.testing.assert_array_equal(g.features, features)
  assert g.labels.tolist() == [2, 0, 1, 1, 0, 2] and g.num_classes == 3
  assert _undirected(g.senders, g.receivers) == {(0, 1), (1, 2), (4, 5)}
  assert np.flatnonzero(g.train_mask).tolist() == [0, 1, 2]
  assert np.flatnonzero(g.val_mask).tolist() == [3]
  assert np.flatnonzero(g.test_mask).tolist() == [4, 5]
  os.rename(tmp_path / "split" / "sales_ranking", tmp_path / "split" / "x")
  with pytest.raises(ValueError, match=r"one split scheme under .*split"):
    graphs.load_ogb_node_csv(str(tmp_path))


def test_ogb_graph_csv_like_ppa(tmp_path):
  raw = tmp_path / "raw"
  _csv_gz(raw / "num-node-list.csv.gz", [3, 2, 4])
  _csv_gz(raw / "num-edge-list.csv.gz", [2, 1, 3])
  edges = [(0, 1), (2, 1), (1, 0), (0, 1), (3, 2)]  # local ids per graph
  _csv_gz(raw / "edge.csv.gz", edges + [(2, 2)])
  _csv_gz(raw / "edge-feat.csv.gz", [(i, 10 * i) for i in range(6)])
  _csv_gz(raw / "graph-label.csv.gz", [4, 0, 4])
  for part, ids in (("train", [0]), ("valid", [1]), ("test", [2])):
    _csv_gz(tmp_path / "split" / "species" / f"{part}.csv.gz", ids)
  data = graphs.load_ogb_graph_csv(str(tmp_path))
  assert [x.shape for x in data.node_features] == [(3, 1), (2, 1), (4, 1)]
  assert all((x == 1).all() for x in data.node_features)  # ppa: no features
  assert data.labels.tolist() == [1, 0, 1] and data.num_classes == 2
  expected = [{(0, 1), (1, 2)}, {(0, 1)}, {(0, 1), (2, 3)}]
  for s, r, pairs in zip(data.senders, data.receivers, expected):
    assert _undirected(s, r) == pairs
  s, r, f = data.senders[2], data.receivers[2], data.edge_features[2]
  assert {(a, b): tuple(v) for a, b, v in zip(s, r, f)} == {
      (0, 1): (3, 30), (1, 0): (3, 30), (2, 3): (4, 40), (3, 2): (4, 40)}
  assert data.splits["valid"].tolist() == [1]
  path = raw / "edge.csv.gz"
  path.write_bytes(path.read_bytes()[:-12])
  with pytest.raises(ValueError, match=r"edge\.csv\.gz.*truncated"):
    graphs.load_ogb_graph_csv(str(tmp_path))


def test_synthetic_shapes_are_seeded_and_normalised():
  points, labels = pc.synthetic_shapes(3, num_points=256, seed=5)
  assert points.shape == (15, 256, 3) and points.dtype == np.float32
  assert labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3 + [4] * 3
  np.testing.assert_allclose(points.mean(1), 0, atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(points, axis=-1).max(1), 1,
                             rtol=1e-6)
  again, _ = pc.synthetic_shapes(3, num_points=256, seed=5)
  np.testing.assert_array_equal(points, again)
  assert not np.allclose(points, pc.synthetic_shapes(3, 256, seed=6)[0])
  with pytest.raises(ValueError, match="synthetic_shapes.*'pyramid'"):
    pc.synthetic_shapes(1, classes=("sphere", "pyramid"))


def test_modelnet40_h5_round_trip(tmp_path):
  points, labels = pc.synthetic_shapes(4, num_points=2048, seed=0)
  points = points * 0.5 + 0.1  # off-centre: the loader re-normalises
  paths = pc.write_modelnet40_h5(str(tmp_path), points, labels, "test",
                                 per_file=7)
  assert [os.path.basename(p) for p in paths] == [
      "ply_data_test0.h5", "ply_data_test1.h5", "ply_data_test2.h5"]
  folder = tmp_path / pc.FOLDER
  assert (folder / "test_files.txt").read_text().splitlines()[0] == \
      "data/modelnet40_ply_hdf5_2048/ply_data_test0.h5"
  loaded, loaded_labels = pc.load_modelnet40_h5(str(tmp_path), "test")
  assert loaded.shape == (20, 1024, 3) and loaded_labels.dtype == np.int32
  np.testing.assert_array_equal(loaded_labels, labels)
  np.testing.assert_allclose(loaded, pc.normalize(points[:, :1024]),
                             atol=1e-6)
  (folder / "test_files.txt").unlink()  # falls back to the sorted glob
  np.testing.assert_array_equal(pc.load_modelnet40_h5(str(folder), "test")[1],
                                labels)
  with pytest.raises(ValueError, match="no train files"):
    pc.load_modelnet40_h5(str(tmp_path), "train")


def test_modelnet40_bad_h5_is_named(tmp_path):
  points, labels = pc.synthetic_shapes(1, num_points=1024, seed=0)
  path = pc.write_modelnet40_h5(str(tmp_path), points, labels, "train")[0]
  with open(path, "rb") as f:
    head = f.read(4096)
  with open(path, "wb") as f:
    f.write(head)
  with pytest.raises(ValueError, match=r"ply_data_train0\.h5.*truncated"):
    pc.load_modelnet40_h5(str(tmp_path), "train")
  with h5py.File(path, "w") as f:
    f.create_dataset("data", data=points)  # no 'label'
  with pytest.raises(ValueError, match=r"ply_data_train0\.h5"):
    pc.load_modelnet40_h5(str(tmp_path), "train")


def test_augment_scales_shifts_and_shuffles_each_cloud():
  points, _ = pc.synthetic_shapes(1, num_points=512, seed=1, classes=(
      "cube", "torus"))
  out = pc.augment_point_cloud(points, np.random.default_rng(7))
  assert out.shape == points.shape and out.dtype == np.float32
  for before, after in zip(points, out):
    assert not np.allclose(before, after)
    for axis in range(3):  # after = before * s + t, reordered
      lo, hi = before[:, axis].min(), before[:, axis].max()
      s = (after[:, axis].max() - after[:, axis].min()) / (hi - lo)
      t = after[:, axis].min() - s * lo
      assert 2 / 3 <= s <= 3 / 2 and -0.2 <= t <= 0.2
      np.testing.assert_allclose(np.sort(after[:, axis]),
                                 np.sort(before[:, axis]) * s + t, atol=1e-5)
  np.testing.assert_array_equal(
      out, pc.augment_point_cloud(points, np.random.default_rng(7)))
  with pytest.raises(ValueError, match="augment_point_cloud"):
    pc.augment_point_cloud(points, 7)
