"""Checkpoint integrity: every kind of damage to the latest checkpoint is
refused (naming the checkpoint and the way out) or restores exactly what
was saved; none restores other values, and nothing is overwritten."""

import json
import os
import pathlib

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dropgraph_jax.training import checkpointing


def _state(scale=1.0):
  rng = np.random.default_rng(0)
  return {"params": {"w": jnp.asarray(rng.normal(size=(256, 256)) * scale,
                                      jnp.float32),
                     "b": jnp.arange(7, dtype=jnp.float32)},
          "step": jnp.int32(5), "half": jnp.ones((3,), jnp.bfloat16),
          "key": jax.random.key(3)}


def _iterator():
  return iter(grain.MapDataset.range(40).batch(4).to_iter_dataset())


def _save(directory):
  """Checkpoints at steps 1 and 2; the iterator is 3 batches in."""
  mngr = checkpointing.manager(directory, save_every=1, keep=3,
                               async_save=False)
  it = _iterator()
  for _ in range(3):
    next(it)
  for step in (1, 2):
    checkpointing.save(mngr, step, _state(step), it.get_state(),
                       config={"seed": 0})
  mngr.close()


def _biggest(ckpt, under):
  return max((p for p in (ckpt / under).rglob("*") if p.is_file()),
             key=lambda p: p.stat().st_size)


def _garble(path, count=64):
  data = bytearray(path.read_bytes())
  middle = len(data) // 2
  data[middle:middle + count] = bytes((b ^ 0x5A) for b in
                                      data[middle:middle + count])
  path.write_bytes(bytes(data))


def _flip_bit(path):
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0x10
  path.write_bytes(bytes(data))


def _truncate(path):
  path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def _write_json(path, change):
  data = json.loads(path.read_text())
  change(data)
  path.write_text(json.dumps(data))


def _shift(data):
  data["next_index"] += 1


def _checksum(data):
  data["state"]["['params']['b']"] = "0" * 16


def _data(c):
  return _biggest(c, "state/ocdbt.process_0/d")


def _delete_files(folder):
  for path in folder.rglob("*"):
    if path.is_file():
      path.unlink()


def _unlink(name):
  return lambda c: (c / name).unlink()


DAMAGE = {
    "array data truncated": lambda c: _truncate(_data(c)),
    "array data deleted": lambda c: _data(c).unlink(),
    "array data garbled": lambda c: _garble(_data(c)),
    "array data one bit flipped": lambda c: _flip_bit(_data(c)),
    "array metadata truncated": lambda c: _truncate(c / "state/_METADATA"),
    "array metadata deleted": _unlink("state/_METADATA"),
    "array metadata garbled": lambda c: _garble(c / "state/_METADATA", 8),
    "array manifest deleted": _unlink("state/manifest.ocdbt"),
    "array manifest garbled": lambda c: _garble(
        c / "state/ocdbt.process_0/manifest.ocdbt", 8),
    "position truncated": lambda c: _truncate(c / "data/metadata"),
    "position deleted": _unlink("data/metadata"),
    "position garbled": lambda c: (c / "data/metadata").write_text(
        '{"next_index": "abc"}'),
    "position shifted by one batch": lambda c: _write_json(
        c / "data/metadata", _shift),
    "integrity record deleted": _unlink("integrity/metadata"),
    "integrity checksum changed": lambda c: _write_json(
        c / "integrity/metadata", _checksum),
    "checkpoint metadata garbled": lambda c: (
        c / "_CHECKPOINT_METADATA").write_text("garbage"),
    "state folder emptied": lambda c: _delete_files(c / "state"),
}


def _snapshot(directory):
  return {str(p): p.read_bytes() for p in pathlib.Path(directory).rglob("*")
          if p.is_file()}


