"""`experiments/main.py` unchanged, but with hooks that pause or kill it at a chosen point, for kill-and-resume tests.

  RL_STEP_PAUSE=0.25 python experiments/benchmarks/paused_main.py --config configs/simclr.py:smoke --workdir ...

Environment variables (each optional):
  RL_STEP_PAUSE=<seconds>: a pause after each train step (`soak.py`). A smoke model's steps take milliseconds, far
    less than an asynchronous checkpoint save, so without it a run killed "a few steps later" from outside would
    almost never be killed after a save completed. The pause changes no number.
  RL_KILL_AT_STEP=<n>: the process SIGKILLs itself while its n-th train step is in flight (dispatched, not
    finished). Every checkpoint save then waits until it is on disk, so the newest complete checkpoint at the kill
    is known: the newest one scheduled before step n (tests/train/test_reliability.py).
  RL_KILL_IN_SAVE=<step>: the process SIGKILLs itself just after it started the asynchronous save of that step, so
    the save is cut short while it is being written.
"""
import os
import runpy
import signal
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from rl.train import checkpoint as ckpt_lib  # noqa: E402  (after the path)
from rl.train import step as step_lib  # noqa: E402

_make_train_step = step_lib.make_train_step
_save = ckpt_lib.Checkpointer.save


def _kill() -> None:
  sys.stdout.flush()
  os.kill(os.getpid(), signal.SIGKILL)


def _hooked_make_train_step(*args, **kwargs):
  step = _make_train_step(*args, **kwargs)
  pause = float(os.environ.get("RL_STEP_PAUSE", "0"))
  kill_at = int(os.environ.get("RL_KILL_AT_STEP", "0"))
  calls = [0]

  def hooked(state, batch):
    calls[0] += 1
    out = step(state, batch)
    if calls[0] == kill_at:
      _kill()
    time.sleep(pause)
    return out
  return hooked


def _hooked_save(self, state, **kwargs):
  started = _save(self, state, **kwargs)
  if started and int(os.environ.get("RL_KILL_IN_SAVE", "-1")) == self._pending:  # pylint: disable=protected-access
    _kill()
  if started and os.environ.get("RL_KILL_AT_STEP"):
    self.wait()
  return started


if __name__ == "__main__":
  step_lib.make_train_step = _hooked_make_train_step
  ckpt_lib.Checkpointer.save = _hooked_save
  main = os.path.join(ROOT, "experiments", "main.py")
  sys.argv = [main] + sys.argv[1:]
  runpy.run_path(main, run_name="__main__")
