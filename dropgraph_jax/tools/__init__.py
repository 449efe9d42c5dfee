"""Command-line tools: ``python -m dropgraph_jax.tools.demo`` (every
regularizer on one digits batch) and ``python -m
dropgraph_jax.tools.show_policy POLICY.json --out DIR`` (renders a policy).
"""
