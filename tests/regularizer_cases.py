"""The regularizers under test, each with an input shape it accepts.

Shared by the generic contract tests (identity in eval, keys, jit, traces,
dtypes, sharding) so that every transform is held to the same contract.
"""

import functools

import dropgraph_jax as dg

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
}

# Transforms that zero dropped units (Disout replaces them with noise).
ZEROING = [name for name in CASES if name != "disout"]
