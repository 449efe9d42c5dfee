"""The graph trainers end to end on small files in the real formats."""

import json
import pathlib
import tempfile

import chex
import numpy as np
import pytest
from test_graph_data import _csv_gz, _write_planetoid, _write_tu

from configs import (
  cora_gcn,
  modelnet40_dgcnn,
  ogbg_ppa_gcn,
  ogbn_products_clustergcn,
  proteins_gcn,
)
from dropgraph_jax.models import get_model, list_sites
from dropgraph_jax.models.gcn import normalized_graph, propagate
from dropgraph_jax.training import graphs
from dropgraph_jax.training import trainers as train


def test_propagate_is_the_normalised_adjacency_product():
  senders, receivers = np.array([0, 1, 1, 2]), np.array([1, 0, 2, 1])
  graph = normalized_graph(senders, receivers, 3)
  a = np.eye(3)
  a[senders, receivers] = 1
  d = a.sum(1)
  want = a / np.sqrt(d[:, None] * d[None, :])
  h = np.arange(6, dtype=np.float32).reshape(3, 2)
  np.testing.assert_allclose(propagate(h, graph), want @ h, rtol=1e-6)
  with pytest.raises(ValueError, match="edge indices"):
    normalized_graph(np.array([0]), np.array([3]), 3)


@pytest.mark.slow
@pytest.mark.parametrize("regularizer", cora_gcn.REGULARIZERS)
def test_node_classification_writes_results(tmp_path, regularizer):
  _write_planetoid(tmp_path, list(range(510, 520)), np.random.default_rng(0))
  config = cora_gcn.get_config(regularizer)
  config.data_dir, config.dataset, config.num_epochs = str(tmp_path), "toy", 5
  results = train.train_and_evaluate(config, str(tmp_path / "run"))
  saved = json.loads((tmp_path / "run" / "results.json").read_text())
  assert saved["test_accuracy"] == results["test_accuracy"]
  assert 0 <= results["train_eval_accuracy"] <= 1
  assert results["policy_sites"] == (regularizer != "none")


@pytest.mark.slow
def test_node_classification_resumes_to_the_same_end(tmp_path):
  _write_planetoid(tmp_path, list(range(510, 520)), np.random.default_rng(0))
  config = cora_gcn.get_config("dropgraph")
  config.data_dir, config.dataset, config.num_epochs = str(tmp_path), "toy", 9
  config.checkpoint_every_steps, config.async_checkpointing = 4, False
  straight = train.train_and_evaluate(config, str(tmp_path / "a"))
  config.preempt_at_step = 6  # after epoch 6; the checkpoint is at 4
  with pytest.raises(train.Preempted):
    train.train_and_evaluate(config, str(tmp_path / "b"))
  config.preempt_at_step = 0
  resumed = train.train_and_evaluate(config, str(tmp_path / "b"))
  for key in ("test_accuracy", "val_accuracy", "best_val_test_accuracy"):
    assert resumed[key] == straight[key]
  rows = [json.loads(r) for r in
          (tmp_path / "b" / "log.txt").read_text().splitlines()]
  assert [r["step"] for r in rows] == sorted({r["step"] for r in rows})


@pytest.mark.slow
def test_graph_classification_on_a_fold(tmp_path):
  _write_tu(tmp_path / "TOY")
  config = proteins_gcn.get_config("dropgraph")
  config.data_dir, config.dataset = str(tmp_path / "TOY"), "TOY"
  config.num_epochs, config.batch_size, config.num_folds = 6, 2, 2
  config.checkpoint_every_steps, config.async_checkpointing = 2, False
  results = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert results["fold"] == 0 and results["policy_sites"] == 1
  assert 0 <= results["test_accuracy"] <= 1
  assert results["steps"] > 3
  # Killed after step 3 (checkpoint at 2), restarted: the same end.
  killed = str(tmp_path / "killed")
  config.preempt_at_step = 3
  with pytest.raises(train.Preempted):
    train.train_and_evaluate(config, killed)
  config.preempt_at_step = 0
  resumed = train.train_and_evaluate(config, killed)
  chex.assert_trees_all_equal(results["state"].params,
                              resumed["state"].params)
  assert resumed["test_accuracy"] == results["test_accuracy"]
  config.fold = 2
  with pytest.raises(ValueError, match="config.fold must be in"):
    train.train_and_evaluate(config, str(tmp_path / "run2"))


def test_graph_sites_and_bad_regularizer_names():
  model = get_model("gcn", num_classes=3)
  graph = normalized_graph(np.array([0, 1]), np.array([1, 0]), 4)
  sites = list_sites(model, (4, 5), graph=graph)
  assert sites == ["hidden"]
  config = cora_gcn.get_config("dropgraph")
  policy = graphs.build_policy(config, sites)
  assert policy.sites["hidden"].kind == "graph_dropgraph"
  config.regularizer.sites = "nowhere"
  with pytest.raises(ValueError, match="matches none"):
    graphs.build_policy(config, sites)
  config.regularizer.name = "drop_block"
  with pytest.raises(ValueError, match="for graph models"):
    graphs.build_policy(config, sites)


