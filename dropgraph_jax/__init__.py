"""dropgraph_jax: learned and structured regularizers for Flax models.

Pure functions of an explicit PRNG key and a static ``train`` flag::

    import dropgraph_jax as dg
    y = dg.drop_block(x, key=key, rate=0.1, block_size=7, train=True)

Linen wrappers live in :mod:`dropgraph_jax.layers`, rate schedules in
:mod:`dropgraph_jax.schedules`.
"""

from dropgraph_jax import layers
from dropgraph_jax import schedules
from dropgraph_jax.disout import disout
from dropgraph_jax.drop_block import drop_block
from dropgraph_jax import partial_graph
from dropgraph_jax.partial_graph import dropgraph, strip_graph_params
from dropgraph_jax.dropout import (dropout, drop_path, spatial_dropout,
                                   variational_dropout, word_dropout)

__version__ = "0.1.0"

__all__ = [
    "disout",
    "drop_block",
    "drop_path",
    "dropgraph",
    "dropout",
    "layers",
    "partial_graph",
    "schedules",
    "spatial_dropout",
    "strip_graph_params",
    "variational_dropout",
    "word_dropout",
]
