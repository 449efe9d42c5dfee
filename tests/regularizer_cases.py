"""The regularizers under test, each with an input shape it accepts.

Shared by the generic contract tests (identity in eval, keys, jit, traces,
dtypes, sharding) so that every transform is held to the same contract.
"""

import functools

import jax

import dropgraph_jax as dg
from dropgraph_jax.regularizers import dropgraph as dropgraph_lib
from dropgraph_jax.regularizers import graph_signal, partial_reasoning


def _dropgraph(x, *, key, rate, train, **options):
  """DropGraph with graph weights made for ``x``'s shape (eagerly, so they
  are constants of a traced program, never ops in it)."""
  with jax.ensure_compile_time_eval():
    params = dropgraph_lib.init_params(jax.random.key(7), x.shape)
  return dg.dropgraph(x, params, key=key, rate=rate, train=train,
                      block_size=3, **options)


def _graph_dropgraph(x, *, key, rate, train, **options):
  """DropGraph on node features, graph weights made as in _dropgraph."""
  with jax.ensure_compile_time_eval():
    params = graph_signal.init_graph_params(jax.random.key(7), x.shape)
  return dg.graph_dropgraph(x, params, key=key, rate=rate, train=train,
                            **options)


def _partial_reasoning(x, *, key, rate, train, **options):
  """Eq. 4 in the registry's form, W made for ``x``'s channels."""
  with jax.ensure_compile_time_eval():
    params = partial_reasoning.init_params(jax.random.key(7), x.shape[-1])
  return partial_reasoning.partial_reasoning(x, params, key=key, rate=rate,
                                             train=train, **options)


# name -> (function with its method options bound, input shape)
CASES = {
    "dropout": (dg.dropout, (4, 6, 6, 8)),
    "spatial_dropout": (dg.spatial_dropout, (4, 6, 6, 8)),
    "drop_block": (functools.partial(dg.drop_block, block_size=3),
                   (4, 9, 11, 8)),
    "drop_block_shared": (functools.partial(dg.drop_block, block_size=(2, 4),
                                            share_channels=True),
                          (4, 9, 11, 8)),
    "disout": (functools.partial(dg.disout, block_size=3), (4, 9, 11, 8)),
    "drop_path": (dg.drop_path, (8, 5, 5, 4)),
    "variational_dropout": (dg.variational_dropout, (4, 12, 16)),
    "word_dropout": (dg.word_dropout, (4, 12, 16)),
    "dropgraph": (_dropgraph, (4, 9, 11, 8)),
    "partial_reasoning": (_partial_reasoning, (4, 9, 11, 8)),
    # Graph signals: (B, N, C), and one graph (N, C) (not for DropGraph:
    # the data-parallel test would shard a single graph's nodes, whose
    # vertex gather has no batch axis to shard; test_graph_regularizers
    # covers its (N, C) form).
    "graph_dropout": (dg.graph_dropout, (3, 20, 8)),
    "graph_dropout_nc": (dg.graph_dropout, (20, 8)),
    "graph_spatial_dropout": (dg.graph_spatial_dropout, (3, 20, 8)),
    "graph_disout": (dg.graph_disout, (3, 20, 8)),
    "graph_dropgraph": (_graph_dropgraph, (3, 20, 8)),
}

# Transforms that zero dropped units (Disout and DropGraph replace them
# with distortions).
ZEROING = [name for name in CASES
           if name not in ("disout", "dropgraph", "graph_disout",
                           "graph_dropgraph", "partial_reasoning")]
