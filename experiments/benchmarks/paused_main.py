"""`experiments/main.py` unchanged, but each train step is followed by a pause of `$RL_STEP_PAUSE` seconds.

  RL_STEP_PAUSE=0.25 python experiments/benchmarks/paused_main.py --config configs/simclr.py:smoke --workdir ...

For kill-and-resume tests (`soak.py`, tests/train/test_reliability.py): a smoke model's steps take milliseconds,
far less than an asynchronous checkpoint save, so without a pause a run killed "a few steps later" would almost
never be killed after a save completed (real steps are slower than the saves of small models). The pause changes
no number.
"""
import os
import runpy
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from rl.train import step as step_lib  # noqa: E402  (after the path)

_make_train_step = step_lib.make_train_step


def _paused_make_train_step(*args, **kwargs):
  step = _make_train_step(*args, **kwargs)
  pause = float(os.environ.get("RL_STEP_PAUSE", "0"))

  def paused(state, batch):
    out = step(state, batch)
    time.sleep(pause)
    return out
  return paused


if __name__ == "__main__":
  step_lib.make_train_step = _paused_make_train_step
  main = os.path.join(ROOT, "experiments", "main.py")
  sys.argv = [main] + sys.argv[1:]
  runpy.run_path(main, run_name="__main__")
