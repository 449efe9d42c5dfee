"""The PyTorch side of ``bench_vs_pytorch.py`` (runs in its own environment).

Not imported by the project: ``bench_vs_pytorch.py`` starts it with the
Python of a separate environment that has

    python -m venv ENV && ENV/bin/pip install torch==2.14.1 torchvision==0.29.1 timm

(PyPI's torchvision fails beside the machine's torch 2.13.0 CPU build, so
the peers live apart from the project's environment), and talks to it in
JSON lines on stdin/stdout:

* ``{"op": "time", "row": NAME, "shape": [N, H, W, C], "rate": r,
  "block": b}`` -> ``{"seconds": t}``: one forward+backward (output and
  input gradient), timed after the first call of that row and shape;
* ``{"op": "memory", ...}`` -> ``{"peak_bytes": b}``: the peak of CPU
  bytes allocated during one forward+backward (``torch.profiler`` memory
  events, input and upstream gradient excluded);
* ``{"op": "stats", ...}`` -> ``{"dropped": f, "neighbour": p,
  "channels_agree": a}``: the dropped fraction, P(right neighbour dropped |
  dropped) and the fraction of units whose mask equals channel 0's, over
  draws;
* ``{"op": "floor", "shape": ..., "reuse": bool}`` -> ``{"seconds": t}``:
  ``x * s`` and ``g * s`` into fresh tensors or into preallocated ones;
* ``{"op": "versions"}``.

Tensors are NCHW, PyTorch's layout; shapes arrive as NHWC and are permuted.
"""

from __future__ import annotations

import json
import sys
import time

import timm
import torch
import torch.nn.functional as F
import torchvision
from timm.layers import DropBlock2d, DropPath
from torchvision.ops import drop_block2d, stochastic_depth


def rows(rate: float, block: int):
  # timm >= 1.0.20 shares one mask across channels by default
  # (couple_channels=True); torchvision's masks are per channel.
  timm_block = DropBlock2d(drop_prob=rate, block_size=block,
                           couple_channels=False)
  timm_block_shared = DropBlock2d(drop_prob=rate, block_size=block,
                                  couple_channels=True)
  timm_path = DropPath(drop_prob=rate)
  for module in (timm_block, timm_block_shared, timm_path):
    module.train()
  return {
      "drop_block torchvision": lambda x: drop_block2d(x, rate, block),
      "drop_block timm": timm_block,
      "drop_block_shared timm": timm_block_shared,
      "drop_path torchvision": lambda x: stochastic_depth(x, rate, "row"),
      "drop_path timm": timm_path,
      "spatial_dropout torch": lambda x: F.dropout2d(x, rate, True),
      "dropout torch": lambda x: F.dropout(x, rate, True),
      "floor x*s torch": lambda x: x * (1.0 / 0.9),
  }


_CACHE = {}


def _setup(req):
  n, h, w, c = req["shape"]
  key = (req["row"], tuple(req["shape"]), req["rate"], req["block"])
  if key not in _CACHE:
    x = torch.randn(n, c, h, w, requires_grad=True)
    g = torch.randn(n, c, h, w)
    fn = rows(req["rate"], req["block"])[req["row"]]
    _fwd_bwd(fn, x, g)  # warm-up
    _CACHE[key] = (fn, x, g)
  return _CACHE[key]


def _fwd_bwd(fn, x, g):
  x.grad = None
  y = fn(x)
  y.backward(g)
  return y


_FLOOR = {}


def _floor_seconds(req):
  """One ``x * s`` and one ``g * s`` (no autograd), into fresh outputs or,
  with ``"reuse": true``, into preallocated ``out=`` tensors."""
  n, h, w, c = req["shape"]
  key = tuple(req["shape"])
  if key not in _FLOOR:
    _FLOOR[key] = [torch.randn(n, c, h, w) for _ in range(4)]
  x, g, out_x, out_g = _FLOOR[key]
  start = time.perf_counter()
  if req.get("reuse"):
    torch.mul(x, 1.0 / 0.9, out=out_x)
    torch.mul(g, 1.0 / 0.9, out=out_g)
  else:
    _ = x * (1.0 / 0.9), g * (1.0 / 0.9)
  return time.perf_counter() - start


def handle(req):
  op = req["op"]
  if op == "versions":
    return {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "timm": timm.__version__, "threads": torch.get_num_threads()}
  if op == "floor":
    return {"seconds": _floor_seconds(req)}
  fn, x, g = _setup(req)
  if op == "time":
    start = time.perf_counter()
    _fwd_bwd(fn, x, g)
    return {"seconds": time.perf_counter() - start}
  if op == "memory":
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:
      _fwd_bwd(fn, x, g)
    events = sorted((e for e in prof.events() if e.cpu_memory_usage),
                    key=lambda e: e.time_range.start)
    level = peak = 0
    for e in events:
      level += e.cpu_memory_usage
      peak = max(peak, level)
    return {"peak_bytes": int(peak)}
  if op == "stats":
    dropped = pairs = both = same = 0.0
    with torch.no_grad():
      ones = torch.ones_like(x)
      for _ in range(req.get("draws", 20)):
        mask = (fn(ones) == 0).float()
        dropped += float(mask.mean())
        pairs += float(mask[..., :-1].sum())
        both += float((mask[..., :-1] * mask[..., 1:]).sum())
        same += float((mask == mask[:, :1]).float().mean())
    draws = req.get("draws", 20)
    return {"dropped": dropped / draws,
            "neighbour": both / pairs if pairs else 0.0,
            "channels_agree": same / draws}
  raise ValueError(f"unknown op {op!r}")


def main():
  torch.manual_seed(0)
  for line in sys.stdin:
    try:
      out = handle(json.loads(line))
    except Exception as e:  # report, keep serving
      out = {"error": f"{type(e).__name__}: {e}"}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
  main()
