"""AutoDropout's policy search: controller, asynchronous REINFORCE, workers.

* :mod:`.space`: token sequences <-> policies (ConvNet and Transformer).
* :mod:`.controller`: the Transformer controller (sample, log-prob).
* :mod:`.reinforce`: the importance-weighted REINFORCE estimator.
* :mod:`.workers`: inline, local-process and Ray worker pools.
* :mod:`.proxy`: the child tasks that turn a policy into a reward.
* :mod:`.engine`: the two queues, updates, faults, checkpoints, logs.

Run: ``python -m dropgraph_jax.search --config configs/search/digits.py
--workdir DIR``.
"""
