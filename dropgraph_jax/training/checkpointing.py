"""Checkpoints: the one module that talks to orbax.

A checkpoint holds the train state (params, batch statistics, optimizer
state, step; restored with the shardings of a freshly built state) and the
input iterator's position (a small JSON dict), so that a resumed run
continues with exactly the batches an uninterrupted run would see. Saving
goes through ``orbax.checkpoint.CheckpointManager`` (every N steps, keep K,
asynchronous); everything else in the project calls the three functions
here, so moving to orbax's V1 API touches this file only.

A checkpoint that cannot be read is never overwritten: :func:`restore_latest`
raises ``CorruptCheckpointError`` naming its directory, and the run stops.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Tuple

import jax
import orbax.checkpoint as ocp


class CorruptCheckpointError(RuntimeError):
  """The latest checkpoint exists but cannot be restored."""


def manager(directory: str, *, save_every: int, keep: int,
            async_save: bool = True) -> ocp.CheckpointManager:
  directory = os.path.abspath(directory)
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, save_interval_steps=save_every,
      enable_async_checkpointing=async_save, create=True)
  return ocp.CheckpointManager(directory, options=options)


def save(mngr: ocp.CheckpointManager, step: int, state: Any,
         data_state: dict, force: bool = False) -> bool:
  """Saves when ``step`` is due (or ``force``); returns whether it saved."""
  return mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data=ocp.args.JsonSave(data_state)), force=force)


def restore_latest(mngr: ocp.CheckpointManager, template: Any
                   ) -> Optional[Tuple[int, Any, dict]]:
  """``(step, state, data_state)`` of the latest checkpoint, or ``None``.

  ``template`` is a state with the target shapes, dtypes and shardings
  (e.g. the freshly initialised state); restored arrays take its
  shardings.
  """
  step = mngr.latest_step()
  if step is None:
    return None
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
  try:
    restored = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        data=ocp.args.JsonRestore()))
  except Exception as e:  # orbax raises many kinds for unreadable files
    path = os.path.join(str(mngr.directory), str(step))
    raise CorruptCheckpointError(
        f"checkpoint {path} exists but cannot be restored ({type(e).__name__}"
        f": {str(e)[:300]}). Refusing to resume and to overwrite it: move it "
        "away to start over from the previous checkpoint, or use another "
        "--workdir.") from None
  return step, restored["state"], restored["data"]