@pytest.mark.slow
def test_dgcnn_on_synthetic_shapes(tmp_path):
  config = modelnet40_dgcnn.get_config("dropgraph,synthetic")
  config.synthetic_per_class, config.num_points, config.num_epochs = 8, 64, 1
  config.batch_size = 8
  results = train.train_and_evaluate(config, str(tmp_path))
  assert results["policy_sites"] == 4
  assert 0 <= results["test_accuracy"] <= 1
  assert (tmp_path / "results.json").exists()


def _ogb_products_like(root, rng, nodes=60, feats=5, classes=3):
  """A random graph of ``nodes`` nodes in OGB's raw node-task layout."""
  s = rng.integers(0, nodes, 150)
  r = (s + rng.integers(1, nodes, 150)) % nodes
  _csv_gz(root / "raw" / "edge.csv.gz", list(zip(s, r)))
  _csv_gz(root / "raw" / "node-feat.csv.gz", rng.random((nodes, feats)))
  _csv_gz(root / "raw" / "node-label.csv.gz",
          rng.integers(0, classes, nodes))
  _csv_gz(root / "raw" / "num-node-list.csv.gz", [nodes])
  order = rng.permutation(nodes)
  for part, ids in (("train", order[:30]), ("valid", order[30:40]),
                    ("test", order[40:])):
    _csv_gz(root / "split" / "sales_ranking" / f"{part}.csv.gz", ids)


@pytest.mark.slow
def test_cluster_gcn_on_an_ogb_layout_graph(tmp_path):
  pytest.importorskip("pymetis")  # the [graphs] extra
  _ogb_products_like(tmp_path, np.random.default_rng(0))
  config = ogbn_products_clustergcn.get_config("dropgraph")
  config.data_dir, config.num_epochs = str(tmp_path), 2
  config.cluster_parts, config.clusters_per_batch = 6, 2
  config.model_kwargs.hidden = 8
  config.checkpoint_every_steps, config.async_checkpointing = 2, False
  results = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert results["policy_sites"] == 2 and results["steps"] == 6
  assert 0 <= results["test_accuracy"] <= 1
  # Killed after step 3 (checkpoint at 2), restarted: the same end.
  config.preempt_at_step = 3
  with pytest.raises(train.Preempted):
    train.train_and_evaluate(config, str(tmp_path / "killed"))
  config.preempt_at_step = 0
  resumed = train.train_and_evaluate(config, str(tmp_path / "killed"))
  chex.assert_trees_all_equal(results["state"].params,
                              resumed["state"].params)


def test_metis_clusters_and_induced_batches():
  pytest.importorskip("pymetis")
  from dropgraph_jax.data import graph_partition
  from dropgraph_jax.data import graphs as graph_data
  root = pathlib.Path(tempfile.mkdtemp())
  _ogb_products_like(root, np.random.default_rng(1))
  data = graph_data.load_ogb_node_csv(str(root))
  parts = graph_partition.metis_parts(data.senders, data.receivers, 60, 4)
  assert sorted(set(parts.tolist())) == [0, 1, 2, 3]
  budget = graph_partition.batch_budget(parts, data.senders, 2)
  batches = list(graph_partition.cluster_batches(
      data, parts, 2, np.random.default_rng(0), budget))
  assert len(batches) == 2
  assert sum(int((b["senders"] != b["senders"][-1]).sum())
             for b in batches) <= len(data.senders)
  for b in batches:  # every kept edge joins two nodes of the batch
    real = b["senders"] != budget[0] - 1
    assert (b["senders"][real] < budget[0] - 1).all()
  with pytest.raises(ValueError, match="num_parts must be in"):
    graph_partition.metis_parts(data.senders, data.receivers, 60, 0)


@pytest.mark.slow
def test_ogbg_ppa_config_trains_on_an_ogb_graph_layout(tmp_path):
  rng = np.random.default_rng(0)
  raw = tmp_path / "raw"
  sizes = rng.integers(3, 7, 12)
  _csv_gz(raw / "num-node-list.csv.gz", sizes)
  edges = [(i, i + 1) for n in sizes for i in range(n - 1)]
  _csv_gz(raw / "num-edge-list.csv.gz", sizes - 1)
  _csv_gz(raw / "edge.csv.gz", edges)
  _csv_gz(raw / "graph-label.csv.gz", rng.integers(0, 3, 12))
  for part, ids in (("train", range(8)), ("valid", [8, 9]),
                    ("test", [10, 11])):
    _csv_gz(tmp_path / "split" / "species" / f"{part}.csv.gz", list(ids))
  config = ogbg_ppa_gcn.get_config("dropgraph")
  config.data_dir, config.num_epochs, config.batch_size = str(tmp_path), 2, 4
  config.model_kwargs.hidden = 8
  results = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert results["policy_sites"] == 4
  assert 0 <= results["test_accuracy"] <= 1
