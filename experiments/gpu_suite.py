"""Every accelerator figure of the project in one command (issue 20).

    python -m experiments.gpu_suite                  # one GPU, about 9 min
    python -m experiments.gpu_suite --smoke          # every row, tiny, CPU

Sections, most important first; each row is appended to the Markdown and
JSON files as soon as it is measured, so a call cut off at its time limit
still leaves what it finished:

1. ``model``: a ResNet-50 training step (224 px, batch 256, bfloat16
   compute, SGD) with no regularizer and with drop_path, drop_block,
   disout, dropgraph and an AutoDropout policy at the papers' placement:
   step time, images/s, compiled peak memory. Each regularized step is
   timed interleaved with the plain one (alternating calls), so its ratio
   to ``none`` comes from one window of the machine's state. Goals: drop
   path <= 1.01x, DropBlock <= 1.05x, Disout <= 1.08x, DropGraph <= 1.10x
   none and <= 1.05x Disout; none >= 3,000 images/s on an H100.
2. ``op``: forward + backward of one activation at ResNet-50 shapes in
   bfloat16: ours, ``flax.linen.Dropout``, and the plain ``x * s`` floor.
3. ``rng``: a dropout mask from the fused counter hash (``rng='hash'``)
   against ``jax.random`` with threefry and rbg keys.
4. ``search``: AutoDropout children per hour on the CIFAR proxy
   (WRN-28-2, 32x32 images, random data of CIFAR's shape: only throughput
   is measured), sequential vs vmapped vs one program in turn.
5. ``eval``: the eval program of ResNet-50 with each regularizer is the
   same HLO as without one.
6. ``profile``: Disout's and DropGraph's costliest kernels vs ``none``.

Timings: medians over ``--repeats`` calls after a warm-up call, compile
excluded, ``block_until_ready`` on the results. Output:
``experiments/results/gpu_suite_<device>_<date>_jax<version>.{md,json}``
(``--out-dir`` to change the folder), each headed by the command.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
import tempfile
import time
import traceback
from typing import Callable, Dict

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image

import dropgraph_jax as dg
from dropgraph_jax.models import get_model, list_sites
from dropgraph_jax.models.resnet import paper_policy
from dropgraph_jax.models.sites import site_shapes
from dropgraph_jax.patterns import ConvPattern, Policy, RegularizerSpec
from dropgraph_jax.search import space as space_lib
from experiments import report
from experiments.bench_models import make_step

FULL = {"model": "resnet50", "image": 224, "batch": 256, "repeats": 20,
        "op_shapes": ((256, 28, 28, 512), (256, 14, 14, 1024)),
        "proxy_model": "wrn28_2", "proxy_images": 2560, "proxy_steps": 40,
        "children": 16, "block": 7, "search_sites": r"/bn\d$",
        "pattern": dict(height=3, width=3, stride_h=4, stride_w=4,
                        repeats_h=2, repeats_w=2, rotate=15.0, prob=0.1)}
SMOKE = {"model": "resnet_tiny", "image": 32, "batch": 4, "repeats": 2,
         "op_shapes": ((4, 8, 8, 16),), "proxy_model": "resnet_tiny",
         "proxy_images": 60, "proxy_steps": 2, "children": 2, "block": 3,
         # Two sites, not every batch norm: the smoke run checks that the
         # rows run; each site's pattern adds to the three compiles.
         "search_sites": r"^stage[12]/block0/bn1$",
         "pattern": dict(height=2, width=2, stride_h=2, stride_w=2,
                         rotate=15.0, prob=0.1)}
POLICIES = ("drop_path", "drop_block", "disout", "dropgraph", "autodropout")


def median_time(fn: Callable, repeats: int) -> float:
  jax.block_until_ready(fn())  # warm-up (compiled before)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def model_policy(name: str, sites, cfg) -> Policy:
  """The papers' placement of each row's regularizer on a ResNet."""
  if name == "none":
    return Policy({})
  if name == "drop_path":
    return Policy({s: RegularizerSpec("drop_path", {"rate": 0.1})
                   for s in sites if s.endswith("/shortcut")})
  if name == "autodropout":  # a pattern at every bn site of stages 3-4
    pattern = ConvPattern(**cfg["pattern"])
    return Policy({s: pattern for s in sites
                   if re.match(r"^stage[34]/block\d+/bn\d$", s)})
  options = {"rate": 0.1, "block_size": cfg["block"]}
  if name == "dropgraph":
    options["alpha"] = 0.2
  if name != "drop_block":
    options["clip_block_size"] = True
  return paper_policy(sites, RegularizerSpec(name, options))


class Step:
  """A compiled ResNet training step with its live state."""

  def __init__(self, cfg, policy_name: str):
    shape = (cfg["batch"], cfg["image"], cfg["image"], 3)
    sites = list_sites(get_model(cfg["model"]), shape)
    model = get_model(cfg["model"], dtype=jnp.bfloat16,
                      policy=model_policy(policy_name, sites, cfg))
    self.x = jax.random.normal(jax.random.key(0), shape)
    self.y = jnp.arange(cfg["batch"]) % 10
    variables = model.init({"params": jax.random.key(1)}, self.x[:1],
                           train=False)
    tx = optax.sgd(0.1, momentum=0.9)
    self.params = variables["params"]
    self.state = {"batch_stats": variables["batch_stats"]}
    self.opt = tx.init(self.params)
    self.fn = make_step(model, tx)
    compiled = self.fn.lower(self.params, self.opt, self.state, self.x,
                             self.y, jax.random.key(2)).compile()
    mem = compiled.memory_analysis()
    self.peak = None if mem is None else (
        mem.argument_size_in_bytes + mem.temp_size_in_bytes +
        mem.output_size_in_bytes - mem.alias_size_in_bytes)
    self.i = 0

  def __call__(self):
    self.i += 1
    self.params, self.opt, self.state, loss = self.fn(
        self.params, self.opt, self.state, self.x, self.y,
        jax.random.fold_in(jax.random.key(2), self.i))
    return loss


def paired_times(a: Step, b: Step, repeats: int):
  """Median step times of ``a`` and ``b`` called alternately."""
  jax.block_until_ready((a(), b()))
  ta, tb = [], []
  for _ in range(repeats):
    for step, out in ((a, ta), (b, tb)):
      start = time.perf_counter()
      jax.block_until_ready(step())
      out.append(time.perf_counter() - start)
  return float(np.median(ta)), float(np.median(tb))


def _model_columns(name, t, ratio, peak, batch) -> Dict[str, str]:
  return {"policy": name, "step ms": f"{t * 1e3:.1f}", "vs none": ratio,
          "images/s": f"{batch / t:.0f}",
          "compiled peak MiB": ("n/a" if peak is None else
                                f"{peak / 2**20:.0f}")}


def model_rows(cfg, rec: report.Recorder) -> None:
  cols = _model_columns
  base = Step(cfg, "none")
  t_none = median_time(base, cfg["repeats"])
  rec.row("model", cols("none", t_none, "1.000", base.peak, cfg["batch"]),
          policy="none", step_s=t_none, peak_bytes=base.peak)
  times = {"none": t_none}
  for name in POLICIES:
    step = Step(cfg, name)
    t_base, t = paired_times(base, step, cfg["repeats"])
    times[name] = t * t_none / t_base  # on the first none's scale
    rec.row("model", cols(name, t, f"{t / t_base:.3f}", step.peak,
                          cfg["batch"]),
            policy=name, step_s=t, none_step_s=t_base, ratio=t / t_base,
            peak_bytes=step.peak)
  if "disout" in times and "dropgraph" in times:
    rec.row("model", cols("dropgraph / disout", times["dropgraph"],
                          f"{times['dropgraph'] / times['disout']:.3f} "
                          "(vs disout)", None, cfg["batch"]),
            policy="dropgraph_vs_disout",
            ratio=times["dropgraph"] / times["disout"])


def _fwd_bwd(fn: Callable) -> Callable:
  """``x, g, key -> (f(x), vjp(g))``: both passes of one op, compiled."""
  def run(x, g, key):
    y, vjp = jax.vjp(lambda v: fn(v, key), x)
    return y, vjp(g)[0]
  return jax.jit(run)


def op_fns(shape, block: int) -> Dict[str, Callable]:
  plain = nn.Dropout(0.1, deterministic=False)
  params = dg.partial_graph.init_params(jax.random.key(1), shape)
  scale = jnp.bfloat16(1 / 0.9)
  return {
      "x * s (floor)": lambda x, k: x * scale,
      "flax.linen.Dropout": lambda x, k: plain.apply({}, x,
                                                     rngs={"dropout": k}),
      "dropout": lambda x, k: dg.dropout(x, key=k, rate=0.1, train=True),
      "spatial_dropout": lambda x, k: dg.spatial_dropout(
          x, key=k, rate=0.1, train=True),
      "drop_path": lambda x, k: dg.drop_path(x, key=k, rate=0.1,
                                             train=True),
      "drop_block": lambda x, k: dg.drop_block(
          x, key=k, rate=0.1, block_size=block, train=True),
      "disout": lambda x, k: dg.disout(x, key=k, rate=0.1, block_size=block,
                                       train=True),
      "dropgraph": lambda x, k: dg.dropgraph(
          x, params, key=k, rate=0.1, block_size=block, train=True),
  }


def op_rows(cfg, rec: report.Recorder) -> None:
  for shape in cfg["op_shapes"]:
    x = jax.random.normal(jax.random.key(0), shape, jnp.bfloat16)
    g = jnp.ones_like(x)
    key = jax.random.key(1)
    floor = None
    for name, fn in op_fns(shape, cfg["block"]).items():
      run = _fwd_bwd(fn)
      t = median_time(lambda run=run: run(x, g, key), cfg["repeats"])
      floor = floor or t
      rec.row("op", {"shape (bf16)": "x".join(map(str, shape)), "op": name,
                     "fwd+bwd ms": f"{t * 1e3:.2f}",
                     "vs x * s": f"{t / floor:.2f}"},
              shape=list(shape), op=name, seconds=t, ratio=t / floor)


def rng_rows(cfg, rec: report.Recorder) -> None:
  shape = cfg["op_shapes"][0]
  x = jax.random.normal(jax.random.key(0), shape, jnp.bfloat16)
  keys = {"hash (ours, default)": ("hash", jax.random.key(1)),
          "jax.random threefry": ("jax", jax.random.key(1, impl="threefry2x32")),
          "jax.random rbg": ("jax", jax.random.key(1, impl="rbg"))}
  base = None
  for name, (impl, key) in keys.items():
    run = jax.jit(lambda x, k, impl=impl: dg.dropout(
        x, key=k, rate=0.1, train=True, rng=impl))
    t = median_time(lambda run=run, key=key: run(x, key), cfg["repeats"])
    base = base or t
    rec.row("rng", {"dropout mask from": name, "forward ms": f"{t * 1e3:.2f}",
                    "vs hash": f"{t / base:.2f}"},
            generator=name, seconds=t, ratio=t / base)


def _fake_cifar(root: str, count: int) -> str:
  """``count`` random 32x32 JPEGs in ImageFolder layout (10 classes): the
  proxy's shape and pipeline without the dataset, for timing only."""
  rng = np.random.default_rng(0)
  for i in range(count):
    folder = os.path.join(root, "train", f"class{i % 10}")
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8)).save(
        os.path.join(folder, f"{i:05d}.jpg"))
  return root


