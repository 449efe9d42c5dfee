"""AutoDropout's ConvNet dropout patterns (Pham & Le 2021, "Search Space for
Dropout Patterns in ConvNets") as a vectorised JAX mask generator.

A pattern is a contiguous ``height x width`` rectangle, tiled ``repeats_h x
repeats_w`` times with ``stride_h, stride_w`` between rectangle origins,
then rotated about the spatial centre and sheared; every cell inside it is
dropped. Kept cells are rescaled by Eq. 1 of the paper:

    Drop(h, m) = h * (Size(m) / Sum(m)) * m

Choices where the paper is silent (all documented, the open ones options):

* Position: the tiling's origin ``(o_y, o_x)`` is drawn uniformly over the
  map at every call (every training step), per example, and per channel
  unless ``share_c``. ``share_c=False`` thus means C independently placed
  copies of the same pattern.
* ``placement='wrap'`` (default): coordinates are taken modulo the map, so
  a pattern near an edge continues on the other side and the dropped area
  does not depend on the random position. ``'clip'``: what falls outside
  the map is lost (the dropped area then varies with the position).
* Geometry: the mask is computed by inverse mapping. For output cell p, the
  canonical coordinate is q = round(T^-1 (p - c) + c) - o, with c the map
  centre ((H-1)/2, (W-1)/2), T = Shear @ Rotation, Rotation by ``rotate``
  degrees (counter-clockwise on screen), and Shear = [[1, shear_x],
  [0, 1]] @ [[1, 0], [shear_y, 1]] acting on (x, y) (x' = x + shear_x y
  after y' = y + shear_y x). Rounding to the nearest integer is the paper's
  rule; inverse mapping means rotated and sheared masks have no holes.
* Tiling membership of q = (u, v) along one axis: 0 <= u < (repeats-1)
  stride + size and (u mod stride < size, or size >= stride); overlapping
  rectangles merge.
* ``residual`` does not change the mask; it tells a model whether to apply
  the pattern to the residual branch too (see :mod:`policy`).
* ``prob`` (our extension, default 1.0 = the paper): each placed pattern
  instance (per example, or per example and channel) is applied with this
  probability. It is what lets the space contain SpatialDropout: a
  full-map rectangle with ``share_c=False`` and ``prob=p`` drops whole
  channels with probability p.

Every field but ``placement`` may be a traced scalar, so one compiled
program can run children with different patterns (``jax.vmap`` over
patterns, :mod:`dropgraph_jax.search.vmap_children`). Traced fields are not
range-checked (the caller builds them from a validated space). A traced
``share_c`` gives a per-channel mask whose channels share one placement
when it is true; ``prob = 0`` disables the pattern (the keep mask is all
ones, so the output is ``x`` exactly). Placements are always drawn per
channel and channel 0's draw serves when ``share_c``, so the traced and
the static forms of a pattern drop exactly the same cells.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from dropgraph_jax.regularizers import _validate as v
from dropgraph_jax.regularizers import block_mask, random_bits

PLACEMENTS = ("wrap", "clip")


@dataclasses.dataclass(frozen=True)
class ConvPattern:
  """One ConvNet dropout pattern; see the module docstring."""
  height: int = 1
  width: int = 1
  stride_h: int = 1
  stride_w: int = 1
  repeats_h: int = 1
  repeats_w: int = 1
  rotate: float = 0.0
  shear_x: float = 0.0
  shear_y: float = 0.0
  share_c: bool = True
  residual: bool = False
  placement: str = "wrap"
  prob: float = 1.0

  kind = "conv_pattern"

  def traced(self) -> bool:
    """Whether any field is a JAX array (e.g. a tracer under ``vmap``)."""
    return any(isinstance(getattr(self, f.name), jax.Array)
               for f in dataclasses.fields(self))

  def validate(self, where: str = "ConvPattern") -> "ConvPattern":
    for name in ("height", "width", "stride_h", "stride_w", "repeats_h",
                 "repeats_w"):
      value = getattr(self, name)
      if isinstance(value, jax.Array):
        continue
      if not isinstance(value, (int, np.integer)) or isinstance(
          value, bool) or value < 1:
        raise ValueError(f"{where}: {name} must be an int >= 1, got "
                         f"{value!r}.")
    for name in ("rotate", "shear_x", "shear_y"):
      value = getattr(self, name)
      if isinstance(value, jax.Array):
        continue
      if not isinstance(value, (int, float, np.number)) or isinstance(
          value, bool) or not np.isfinite(value):
        raise ValueError(f"{where}: {name} must be a finite number, got "
                         f"{value!r}.")
    for name in ("share_c", "residual"):
      if not isinstance(getattr(self, name), (bool, np.bool_, jax.Array)):
        raise ValueError(f"{where}: {name} must be a bool, got "
                         f"{getattr(self, name)!r}.")
    v.check_choice(where, "placement", self.placement, PLACEMENTS)
    if not isinstance(self.prob, jax.Array):
      v.check_rate(where, self.prob, name="prob", upper_inclusive=True)
    return self

  def extent(self):
    """(rows, cols) spanned by the untransformed tiling."""
    return ((self.repeats_h - 1) * self.stride_h + self.height,
            (self.repeats_w - 1) * self.stride_w + self.width)

  def check_fits(self, height: int, width: int, where: str) -> None:
    """Sizes larger than the map are an error (the pattern would be cut).
    Traced patterns are not checked."""
    if self.traced():
      return
    if self.height > height or self.width > width:
      raise ValueError(
          f"{where}: pattern rectangle {self.height}x{self.width} is larger "
          f"than the feature map {height}x{width}.")
    rows, cols = self.extent()
    if rows > height or cols > width:
      raise ValueError(
          f"{where}: tiled pattern spans {rows}x{cols} (repeats x stride), "
          f"larger than the feature map {height}x{width}.")

  def scaled(self, factor: float) -> "ConvPattern":
    """Sizes and strides scaled by ``factor`` (rounded, at least 1).

    How AutoDropout transfers a pattern found at one resolution to a larger
    input (EfficientNet-B3/B5/B7): "we proportionally scale up the sizes and
    strides of the masks".
    """
    def s(value):
      return max(1, int(round(value * factor)))
    return dataclasses.replace(self, height=s(self.height),
                               width=s(self.width),
                               stride_h=s(self.stride_h),
                               stride_w=s(self.stride_w))


def _canonical_coords(pattern: ConvPattern, height: int, width: int):
  """q0 = round(T^-1 (p - c) + c) for every map cell p: two int32 (H, W)."""
  y, x = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                      jnp.arange(width, dtype=jnp.float32), indexing="ij")
  cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
  theta = jnp.deg2rad(jnp.asarray(pattern.rotate, jnp.float32))
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  sx = jnp.asarray(pattern.shear_x, jnp.float32)
  sy = jnp.asarray(pattern.shear_y, jnp.float32)
  # Forward T on (x, y): rotation, then shear_y (y += sy x), then shear_x.
  # Inverse, applied to the centred output coordinate:
  dx, dy = x - cx, y - cy
  dx = dx - sx * dy                      # undo x' = x + sx * y
  dy = dy - sy * dx                      # undo y' = y + sy * x
  # Rotation by theta: screen counter-clockwise with y pointing down.
  rx = cos * dx - sin * dy
  ry = sin * dx + cos * dy
  return (jnp.round(ry + cy).astype(jnp.int32),
          jnp.round(rx + cx).astype(jnp.int32))


def _in_tiling(u, size, stride, repeats):
  extent = (repeats - 1) * stride + size
  on_rect = (jnp.mod(u, stride) < size) | (size >= stride)
  return (u >= 0) & (u < extent) & on_rect


def dropped_cells(pattern: ConvPattern, height: int, width: int, offset_y,
                  offset_x) -> jax.Array:
  """Bool map of the cells the pattern drops when its tiling is at the offset.

  The (H, W) grid gets a trailing axis, ``(H, W, 1)``, so scalar offsets give
  ``(H, W, 1)`` and offsets of shape ``(N, 1, 1, M)`` give ``(N, H, W, M)``.
  """
  qy, qx = _canonical_coords(pattern, height, width)
  # Integer arithmetic throughout: mod by the static map size is cheap.
  u = qy[:, :, None] - jnp.asarray(offset_y, jnp.int32)
  vv = qx[:, :, None] - jnp.asarray(offset_x, jnp.int32)
  if pattern.placement == "wrap":
    u, vv = jnp.mod(u, height), jnp.mod(vv, width)
  return (_in_tiling(u, pattern.height, pattern.stride_h, pattern.repeats_h) &
          _in_tiling(vv, pattern.width, pattern.stride_w, pattern.repeats_w))


def pattern_keep_mask(key: jax.Array, shape, pattern: ConvPattern,
                      rng: str = "hash") -> jax.Array:
  """Bool keep mask, ``(N, H, W, 1)`` if ``share_c`` is True, else
  ``(N, H, W, C)`` (also for a traced ``share_c``)."""
  n, h, w, c = shape
  # Per-channel draws always; channel 0's serves every channel when
  # share_c, so static and traced share_c drop the same cells.
  draws = random_bits.bits(key, (3, n, 1, 1, c), rng)
  if isinstance(pattern.share_c, jax.Array):
    draws = jnp.where(pattern.share_c, draws[..., :1], draws)
  elif pattern.share_c:
    draws = draws[..., :1]
  offset_y = (draws[0] % jnp.uint32(h)).astype(jnp.int32)
  offset_x = (draws[1] % jnp.uint32(w)).astype(jnp.int32)
  dropped = dropped_cells(pattern, h, w, offset_y, offset_x)
  if not (isinstance(pattern.prob, (int, float)) and pattern.prob == 1.0):
    threshold = jnp.round(jnp.asarray(pattern.prob, jnp.float32) * 2.0**24)
    dropped = dropped & ((draws[2] >> 8) < threshold.astype(jnp.uint32))
  return ~dropped


def conv_pattern_dropout(x: jax.Array, *, key: Optional[jax.Array],
                         pattern: ConvPattern, train: bool,
                         normalize: str = "batch", rng: str = "hash"
                         ) -> jax.Array:
  """Applies a ConvNet dropout pattern to NHWC ``x`` (Eq. 1 rescaling).

  Args:
    x: ``(N, H, W, C)`` floating array.
    key: PRNG key; only read when ``train``.
    pattern: the :class:`ConvPattern`.
    train: static bool; ``False`` returns ``x``.
    normalize: ``'batch'`` (Eq. 1: Size(m)/Sum(m) over the whole mask) or
      ``'example'``.
    rng: ``'hash'`` or ``'jax'``.
  """
  fn = "conv_pattern_dropout"
  train = v.check_train(fn, train)
  v.check_floating(fn, x)
  v.check_rank(fn, x, (4,), "NHWC")
  v.check_choice(fn, "normalize", normalize, block_mask.NORMALIZE_MODES)
  if not isinstance(pattern, ConvPattern):
    raise ValueError(f"{fn}: pattern must be a ConvPattern, got "
                     f"{type(pattern).__name__}.")
  pattern.validate(fn)
  pattern.check_fits(x.shape[1], x.shape[2], fn)
  if not train:
    return x
  v.check_key(fn, key)
  keep = pattern_keep_mask(key, x.shape, pattern, rng)
  return block_mask.apply_rescaled(x, keep, normalize)
