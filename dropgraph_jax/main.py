"""Entry point: ``python -m dropgraph_jax.main --config CONFIG --workdir DIR``.

Any config field can be overridden: ``--config.batch_size=256``. With
``config.compare_baseline`` the same run is repeated without a regularizer
(in ``DIR/baseline``) and both test accuracies are printed.
"""

from __future__ import annotations

import copy
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from dropgraph_jax.tools import catalog
from dropgraph_jax.training import distributed

# absl's --help prints this docstring: it lists the configs to run.
__doc__ += ("\nConfigs (--config PATH or PATH:VARIANT):\n" +
            catalog.configs_help('') + "\n")
FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")
distributed.define_flags()
flags.DEFINE_bool("info_logs", False, "Show absl / orbax INFO log lines "
                  "(hundreds per run; off by default).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  # TensorFlow only reads data here; its oneDNN kernels are never used, and
  # turning them off also drops their start-up banner.
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
  if not FLAGS.info_logs:  # orbax logs every checkpoint step at INFO
    logging.set_verbosity(logging.WARNING)
  import jax  # after absl parsed flags

  from dropgraph_jax.training import checkpointing
  from dropgraph_jax.training import trainers as train
  try:
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                           FLAGS.process_id)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  config = FLAGS.config
  runs = [(config, FLAGS.workdir)]
  if config.compare_baseline:
    baseline = copy.deepcopy(config)
    baseline.unlock()
    baseline.regularizer.name = "none"
    baseline.lock()
    runs.append((baseline, os.path.join(FLAGS.workdir, "baseline")))
  results = []
  for cfg, workdir in runs:
    try:
      results.append(train.train_and_evaluate(cfg, workdir))
    except (ValueError, checkpointing.CorruptCheckpointError,
            train.NonFiniteLoss) as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
  if jax.process_index() == 0:
    print(summary(results))
  logging.info("done")


# The two scores the closing table prints: those of the first row whose
# first key a run's results have (each trainer kind reports its own).
SUMMARY_SCORES = (("valid_perplexity", "test_perplexity"),  # language model
                  ("test_bleu", "test_perplexity"),  # translation
                  ("test_miou", "test_pixel_accuracy"),  # segmentation
                  ("test_accuracy", "test_loss"))  # classifiers


def summary(results) -> str:
  """One line per run: regularizer, sites, the kind's two scores, steps
  and wall time."""
  first, second = next(row for row in SUMMARY_SCORES
                       if row[0] in results[0])
  lines = [f"\n{'regularizer':20s} {'sites':>5s} {first:>18s} "
           f"{second:>19s} {'steps':>6s} {'wall s':>7s}"]
  for r in results:
    a, b = (f"{r[k]:.4f}" if k in r else "-" for k in (first, second))
    lines.append(f"{r['regularizer']:20s} {r['policy_sites']:5d} {a:>18s} "
                 f"{b:>19s} {r['steps']:6d} {r['wall_time_s']:7.1f}")
  return "\n".join(lines)


if __name__ == "__main__":
  app.run(main)