def search_rows(cfg, rec: report.Recorder) -> None:
  # Imported here: the proxy needs the [train] extra (grain, TFDS, clu),
  # which an accelerator image may lack; the other sections need only the
  # core library.
  from dropgraph_jax.search import proxy as proxy_lib
  from dropgraph_jax.search import vmap_children
  with tempfile.TemporaryDirectory() as tmp:
    px = proxy_lib.ImageProxy({
        "dataset": f"folder:{_fake_cifar(tmp, cfg['proxy_images'])}",
        "model": cfg["proxy_model"], "steps": cfg["proxy_steps"],
        "batch_size": 32, "augment": "crop_flip", "seed": 0})
  space = space_lib.conv_space_for(site_shapes(
      get_model(cfg["proxy_model"]), (1, 32, 32, 3)), cfg["search_sites"])
  policies = [space.decode(space_lib.random_tokens(
      space, np.random.default_rng([0, i]))) for i in range(cfg["children"])]
  modes = {
      "sequential (a compile per child)": lambda: [px.train_one(p)
                                                   for p in policies],
      "vmapped, one group": lambda: vmap_children.train_children(
          px, policies, mode="vmap"),
      "one program, in turn": lambda: vmap_children.train_children(
          px, policies, mode="loop"),
  }
  base = None
  for name, fn in modes.items():
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    per_hour = 3600 * len(policies) / wall
    base = base or per_hour
    rec.row("search", {"mode": name, "children": str(len(policies)),
                       "steps each": str(cfg["proxy_steps"]),
                       "wall s (with compiles)": f"{wall:.1f}",
                       "children / hour": f"{per_hour:.0f}",
                       "vs sequential": f"{per_hour / base:.2f}x"},
            mode=name, children=len(policies), wall_s=wall,
            children_per_hour=per_hour)


