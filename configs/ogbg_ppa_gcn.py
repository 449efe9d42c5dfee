"""DropGraph Table 5 (ogbg-ppa): OGB's GCN with DropGraph between every
pair of GCN layers.

OGB's graph-property example: 5 GCN layers of 300 with batch norm and
ReLU, a mean readout, Adam lr 0.001, batches of 32 graphs, 100 epochs,
the official species split; test accuracy. Regularizers at ``layer0`` ..
``layer3``, rho 0.1, alpha 0.15. ogbg-ppa has no node features; its
reader gives every node the same constant feature (the reference embeds
one index).

OGB data cannot be downloaded here; with the raw folder:

    python -m dropgraph_jax.main --config configs/ogbg_ppa_gcn.py:dropgraph \\
        --workdir runs/ppa_dropgraph --config.data_dir=DIR/ogbg_ppa

Paper (Table 5, ogbg-ppa valid / test accuracy %): GCN + Dropout 65.0 /
68.4, + DropGraph 69.9 / 73.2 (no other rows reported).
"""

from configs import default

REGULARIZERS = ("none", "dropout", "spatial_dropout", "disout", "dropgraph")


def get_config(regularizer: str = "dropgraph"):
  if regularizer not in REGULARIZERS:
    raise ValueError(f"ogbg_ppa_gcn: regularizer must be one of "
                     f"{list(REGULARIZERS)}, got {regularizer!r}.")
  config = default.get_config()
  config.model = "gcn_ogbg_ppa"
  config.dataset = "ogbg-ppa"
  config.num_epochs = 100
  config.batch_size = 32
  config.learning_rate = 0.001
  config.weight_decay = 0.0
  config.regularizer.name = regularizer
  config.regularizer.rate = 0.1
  config.regularizer.alpha = 0.15
  config.regularizer.sites = r"layer\d"
  return config
