"""DropGraph Table 4: DGCNN on ModelNet40 (1,024 points), the reference's
recipe (WangYueFt/dgcnn): SGD momentum 0.9, lr 0.1 annealed to 0 by a
cosine, weight decay 1e-4, batch 32, 250 epochs, k = 20, random scale,
translation and point order in training. The regularizers follow every
EdgeConv (sites ``edgeconv0..3``), rho 0.1, alpha 0.15, s 1.

ModelNet40 cannot be downloaded here; with the files
(``modelnet40_ply_hdf5_2048/*.h5``):

    python -m dropgraph_jax.main --config configs/modelnet40_dgcnn.py:dropgraph \\
        --workdir runs/mn40_dropgraph --config.data_dir=DIR/modelnet40_ply_hdf5_2048

Without them, ``:dropgraph,synthetic`` trains the small DGCNN on clouds of
primitive shapes the code samples (5 classes, 64 training and 16 test
clouds each, 256 points), written as ModelNet40 HDF5 files and read back
through the same reader, as a check that the whole pipeline learns:

    python -m dropgraph_jax.main --config configs/modelnet40_dgcnn.py:dropgraph,synthetic \\
        --workdir runs/shapes_dropgraph

Paper (Table 4, ModelNet40 overall accuracy %): DGCNN 92.6, + Disout 93.0,
+ DropGraph 93.2.
"""

from configs import default

REGULARIZERS = ("none", "dropout", "spatial_dropout", "disout", "dropgraph")


def get_config(arg: str = "dropgraph"):
  regularizer, _, data = arg.partition(",")
  if regularizer not in REGULARIZERS or data not in ("", "synthetic"):
    raise ValueError(f"modelnet40_dgcnn: pass REGULARIZER[,synthetic] with "
                     f"REGULARIZER one of {list(REGULARIZERS)}, got "
                     f"{arg!r}.")
  config = default.get_config()
  config.model = "dgcnn"
  config.dataset = "modelnet40"
  config.num_points = 1024
  config.synthetic_per_class = 0
  config.num_epochs = 250
  config.batch_size = 32
  config.learning_rate = 0.1
  config.weight_decay = 1e-4
  config.log_every_steps = 100
  config.regularizer.name = regularizer
  config.regularizer.rate = 0.1
  config.regularizer.alpha = 0.15
  config.regularizer.sites = r"edgeconv\d"
  if data == "synthetic":
    config.model = "dgcnn_small"
    config.dataset = "synthetic_shapes"
    config.num_points = 256
    config.synthetic_per_class = 64
    config.num_epochs = 20
    config.batch_size = 16
    config.log_every_steps = 10
  return config
