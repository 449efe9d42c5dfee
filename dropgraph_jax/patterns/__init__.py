"""AutoDropout's pattern search spaces and reusable dropout policies.

* :mod:`.conv`: ConvNet patterns (tiled, rotated, sheared rectangles).
* :mod:`.transformer`: Transformer patterns (size, stride, share_t,
  share_c) for ``(N, T, C)`` sites.
* :mod:`.policy`: site -> pattern or regularizer maps, with JSON I/O.

``python -m dropgraph_jax.tools.show_policy POLICY.json --out DIR`` renders
what a policy does as PNGs.
"""

from dropgraph_jax.patterns.conv import ConvPattern, conv_pattern_dropout
from dropgraph_jax.patterns.policy import Policy, RegularizerSpec, apply_spec
from dropgraph_jax.patterns.transformer import (
                                           TRANSFORMER_SITES,
                                           TransformerPattern,
                                           transformer_pattern_dropout,
)

__all__ = [
    "ConvPattern",
    "Policy",
    "RegularizerSpec",
    "TRANSFORMER_SITES",
    "TransformerPattern",
    "apply_spec",
    "conv_pattern_dropout",
    "transformer_pattern_dropout",
]
