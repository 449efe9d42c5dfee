"""Checkpoints: the one module that talks to orbax.

A checkpoint holds three items: the train state (params, batch statistics,
optimizer state, step; restored with the shardings of a freshly built
state), the input iterator's position (a small JSON dict), so that a
resumed run continues with exactly the batches an uninterrupted run would
see, and an integrity record (JSON): a checksum of every state array, a
SHA-256 of the position and the run's resolved config. Saving goes through
``orbax.checkpoint.CheckpointManager`` (every N steps, keep K,
asynchronous); everything else in the project calls the functions here,
so moving to orbax's V1 API touches this file only.

Restoring checks, in order: orbax can read every item; each array's
checksum equals the saved one (so a flipped bit or garbled bytes that
still decode are caught); every floating-point value is finite; the
position's hash matches; the caller's ``set_data`` accepts the position.
Any failure raises ``CorruptCheckpointError`` in one or two lines naming
the checkpoint, the check or file, and the way out; a checkpoint that
fails is never overwritten and the run stops.

The checksum (written by hand: orbax and TensorStore keep none of the
saved values): each array's bits as 32-bit words ``w_i`` give two sums
``sum(w_i * a_i) mod 2**32`` with odd multipliers ``a_i`` that depend on
the position ``i``, so any single changed bit changes both, and a swap of
two words changes them too. It runs on device (one jitted reduction per
save), reads only what each process holds, and does not depend on how
the arrays are sharded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from typing import Any, Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp


class CorruptCheckpointError(RuntimeError):
  """The latest checkpoint exists but cannot be restored as it was saved."""


@functools.cache
def _whole_arrays_on_cpu() -> None:
  """On CPU, each replicated array is saved whole from its first replica.

  Orbax's default (replica-parallel, off by default only on GPU) slices a
  replicated array across its devices so that each copies a part to the
  host in parallel; CPU devices share the host's memory, so it only adds
  an eagerly compiled slice per array shape (64 compiles, about 2 s of a
  4-device test run's start here). The files are the same either way.
  Registered once per process (the first manager), not at import: the
  backend must not start before ``jax.distributed`` is initialised.
  """
  if jax.default_backend() == "cpu":
    ocp.type_handlers.register_type_handler(
        jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False),
        override=True)


def manager(directory: str, *, save_every: int, keep: int,
            async_save: bool = True) -> ocp.CheckpointManager:
  """Saves every ``save_every`` steps (and at a preemption orbax sees);
  not orbax's default extra save at a fresh run's first step (a whole
  checkpoint one step into the run)."""
  _whole_arrays_on_cpu()
  directory = os.path.abspath(directory)
  policies = ocp.checkpoint_managers
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, save_decision_policy=policies.AnySavePolicy([
          policies.FixedIntervalPolicy(save_every),
          policies.PreemptionCheckpointingPolicy()]),
      enable_async_checkpointing=async_save, create=True)
  return ocp.CheckpointManager(directory, options=options)


def _words(x: jax.Array) -> jax.Array:
  """``x``'s bits as a flat uint32 vector (keys as their key data)."""
  if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  if x.dtype == jnp.bool_:
    x = x.astype(jnp.uint8)
  bits = x.dtype.itemsize * 8
  words = jax.lax.bitcast_convert_type(x, jnp.dtype(f"uint{bits}"))
  if bits == 64:  # splits into a trailing pair of 32-bit words
    words = jax.lax.bitcast_convert_type(words, jnp.uint32)
  return words.astype(jnp.uint32).reshape(-1)


@jax.jit
def _sums(leaves) -> jax.Array:
  out = []
  for x in leaves:
    w = _words(x)
    i = jnp.arange(w.size, dtype=jnp.uint32)
    a = i * jnp.uint32(0x9E3779B1) | jnp.uint32(1)
    b = (i ^ jnp.uint32(0x5BD1E995)) * jnp.uint32(0x85EBCA6B) | \
        jnp.uint32(1)
    out.append(jnp.stack([jnp.sum(w * a, dtype=jnp.uint32),
                          jnp.sum((w ^ (w >> 16)) * b, dtype=jnp.uint32)]))
  return jnp.stack(out) if out else jnp.zeros((0, 2), jnp.uint32)


def _host(x: jax.Array) -> np.ndarray:
  """A replicated result's value on every process."""
  return np.asarray(x if x.is_fully_addressable else x.addressable_data(0))


def checksums(tree: Any) -> dict:
  """``{leaf path: 16 hex digits}`` of every array in ``tree``."""
  paths, leaves = zip(*jax.tree_util.tree_flatten_with_path(tree)[0]) or \
      ((), ())
  sums = _host(_sums([jnp.asarray(x) for x in leaves]))
  return {jax.tree_util.keystr(p): f"{int(s[0]):08x}{int(s[1]):08x}"
          for p, s in zip(paths, sums)}


def _digest(data: Any) -> str:
  return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def save(mngr: ocp.CheckpointManager, step: int, state: Any,
         data_state: dict, force: bool = False,
         config: Optional[dict] = None) -> bool:
  """Saves when ``step`` is due (or ``force``); returns whether it saved.
  ``config`` (a JSON-able dict) is stored in the integrity record."""
  if not (force or mngr.should_save(step)):
    return False
  integrity = {"state": checksums(state), "data": _digest(data_state),
               "config": config}
  return mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data=ocp.args.JsonSave(data_state),
      integrity=ocp.args.JsonSave(integrity)), force=True)