def eval_rows(cfg, rec: report.Recorder) -> None:
  shape = (2, cfg["image"], cfg["image"], 3)
  sites = list_sites(get_model(cfg["model"]), shape)
  x = jnp.zeros(shape)

  def hlo(policy_name):
    model = get_model(cfg["model"], dtype=jnp.bfloat16,
                      policy=model_policy(policy_name, sites, cfg))
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x,
                                                  train=False))
    variables = {k: v for k, v in variables.items() if k != "sites"}
    text = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(
        variables, x).as_text()
    return text

  reference = hlo("none")
  for name in POLICIES:
    same = hlo(name) == reference
    rec.row("eval", {"policy": name, "eval HLO identical to none": str(same)},
            policy=name, identical=same)


def profile_rows(cfg, rec: report.Recorder) -> None:
  from experiments import profile_step  # here: that module imports this one
  profile_step.suite_rows(cfg, rec)


SECTIONS = {"model": model_rows, "op": op_rows, "rng": rng_rows,
            "search": search_rows, "eval": eval_rows,
            "profile": profile_rows}


def main(argv=None) -> str:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--smoke", action="store_true",
                      help="every row at tiny sizes (CPU, for the tests)")
  parser.add_argument("--sections", default=",".join(SECTIONS))
  parser.add_argument("--out-dir", default=os.path.join(report.ROOT,
                                                        "experiments",
                                                        "results"))
  args = parser.parse_args(argv)
  cfg = SMOKE if args.smoke else FULL
  device = re.sub(r"\W+", "_", jax.devices()[0].device_kind).strip("_")
  stem = os.path.join(args.out_dir, "gpu_suite_" + "_".join([
      device, datetime.date.today().isoformat(), "jax" + jax.__version__]) +
      ("_smoke" if args.smoke else ""))
  os.makedirs(args.out_dir, exist_ok=True)
  command_line = " ".join(["python -m experiments.gpu_suite",
                           *(sys.argv[1:] if argv is None else argv)])
  title = "Accelerator suite" + (" (smoke sizes)" if args.smoke else "")
  rec = report.Recorder(stem, title, command_line)
  for name in args.sections.split(","):
    if name not in SECTIONS:
      raise SystemExit(f"--sections: unknown section {name!r}; choose from "
                       f"{list(SECTIONS)}.")
    run_section(name, cfg, rec)
  return stem


def run_section(name: str, cfg, rec: report.Recorder) -> None:
  """One section; a failure is written as a row and the next one runs, so
  a one-shot accelerator lease still returns every section that works."""
  try:
    SECTIONS[name](cfg, rec)
  except Exception as e:  # pylint: disable=broad-except
    traceback.print_exc()
    rec.row(name, {"section": name, "failed": f"{type(e).__name__}: {e}"[:300]
                   .replace("|", "/").replace("\n", " ")},
            failed=f"{type(e).__name__}: {e}")


if __name__ == "__main__":
  main()
