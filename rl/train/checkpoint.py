"""Orbax checkpoints in `workdir/checkpoints`: periodic saves, keep the newest K, restore the newest on start."""
from __future__ import annotations

import logging

from etils import epath
import jax
import orbax.checkpoint as ocp

from rl.train.state import TrainState


class Checkpointer:
  """A thin wrapper over `ocp.CheckpointManager` that knows the `TrainState` and its sharding."""

  def __init__(self, directory: epath.PathLike, *, max_to_keep: int):
    self.directory = epath.Path(directory)
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """Steps of every complete checkpoint, ascending (interrupted saves are not listed)."""
    return sorted(self._manager.all_steps())

  def save(self, state: TrainState, *, force: bool = False) -> bool:
    """Saves the state at its step (asynchronously); returns whether a save was started."""
    step = int(jax.device_get(state.step))
    if step in self._manager.all_steps():
      return False
    return self._manager.save(step, args=ocp.args.StandardSave(state), force=force)

  def restore_latest(self, template: TrainState) -> TrainState | None:
    """Restores the newest checkpoint onto the shardings of `template`, or returns None if there is none."""
    step = self._manager.latest_step()
    if step is None:
      return None
    return self.restore(template, step)

  def restore(self, template: TrainState, step: int) -> TrainState:
    """Restores the checkpoint of `step` onto the shardings of `template`.

    Args:
      template: a `TrainState` with the structure, shapes, dtypes and shardings to restore onto.
      step: one of `all_steps()`.

    Returns:
      The restored state.

    Raises:
      ValueError: no complete checkpoint of `step` (the message lists the available steps).
    """
    steps = self.all_steps()
    if step not in steps:
      raise ValueError(f"step: no checkpoint of step {step} in {self.directory}; available steps: "
                       f"{', '.join(map(str, steps)) or 'none'}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    logging.info("Restoring checkpoint at step %d from %s", step, self.directory)
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()