def _reason(e: Exception, path: str) -> str:
  """One short line of ``e``: the checkpoint file it names, else the head
  of its first line (TensorStore appends kilobytes of its spec)."""
  text = str(e).replace(path + "/", "")
  found = re.search(r"not found at path:? ([\w./-]+)", text)
  if found:
    return f"{found.group(1).rstrip('.')} is missing"
  if "NOT_FOUND" in text:
    return "a file of the array store is missing (TensorStore NOT_FOUND)"
  head = re.split(r"\. See |\[tensorstore|: \(|\n", text)[0]
  return f"{type(e).__name__}: {head[:100]}"


ITEMS = {"state": "the saved arrays", "data": "the input position",
         "integrity": "the integrity record"}


def _refuse(path: str, what: str) -> CorruptCheckpointError:
  return CorruptCheckpointError(
      f"checkpoint {path} is damaged: {what}. Refusing to resume and to "
      f"overwrite it: move {path} away to resume from the previous "
      "checkpoint, or use another --workdir.")


def _verify(path: str, state: Any, data: Any, integrity: Any) -> None:
  if not isinstance(integrity, dict) or "state" not in integrity:
    raise _refuse(path, "its integrity record is missing or unreadable")
  saved, now = integrity["state"], checksums(state)
  wrong = [k for k in now if saved.get(k) != now[k]]
  if wrong or set(saved) != set(now):
    raise _refuse(path, f"the checksum of {(wrong or ['the tree'])[0]} "
                  f"({len(wrong)} array(s) in all) differs from the saved "
                  "one")
  if integrity.get("data") != _digest(data):
    raise _refuse(path, "the input position differs from the saved one")


def restore_latest(mngr: ocp.CheckpointManager, template: Any,
                   set_data: Optional[Callable[[Any, int], None]] = None
                   ) -> Optional[Tuple[int, Any, Any]]:
  """``(step, state, data_state)`` of the latest checkpoint, or ``None``.

  ``template`` is a state with the target shapes, dtypes and shardings
  (e.g. the freshly initialised state); restored arrays take its
  shardings. ``set_data(position, step)`` (e.g. a call of the input
  iterator's ``set_state``) runs inside the same checks, so a position it
  rejects is refused like any other damage.
  """
  step = mngr.latest_step()
  if step is None:
    return None
  path = os.path.join(str(mngr.directory), str(step))
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
  args = {"state": ocp.args.StandardRestore(abstract),
          "data": ocp.args.JsonRestore(),
          "integrity": ocp.args.JsonRestore()}
  restored = {}
  for name, what in ITEMS.items():  # one at a time, to name the culprit
    try:
      restored[name] = mngr.restore(step, args=ocp.args.Composite(
          **{name: args[name]}))[name]
    except Exception as e:  # orbax raises many kinds for unreadable files
      raise _refuse(path, f"{what} ({name}/) cannot be read: "
                    f"{_reason(e, path)}") from None
  state, data = restored["state"], restored["data"]
  _verify(path, state, data, restored["integrity"])
  if not all_finite(state):
    raise _refuse(path, "it holds NaN or infinite values")
  if set_data is not None:
    try:
      set_data(data, step)
    except Exception as e:  # the iterator's own error, whatever its kind
      raise _refuse(path, f"the input position {str(data)[:80]} is not "
                    f"valid for this input ({_reason(e, path)})") from None
  return step, state, data


def stored_config(mngr: ocp.CheckpointManager) -> Optional[dict]:
  """The config saved with the latest checkpoint, if any."""
  step = mngr.latest_step()
  if step is None:
    return None
  path = os.path.join(str(mngr.directory), str(step), "integrity", "metadata")
  try:
    with open(path) as f:
      return json.load(f).get("config")
  except (OSError, ValueError, AttributeError):
    return None  # the restore itself reports the damage


@jax.jit
def _finite(leaves) -> jax.Array:
  checks = [jnp.all(jnp.isfinite(x)) for x in leaves
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(checks)) if checks else jnp.bool_(True)


def all_finite(tree: Any) -> bool:
  """Whether every floating-point value in ``tree`` is finite."""
  return bool(_host(_finite(jax.tree.leaves(tree))))


def read_arrays(path: str) -> Any:
  """The state saved in checkpoint ``path`` (``.../checkpoints/STEP``) as
  NumPy arrays on this host, whatever devices and processes wrote it: for
  comparing runs, not for resuming (which restores onto the run's mesh)."""
  checkpointer = ocp.PyTreeCheckpointer()
  item = os.path.join(path, "state")
  tree = checkpointer.metadata(item).item_metadata.tree
  return checkpointer.restore(item, restore_args=jax.tree.map(
      lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree))
