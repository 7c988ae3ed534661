"""Orbax checkpoints in `workdir/checkpoints`: periodic saves, keep the newest K, restore the newest good one.

Faults it handles (issue 7):
* a corrupt or truncated checkpoint (files deleted or cut short, e.g. by a kill during a copy) is detected when it
  is read; it is moved aside to `<step>.corrupt` with a warning naming it, and the previous one is restored;
* a checkpoint of another model or method is refused (`CheckpointMismatchError` names the first mismatching key
  and both shapes) before any array is read;
* a failed save (disk full, unwritable directory) raises `CheckpointSaveError` naming the path and the cause, and
  says that the state in memory was not saved.
Saves that a kill interrupted are never listed (Orbax finalises a step by an atomic rename); their temporary
directories are removed, before anything else, when the next writing `Checkpointer` opens the directory. A
`read_only` one (listing steps, evaluating a checkpoint) leaves them: they may be the saves in flight of a run that
is still training.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from etils import epath
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

from rl.train.state import TrainState

log = logging.getLogger("rl")


class CheckpointMismatchError(ValueError):
  """A checkpoint does not fit this run's state (another model, method or optimizer wrote it)."""


class CheckpointSaveError(OSError):
  """Writing a checkpoint failed; the state in memory was not saved."""


class NoGoodCheckpointError(RuntimeError):
  """Every checkpoint of the directory is unreadable."""


def _flat(tree) -> dict[tuple[str, ...], Any]:
  return ocp.tree.to_flat_dict(tree)


def _key(path: tuple[str, ...]) -> str:
  return "/".join(map(str, path))


def check_structure(template: TrainState, metadata_tree, *, step: int, directory) -> None:
  """Raises `CheckpointMismatchError` naming the first key whose presence, shape or dtype differs.

  Example:
    >>> template = {"params": {"w": np.zeros((8,), np.float32)}, "step": np.zeros((), np.int32)}
    >>> fits = {"params": {"w": jax.ShapeDtypeStruct((8,), np.float32)}, "step": jax.ShapeDtypeStruct((), np.int32)}
    >>> check_structure(template, fits, step=4, directory="/runs/a/checkpoints")  # nothing to complain about
    >>> wider = {"params": {"w": jax.ShapeDtypeStruct((12,), np.float32)}, "step": jax.ShapeDtypeStruct((), np.int32)}
    >>> check_structure(template, wider, step=4, directory="/runs/a/checkpoints")
    Traceback (most recent call last):
    rl.train.checkpoint.CheckpointMismatchError: checkpoint of step 4 in /runs/a/checkpoints does not fit this run:
      params/w has shape (12,) float32 in the checkpoint and (8,) float32 here; it was written by another model,
      method or optimizer (use a new workdir, or the run's own config).

  Args:
    template: this run's state (shapes and dtypes).
    metadata_tree: the checkpoint's item metadata tree (`CheckpointManager.item_metadata(step).tree`).
    step: the checkpoint's step, for the message.
    directory: the checkpoint directory, for the message.
  """
  want = {k: v for k, v in _flat(ocp.tree.serialize_tree(template, keep_empty_nodes=True)).items()
          if hasattr(v, "shape")}
  have = {k: v for k, v in _flat(metadata_tree).items() if hasattr(v, "shape")}
  where = f"checkpoint of step {step} in {directory}"
  hint = "; it was written by another model, method or optimizer (use a new workdir, or the run's own config)"
  for key in sorted(set(want) | set(have)):
    if key not in have:
      raise CheckpointMismatchError(
          f"{where} does not fit this run: it has no {_key(key)} (shape {tuple(want[key].shape)} here){hint}.")
    if key not in want:
      raise CheckpointMismatchError(
          f"{where} does not fit this run: it has {_key(key)} (shape {tuple(have[key].shape)}), which this run "
          f"does not{hint}.")
    w, h = want[key], have[key]
    if tuple(w.shape) != tuple(h.shape) or np.dtype(w.dtype) != np.dtype(h.dtype):
      raise CheckpointMismatchError(
          f"{where} does not fit this run: {_key(key)} has shape {tuple(h.shape)} {np.dtype(h.dtype)} in the "
          f"checkpoint and {tuple(w.shape)} {np.dtype(w.dtype)} here{hint}.")


