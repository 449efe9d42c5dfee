"""DropGraph Table 5 (ogbn-products): Cluster-GCN with DropGraph between
every pair of GCN layers.

OGB's Cluster-GCN example settings: the graph cut into 15,000 METIS
clusters (``pip install -e ".[graphs]"`` for pymetis), 32 clusters a
batch, 3 GCN layers of 256 with batch norm, Adam lr 0.001, 50 epochs;
full-graph inference for the accuracies on the official sales-ranking
split. Regularizers at the sites between layers (``layer0``, ``layer1``),
rho 0.1, alpha 0.15.

OGB data cannot be downloaded here; with the raw folder (``raw/*.csv.gz``
and ``split/sales_ranking``):

    python -m dropgraph_jax.main --config configs/ogbn_products_clustergcn.py:dropgraph \\
        --workdir runs/products_dropgraph --config.data_dir=DIR/ogbn_products

Paper (Table 5, ogbn-products valid / test accuracy %): Cluster-GCN +
Dropout 92.1 / 79.0, + DropGraph 92.9 / 80.2 (no other rows reported).
"""

from configs import default

REGULARIZERS = ("none", "dropout", "spatial_dropout", "disout", "dropgraph")


def get_config(regularizer: str = "dropgraph"):
  if regularizer not in REGULARIZERS:
    raise ValueError(f"ogbn_products_clustergcn: regularizer must be one of "
                     f"{list(REGULARIZERS)}, got {regularizer!r}.")
  config = default.get_config()
  config.model = "cluster_gcn_ogbn_products"
  config.dataset = "ogbn-products"
  config.cluster_parts = 15000
  config.clusters_per_batch = 32
  config.num_epochs = 50
  config.learning_rate = 0.001
  config.regularizer.name = regularizer
  config.regularizer.rate = 0.1
  config.regularizer.alpha = 0.15
  config.regularizer.sites = r"layer\d"
  return config
