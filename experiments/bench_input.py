"""Does the input pipeline keep up? Pipeline images/s vs train-step images/s.

    python -m experiments.bench_input --dataset digits --model resnet_digits \
        --batch 64 [--batches 200] [--out experiments/results/bench_input.md]
    python -m experiments.bench_input \
        --dataset folder:/path/to/cifar10 --model resnet50_cifar --batch 32

The pipeline is the trainer's (shuffle, augmentation, batching, threaded
prefetch; ``dropgraph_jax.data.images``), read alone for ``--batches``
batches after a warm-up; the train step is one compiled SGD step with no
regularizer on random data of the same shape (``bench_models.Runner``),
median of ``--repeats``. Both in one run, on the same machine.
"""

from __future__ import annotations

import argparse
import time

import bench_models  # experiments/bench_models.py
import grain
import jax
import numpy as np

from dropgraph_jax.data import images as image_data
from experiments import report


def pipeline_rate(dataset: str, batch: int, batches: int, threads: int,
                  prefetch: int) -> float:
  split = image_data.load_split(dataset, "train")
  ds = image_data.train_dataset(split, global_batch=batch, seed=0)
  it = iter(ds.to_iter_dataset(grain.ReadOptions(
      num_threads=threads, prefetch_buffer_size=prefetch)))
  for _ in range(5):
    next(it)  # warm-up: threads started, buffer filled
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  return batches * batch / (time.perf_counter() - start)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="digits")
  parser.add_argument("--model", default="resnet_digits")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--batches", type=int, default=200)
  parser.add_argument("--threads", type=int, default=8)
  parser.add_argument("--prefetch", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--out", default="")
  args = parser.parse_args(argv)
  rate = pipeline_rate(args.dataset, args.batch, args.batches, args.threads,
                       args.prefetch)
  runner = bench_models.Runner(args.model, "none", args.batch,
                               jax.numpy.float32, 3)
  step = float(np.median([runner.step(i) for i in range(1, args.repeats + 1)]))
  step_rate = args.batch / step
  lines = report.header(f"Input pipeline vs train step: {args.dataset}, "
                        f"{args.model}, batch {args.batch}") + [
      "| pipeline images/s | train step images/s | pipeline / step |",
      "|---|---|---|",
      f"| {rate:.0f} | {step_rate:.1f} | {rate / step_rate:.1f}x |"]
  report.emit(lines, args.out)


if __name__ == "__main__":
  main()
