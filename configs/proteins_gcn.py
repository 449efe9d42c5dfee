"""DropGraph Table 5 (PROTEINS): a two-layer GCN graph classifier.

Two GCN layers of 64 units with ReLU, a mean + max readout and a linear
head; Adam lr 0.01 with L2 weight decay 5e-4, batches of 32 graphs, 100
epochs; stratified 10-fold cross-validation (``--config.fold=0..9``, folds
drawn with ``data_seed``), the test fold's accuracy at the last epoch.
The regularizer sits before the second GCN layer (site ``layer0``), rho
0.25, alpha 0.15, s 1. The paper gives no optimizer or readout for this
model; these are ours (the common TU-benchmark GCN setting).

    unzip ../shared/datasets/proteins_tu.zip -d /tmp/proteins
    python -m dropgraph_jax.main --config configs/proteins_gcn.py:dropgraph \\
        --workdir runs/proteins_dropgraph --config.data_dir=/tmp/proteins/PROTEINS

Paper (Table 5, PROTEINS accuracy %): none 81.5, dropout 80.8, spatial
dropout 81.6, Disout 81.7, DropGraph 82.1.
"""

from configs import default

REGULARIZERS = ("none", "dropout", "spatial_dropout", "disout", "dropgraph")


def get_config(regularizer: str = "dropgraph"):
  if regularizer not in REGULARIZERS:
    raise ValueError(f"proteins_gcn: regularizer must be one of "
                     f"{list(REGULARIZERS)}, got {regularizer!r}.")
  config = default.get_config()
  config.model = "gcn_graph_classifier"
  config.dataset = "PROTEINS"
  config.num_epochs = 100
  config.batch_size = 32
  config.learning_rate = 0.01
  config.weight_decay = 5e-4
  config.fold = 0
  config.num_folds = 10
  config.regularizer.name = regularizer
  config.regularizer.rate = 0.25
  config.regularizer.alpha = 0.15
  config.regularizer.sites = "layer0"
  return config