def test_there_are_seventeen_kinds_of_damage():
  assert len(DAMAGE) == 17


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damage_is_refused_or_restores_exactly(tmp_path, kind):
  directory = str(tmp_path / "checkpoints")
  _save(directory)
  ckpt = pathlib.Path(directory) / "2"
  DAMAGE[kind](ckpt)
  before = _snapshot(directory)
  mngr = checkpointing.manager(directory, save_every=1, keep=3,
                               async_save=False)
  it = _iterator()
  try:
    restored = checkpointing.restore_latest(
        mngr, _state(), lambda position, _: it.set_state(position))
  except checkpointing.CorruptCheckpointError as e:
    message = str(e)
    assert message.startswith(f"checkpoint {ckpt} is damaged: "), message
    assert f"move {ckpt} away" in message and "--workdir" in message
    assert len(message.replace(str(ckpt), "C")) < 300, message
    assert "\n" not in message, message
  else:  # only a resume on exactly the saved values is acceptable
    step, state, position = restored
    assert step == 2 and position == {"next_index": 3}
    chex_equal = jax.tree.map(lambda a, b: bool(jnp.all(a == b)),
                              jax.tree.map(_bits, state),
                              jax.tree.map(_bits, _state(2)))
    assert all(jax.tree.leaves(chex_equal)), kind
    assert it.get_state() == {"next_index": 3}
  mngr.close()
  assert _snapshot(directory) == before  # nothing overwritten


def _bits(x):
  if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(x)
  return jax.lax.bitcast_convert_type(
      x, jnp.dtype(f"uint{x.dtype.itemsize * 8}"))


def test_an_undamaged_checkpoint_restores_exactly(tmp_path):
  _save(str(tmp_path))
  mngr = checkpointing.manager(str(tmp_path), save_every=1, keep=3)
  it = _iterator()
  step, state, _ = checkpointing.restore_latest(
      mngr, _state(), lambda position, _: it.set_state(position))
  assert step == 2 and next(it).tolist() == [12, 13, 14, 15]
  assert jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.all(a == b)),
                                      jax.tree.map(_bits, state),
                                      jax.tree.map(_bits, _state(2))))
  assert checkpointing.stored_config(mngr) == {"seed": 0}


def test_checksums_see_one_bit_and_ignore_sharding():
  x = jnp.arange(4096, dtype=jnp.float32)
  flipped = jax.lax.bitcast_convert_type(x, jnp.uint32).at[1234].add(
      jnp.uint32(1 << 20))
  assert checkpointing.checksums({"x": x}) != checkpointing.checksums(
      {"x": jax.lax.bitcast_convert_type(flipped, jnp.float32)})
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("d",))
  sharded = jax.device_put(x, jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec("d")))
  assert checkpointing.checksums({"x": sharded}) == checkpointing.checksums(
      {"x": x})


def test_non_finite_values_are_refused(tmp_path):
  mngr = checkpointing.manager(str(tmp_path), save_every=1, keep=1,
                               async_save=False)
  state = _state(float("nan"))
  checkpointing.save(mngr, 1, state, {"next_index": 0})
  with pytest.raises(checkpointing.CorruptCheckpointError,
                     match="NaN or infinite"):
    checkpointing.restore_latest(mngr, state)
  assert os.path.isdir(tmp_path / "1")


def test_a_replicated_state_saves_on_cpu_without_slicing(tmp_path, caplog):
  """Orbax's replica-parallel save would slice each array replicated over
  the 8 devices (an eager compile per shape); on CPU it is saved whole and
  restores with its replicated sharding."""
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("d",))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = jax.device_put({"w": jnp.ones((40, 24)), "v": jnp.arange(48.0)},
                         replicated)
  mngr = checkpointing.manager(str(tmp_path), save_every=1, keep=1,
                               async_save=False)
  with jax.log_compiles(), caplog.at_level("WARNING"):
    checkpointing.save(mngr, 1, state, {"next_index": 0})
  compiled = [r.getMessage() for r in caplog.records
              if "compilation of" in r.getMessage()]
  assert not [m for m in compiled if "slice" in m], compiled
  step, restored, _ = checkpointing.restore_latest(mngr, state)
  assert step == 1 and restored["w"].sharding == replicated
  np.testing.assert_array_equal(restored["v"], state["v"])
