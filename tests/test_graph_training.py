"""The graph trainers end to end on small files in the real formats."""

import json

import numpy as np
import pytest
from test_graph_data import _write_planetoid, _write_tu

from configs import cora_gcn, modelnet40_dgcnn, proteins_gcn
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
def test_graph_classification_on_a_fold(tmp_path):
  _write_tu(tmp_path / "TOY")
  config = proteins_gcn.get_config("dropgraph")
  config.data_dir, config.dataset = str(tmp_path / "TOY"), "TOY"
  config.num_epochs, config.batch_size, config.num_folds = 3, 2, 2
  results = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert results["fold"] == 0 and results["policy_sites"] == 1
  assert 0 <= results["test_accuracy"] <= 1
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
