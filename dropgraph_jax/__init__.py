"""dropgraph_jax: learned and structured regularizers for Flax models.

Pure functions of an explicit PRNG key and a static ``train`` flag::

    import dropgraph_jax as dg
    y = dg.drop_block(x, key=key, rate=0.1, block_size=7, train=True)

The package is layered; each layer imports only those before it:

- :mod:`dropgraph_jax.regularizers`: the transforms, rate schedules
  (``dg.schedules``) and the regularizer registry. Needs jax only.
- :mod:`dropgraph_jax.layers`: Linen wrappers.
- :mod:`dropgraph_jax.patterns`: AutoDropout pattern spaces and policies.
- :mod:`dropgraph_jax.models`: Flax models with named regularizer sites.
- :mod:`dropgraph_jax.data`, :mod:`dropgraph_jax.training`,
  :mod:`dropgraph_jax.search`, :mod:`dropgraph_jax.tools`: the training
  application (``pip install dropgraph_jax[train]``); never imported here.
"""

from dropgraph_jax import layers
from dropgraph_jax.regularizers import dropgraph as _dropgraph_module
from dropgraph_jax.regularizers import registry, schedules
from dropgraph_jax.regularizers.disout import disout
from dropgraph_jax.regularizers.drop_block import drop_block
from dropgraph_jax.regularizers.dropgraph import dropgraph, strip_graph_params
from dropgraph_jax.regularizers.dropout import (
                                                drop_path,
                                                dropout,
                                                spatial_dropout,
                                                variational_dropout,
                                                word_dropout,
)
from dropgraph_jax.regularizers.graph_signal import (
                                                graph_disout,
                                                graph_dropgraph,
                                                graph_dropout,
                                                graph_spatial_dropout,
)
from dropgraph_jax.regularizers.random_bits import per_shard_key

# The DropGraph module under its 0.1 name (init_params, param_shapes, ...);
# new code imports dropgraph_jax.regularizers.dropgraph.
partial_graph = _dropgraph_module

__version__ = "0.1.0"

__all__ = [
    "disout",
    "drop_block",
    "drop_path",
    "dropgraph",
    "dropout",
    "graph_disout",
    "graph_dropgraph",
    "graph_dropout",
    "graph_spatial_dropout",
    "layers",
    "partial_graph",
    "per_shard_key",
    "registry",
    "schedules",
    "spatial_dropout",
    "strip_graph_params",
    "variational_dropout",
    "word_dropout",
]
