"""``python -m dropgraph_jax.search --config CONFIG --workdir DIR``.

Runs the AutoDropout search of the config (``search.method``), and with
``search.compare_random`` also random search with the same budget, in
``DIR/<method>/``. Each run writes ``jobs.jsonl`` (every child with its
policy and reward), ``updates.jsonl`` (controller updates),
``best_policy.json`` (loadable by any training config as
``--config.regularizer.name=policy --config.regularizer.policy_file=...``)
and ``best.json``. ``DIR/best_so_far.csv`` and ``.png`` hold the
best-so-far curves (the paper's Figure 5). A killed search restarted with
the same command continues where it stopped.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags
from ml_collections import config_flags

from dropgraph_jax.tools import catalog
from dropgraph_jax.training import distributed

# absl's --help prints this docstring: it lists the configs to run.
__doc__ += ("\nConfigs (--config PATH or PATH:VARIANT):\n" +
            catalog.configs_help('search') + "\n")
FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Search config file.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for the search's state.")
distributed.define_flags()
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  # Imported after absl parsed the flags and set the TF log level, as in
  # dropgraph_jax/main.py: TensorFlow reads it at import.
  from dropgraph_jax.search import run as run_lib
  from dropgraph_jax.training import checkpointing
  try:
    if distributed.initialize(FLAGS.coordinator_address,
                              FLAGS.num_processes, FLAGS.process_id):
      raise ValueError(
          "the search runs as one process: its controller is one small "
          "model, and its child trainings spread over the worker pool "
          "(search.backend='ray', search.num_workers); launch it without "
          "--num_processes / $JAX_NUM_PROCESSES.")
    summary = run_lib.run_search(FLAGS.config, FLAGS.workdir)
  except (ValueError, FloatingPointError,
          checkpointing.CorruptCheckpointError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(f"\n{'method':10s} {'jobs':>5s} {'failed':>6s} {'updates':>7s} "
        f"{'best reward':>11s}")
  for method, s in summary.items():
    print(f"{method:10s} {s['jobs']:5d} {s['failed']:6d} {s['updates']:7d} "
          f"{s['best_reward']:11.4f}")
  print(f"best policy: {summary[next(iter(summary))]['best_policy']}")


if __name__ == "__main__":
  app.run(main)