class Checkpointer:
  """A thin wrapper over `ocp.CheckpointManager` that knows the `TrainState` and its sharding.

  Args:
    directory: where the step directories go (local or gs://).
    max_to_keep: newest checkpoints kept; None keeps all.
    metadata: JSON-able facts saved with every step (e.g. the device count), read back by `step_metadata`.
    read_only: only list and restore: the directory is neither created nor cleaned of interrupted saves.
  """

  def __init__(self, directory: epath.PathLike, *, max_to_keep: int | None, metadata: dict | None = None,
               read_only: bool = False):
    self.directory = epath.Path(directory)
    self.metadata = dict(metadata or {})
    self._max_to_keep = max_to_keep
    self._read_only = read_only
    self._pending = -1  # the step of the newest save started
    self._manager = self._open()

  def _remove_interrupted_saves(self) -> None:
    """Deletes the temporary directories of saves that a kill cut short, before the manager opens.

    Orbax can do this itself (`cleanup_tmp_directories`), but in a background thread: two managers opened one
    after the other (listing the steps, then training) then delete the same directory at once, and the loser's
    error fails the first save of the run. Here it is done once, synchronously, by process 0, and tolerates a
    directory that is already gone.
    """
    if jax.process_index() == 0 and self.directory.exists():
      for name in ocp.step.tmp_checkpoints(self.directory):
        (self.directory / name).rmtree(missing_ok=True)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("rl.train.checkpoint: interrupted saves removed")

  def _open(self) -> ocp.CheckpointManager:
    try:
      if not self._read_only:
        self._remove_interrupted_saves()
      return ocp.CheckpointManager(self.directory, options=ocp.CheckpointManagerOptions(
          max_to_keep=self._max_to_keep, create=not self._read_only, read_only=self._read_only,
          cleanup_tmp_directories=False),
          item_handlers=ocp.StandardCheckpointHandler())  # so that item_metadata can read a step before any save
    except OSError as e:
      raise CheckpointSaveError(f"cannot create or read the checkpoint directory {self.directory}: "
                                f"{type(e).__name__}: {e}") from e

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """Steps of every complete checkpoint, ascending (interrupted saves are not listed)."""
    return sorted(self._manager.all_steps())

  def step_metadata(self, step: int) -> dict:
    """The `metadata` saved with `step` ({} for a checkpoint written without it)."""
    return dict(self._manager.metadata(step).custom_metadata or {})

  def _save_failed(self, step: int, error: BaseException) -> CheckpointSaveError:
    try:  # let the earlier saves that are still in flight finish, so the message lists what is really on disk
      self._manager.wait_until_finished()
    except Exception:  # noqa: BLE001  (the failure being reported)
      pass
    good = [s for s in self.all_steps() if s != step]
    last = f"the last complete checkpoint is step {good[-1]}" if good else "there is no complete checkpoint"
    return CheckpointSaveError(
        f"saving the checkpoint of step {step} to {self.directory} failed ({type(error).__name__}: {error}); the "
        f"state of step {step} was NOT saved ({last}). Free disk space or fix the directory's permissions, then "
        f"run the same command to resume.")

  def save(self, state: TrainState, *, force: bool = False) -> bool:
    """Starts saving the state at its step (asynchronously); returns whether a save was started.

    Raises:
      CheckpointSaveError: this save, or the previous asynchronous one, failed (the message names the path).
    """
    step = int(jax.device_get(state.step))
    if step in self._manager.all_steps():
      return False
    try:
      self._manager.check_for_errors()  # a failure of the previous asynchronous save
    except Exception as e:  # noqa: BLE001  (Orbax re-raises the background thread's error as is)
      raise self._save_failed(self._pending, e) from e
    try:
      started = self._manager.save(step, args=ocp.args.StandardSave(state), force=force,
                                   custom_metadata=self.metadata)
    except Exception as e:  # noqa: BLE001
      raise self._save_failed(step, e) from e
    if started:
      self._pending = step
    return started

  def wait(self) -> None:
    """Blocks until every started save is on disk.

    Raises:
      CheckpointSaveError: a save failed (the message names the step and the path).
    """
    try:
      self._manager.wait_until_finished()
      self._manager.check_for_errors()
    except Exception as e:  # noqa: BLE001
      raise self._save_failed(self._pending, e) from e
    if self._pending >= 0 and self._pending not in self._manager.all_steps():
      raise self._save_failed(self._pending, RuntimeError("the step is not listed after the save finished"))

  def restore_latest(self, template: TrainState) -> TrainState | None:
    """Restores the newest readable checkpoint onto the shardings of `template`; None if there is none.

    A checkpoint that cannot be read is moved aside to `<step>.corrupt` (a warning names it) and the next older
    one is tried.

    Raises:
      CheckpointMismatchError: the newest checkpoint was written for another model, method or optimizer.
      NoGoodCheckpointError: checkpoints exist but none can be read (they are moved aside; the message lists them).
    """
    bad = []
    for step in reversed(self.all_steps()):
      try:
        state = jax.block_until_ready(self.restore(template, step))
      except CheckpointMismatchError:
        raise
      except Exception as e:  # noqa: BLE001  (missing, garbled or truncated files)
        bad.append(self._quarantine(step, e))
        continue
      if bad:
        log.warning("Restored step %d instead (%s)", step, "; ".join(bad))
        print(f"[rl] restored the older checkpoint of step {step} instead", flush=True)
      return state
    if bad:
      raise NoGoodCheckpointError(f"no readable checkpoint in {self.directory}: {'; '.join(bad)}. Run the same "
                                  f"command again to start from step 0, or restore a backup of the directory.")
    return None

  def _quarantine(self, step: int, error: BaseException) -> str:
    """Moves an unreadable step out of Orbax's sight (so it is neither restored nor skipped on save)."""
    src = self.directory / str(step)
    dst = self.directory / f"{step}.corrupt-{int(time.time())}"
    message = (f"checkpoint of step {step} in {self.directory} is corrupt or truncated "
               f"({type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}); moved to {dst}")
    print(f"[rl] WARNING: {message}", flush=True)
    log.warning("%s", message)
    if jax.process_index() == 0:
      src.rename(dst)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"rl: quarantined checkpoint {step}")
    self._manager.close()
    self._manager = self._open()  # it lists steps once, when it opens
    return message

  def restore(self, template: TrainState, step: int) -> TrainState:
    """Restores the checkpoint of `step` onto the shardings of `template`.

    Args:
      template: a `TrainState` with the structure, shapes, dtypes and shardings to restore onto.
      step: one of `all_steps()`.

    Returns:
      The restored state.

    Raises:
      ValueError: no complete checkpoint of `step` (the message lists the available steps).
      CheckpointMismatchError: the checkpoint does not fit `template` (the message names the first key).
    """
    steps = self.all_steps()
    if step not in steps:
      raise ValueError(f"step: no checkpoint of step {step} in {self.directory}; available steps: "
                       f"{', '.join(map(str, steps)) or 'none'}")
    check_structure(template, self._manager.item_metadata(step).tree, step=step, directory=self.directory)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    log.info("Restoring checkpoint at step %d from %s", step, self.directory)
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def close(self) -> None:
    self._manager.close()
