"""The regularizer library: pure functions of a key and a static ``train``.

Modules, from the bottom up (each imports only those above it):

- :mod:`_validate`: argument checks shared by every transform.
- :mod:`random_bits`: the keyed counter hash behind every mask.
- :mod:`block_mask`: DropBlock-style block keep masks (packed bits).
- :mod:`dropout`: dropout, spatial, variational and word dropout, drop path.
- :mod:`drop_block`, :mod:`disout`, :mod:`dropgraph`: block regularizers.
- :mod:`graph_signal`: the same on node features ``(N, C)`` / ``(B, N, C)``
  (graphs and point clouds, DropGraph's Tables 4 and 5).
- :mod:`schedules`: rate ramps.
- :mod:`registry`: the one name -> function registry.

The functions themselves are re-exported at the top level
(``dropgraph_jax.drop_block`` ...); this package imports only its
submodules, so ``dropgraph_jax.regularizers.dropgraph`` is the module and
``dropgraph_jax.dropgraph`` the function.
"""

from dropgraph_jax.regularizers import (
                                        block_mask,
                                        disout,
                                        drop_block,
                                        dropgraph,
                                        dropout,
                                        random_bits,
                                        registry,
                                        schedules,
)

__all__ = ["block_mask", "disout", "drop_block", "dropgraph", "dropout",
           "random_bits", "registry", "schedules"]
