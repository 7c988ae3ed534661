"""Reliability (issue 7): exact resume after SIGKILL, graceful SIGTERM/SIGINT, corrupt, mismatched and unwritable
checkpoints, non-finite steps.

The killed runs are real processes (`experiments/main.py`) that SIGKILL themselves from a hook, at a different
point per method: during a step after a completed save, or while a save is being written. The straight and resumed
runs train in this process. Every run is the smoke config for 8 steps with a checkpoint every
2 steps and no final evaluation (`config.eval.final=False`).
"""
from __future__ import annotations

import errno
import importlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from rl.train import checkpoint as ckpt_lib
from rl.train import loop
from rl.train import preemption
from rl.train import restore
from rl.train import step as step_lib
from rl.train import writer as writer_lib
import tests

# The module-scoped runs are shared by its tests: all on one pytest-xdist worker (`--dist loadgroup`), trained once.
pytestmark = pytest.mark.xdist_group("reliability")

ROOT = pathlib.Path(__file__).resolve().parents[2]
STEPS = 8
# The methods of the issue: a plain one, an EMA target, a queue, multi-crop with a centre, a memory bank, prototypes
# with a queue.
METHODS = ("simclr", "byol", "moco_v2", "dino", "npid", "swav")


def _overrides(data_dir) -> dict:
  return {"total_steps": STEPS, "log_every_steps": 1, "checkpoint.every_steps": 2, "checkpoint.keep": 10,
          "eval.every_steps": 0, "eval.final": False, "data_dir": str(data_dir)}


def _config(method: str, data_dir, **extra):
  return tests.override(importlib.import_module(f"configs.{method}").get_config("smoke"),
                        {**_overrides(data_dir), **extra})


def _child(method: str, workdir, data_dir, *, devices: int = 8, extra=(), pause: float = 0.0,
           env: dict | None = None) -> subprocess.Popen:
  """`experiments/main.py` in a child process, with the hooks of `paused_main.py` set by `pause` and `env`."""
  flags = [f"--config.{k}={v}" for k, v in _overrides(data_dir).items()] + list(extra)
  env = {**os.environ, "XLA_FLAGS": tests.xla_flags(devices), "JAX_PLATFORMS": "cpu",
         "RL_STEP_PAUSE": str(pause), **(env or {})}
  return subprocess.Popen(
      [sys.executable, "experiments/benchmarks/paused_main.py", "--config", f"configs/{method}.py:smoke",
       "--workdir", str(workdir),
       *flags], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _complete_steps(workdir) -> list[int]:
  directory = pathlib.Path(workdir) / "checkpoints"
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.exists() else []


def _all_train_lines(workdir):
  lines = [json.loads(l) for l in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()]
  return [l for l in lines if l["kind"] == "train"]


def _train_lines(workdir):
  timing = ("steps_per_second", "train_seconds")  # wall-clock keys differ between runs
  return [{k: v for k, v in l.items() if k not in timing} for l in _all_train_lines(workdir)]


def _leaves(workdir, step):
  tree = ocp.PyTreeCheckpointer().restore(pathlib.Path(workdir) / "checkpoints" / str(step) / "default")
  return dict(ocp.tree.to_flat_dict(tree))


def _ckpt_dirs(workdir):
  return sorted(p.name for p in (pathlib.Path(workdir) / "checkpoints").iterdir())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("tfds")


_STRAIGHT = {}


@pytest.fixture
def straight(data_dir, tmp_path_factory):
  """The uninterrupted run of a method (trained once per module)."""
  def get(method):
    if method not in _STRAIGHT:
      workdir = tmp_path_factory.mktemp(f"straight_{method}")
      loop.train_and_evaluate(_config(method, data_dir), workdir)
      _STRAIGHT[method] = workdir
    return _STRAIGHT[method]
  return get


# Where each method's run is killed (SIGKILL from a hook in the child, `paused_main.py`): during train step n, after
# the saves before it completed (then the newest checkpoint is the last even step before n, and the steps logged
# after it are trained again), or while the save of step s is being written (cut short; the step before is used).
KILLS = {"simclr": {"RL_KILL_AT_STEP": 7}, "byol": {"RL_KILL_AT_STEP": 4}, "moco_v2": {"RL_KILL_AT_STEP": 5},
         "dino": {"RL_KILL_AT_STEP": 3}, "npid": {"RL_KILL_AT_STEP": 6}, "swav": {"RL_KILL_IN_SAVE": 6}}


@pytest.mark.parametrize("method", METHODS)
def test_sigkill_then_resume_is_bit_identical(method, straight, data_dir, tmp_path):
  reference = straight(method)
  kill = KILLS[method]
  proc = _child(method, tmp_path, data_dir, env={k: str(v) for k, v in kill.items()})
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == -signal.SIGKILL, out
  saved = restore.checkpoint_steps(tmp_path)
  if "RL_KILL_AT_STEP" in kill:
    n = kill["RL_KILL_AT_STEP"]
    assert saved == list(range(2, n, 2)), (saved, out)  # every save before step n is complete, none after
    assert [l["step"] for l in _train_lines(tmp_path)][-1] == n - 1, out  # logged past the newest checkpoint
  else:  # the save of step s was cut short: it is not listed, unless it happened to finish before the kill
    s = kill["RL_KILL_IN_SAVE"]
    assert saved in (list(range(2, s, 2)), list(range(2, s + 1, 2))), (saved, out)

  loop.train_and_evaluate(_config(method, data_dir), tmp_path)
  assert _train_lines(tmp_path) == _train_lines(reference)  # no repeated or skipped batch, same numbers
  want, got = _leaves(reference, STEPS), _leaves(tmp_path, STEPS)
  assert want.keys() == got.keys()
  for key in want:  # params, optimizer state, method state (EMA target, queue, centre, bank, prototypes), probe
    np.testing.assert_array_equal(got[key], want[key], err_msg=f"{method}: {'/'.join(key)} ({kill})")
  assert all(name.isdigit() for name in _ckpt_dirs(tmp_path)), _ckpt_dirs(tmp_path)  # nothing half-written


def test_resume_on_4_devices_from_an_8_device_checkpoint(straight, data_dir, tmp_path):
  reference = straight("simclr")
  restore.fork_run(reference, tmp_path, step=4)
  proc = _child("simclr", tmp_path, data_dir, devices=4)
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out
  assert "resuming from checkpoint at step 4/8 on 4 cpu device(s)" in out, out
  assert "the checkpoint was written on 8 device(s) and resumes on 4" in out, out
  lines, reference_lines = _train_lines(tmp_path), _train_lines(reference)
  assert [l["step"] for l in lines] == list(range(1, STEPS + 1))
  assert lines[:4] == reference_lines[:4]  # the forked run's own steps
  np.testing.assert_allclose([l["loss"] for l in lines[4:]], [l["loss"] for l in reference_lines[4:]], rtol=1e-5)
  want, got = _leaves(reference, STEPS), _leaves(tmp_path, STEPS)
  assert want.keys() == got.keys()
  for key in want:
    # The same batches and views; only the order of the cross-device sums differs (4 partial sums, not 8): float32
    # rounding of ~1e-6 of the leaf's scale, the tolerance of the 2-process test (test_multiprocess.py), no more.
    scale = float(np.max(np.abs(want[key]), initial=0.0))
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-5 * scale, err_msg="/".join(key))


class _JumpingClock:
  """A `time` module for the loop whose clock is `jump` seconds ahead after its first reading."""

  def __init__(self, jump: float):
    self.jump, self.readings = jump, 0

  def time(self) -> float:
    self.readings += 1
    return time.time() + (self.jump if self.readings > 1 else 0.0)


def _signalling_step(monkeypatch, signum, at_call):
  real = step_lib.make_train_step

  def make(*args, **kwargs):
    step = real(*args, **kwargs)
    calls = {"n": 0}

    def wrapped(state, batch):
      calls["n"] += 1
      out = step(state, batch)
      if calls["n"] == at_call:  # while the step is in flight (dispatched, not finished)
        os.kill(os.getpid(), signum)
      return out
    return wrapped

  monkeypatch.setattr(step_lib, "make_train_step", make)
  return real


def test_sigterm_finishes_the_step_saves_and_the_next_start_resumes(straight, data_dir, tmp_path, monkeypatch,
                                                                    capsys):
  reference = straight("simclr")
  real = _signalling_step(monkeypatch, signal.SIGTERM, at_call=3)
  previous = signal.getsignal(signal.SIGTERM)
  # The first process's clock jumps 1000 s after the loop starts, so its share of the training time is unmistakable.
  monkeypatch.setattr(loop, "time", _JumpingClock(jump=1000.0))
  result = loop.train_and_evaluate(_config("simclr", data_dir), tmp_path)
  monkeypatch.setattr(loop, "time", time)
  assert signal.getsignal(signal.SIGTERM) is previous  # the handler is only installed while training
  assert result == {"rows": [], "interrupted": {"signal": "SIGTERM", "step": 3}}
  out = capsys.readouterr().out
  assert "SIGTERM received: finishing the current step" in out
  assert "stopped by SIGTERM after step 3/8; the checkpoint of step 3 is in" in out
  assert restore.checkpoint_steps(tmp_path) == [2, 3]  # step 3 is off the every-2 schedule: the signal's save

  monkeypatch.setattr(step_lib, "make_train_step", real)
  earlier = writer_lib.train_seconds_from_metrics(tmp_path, 3)
  saves = [l for l in writer_lib.read_metrics(tmp_path) if l["kind"] == "checkpoint"]
  assert [l["step"] for l in saves] == [2, 3] and earlier == saves[-1]["train_seconds"]  # the signal's save's time
  assert 1000 < earlier < 1100
  t0 = time.time()
  result = loop.train_and_evaluate(_config("simclr", data_dir), tmp_path)
  wall = time.time() - t0
  assert "resuming from checkpoint at step 3/8" in capsys.readouterr().out
  # The resumed run's training time adds the first process's, in its report and in its running train lines.
  assert earlier < result["train_seconds"] < earlier + wall
  assert result["resumed"] == {"step": 3, "train_seconds": earlier}
  later = [l["train_seconds"] for l in _all_train_lines(tmp_path) if l["step"] > 3]
  assert earlier < later[0] and later == sorted(later) and later[-1] <= result["train_seconds"]
  assert _train_lines(tmp_path) == _train_lines(reference)
  want, got = _leaves(reference, STEPS), _leaves(tmp_path, STEPS)
  for key in want:
    np.testing.assert_array_equal(got[key], want[key], err_msg="/".join(key))


def test_sigint_asks_to_stop_and_a_second_one_stops_at_once():
  previous = signal.getsignal(signal.SIGINT)
  with preemption.StopRequest() as stop:
    assert not stop.should_stop(1)
    os.kill(os.getpid(), signal.SIGINT)
    assert stop.should_stop(2) and stop.signal == "SIGINT"
    with pytest.raises(KeyboardInterrupt, match="second SIGINT"):
      os.kill(os.getpid(), signal.SIGINT)
  assert signal.getsignal(signal.SIGINT) is previous
  with pytest.raises(ValueError, match="sync_every: expected a positive number of steps, got 0"):
    preemption.StopRequest(sync_every=0)


def test_sigterm_to_the_script_exits_143_after_saving(straight, data_dir, tmp_path):
  straight("simclr")  # the data set is prepared
  proc = _child("simclr", tmp_path, data_dir, pause=0.4)
  out = []
  for line in proc.stdout:
    out.append(line)
    if line.startswith(f"[rl] step 3/{STEPS} "):
      proc.send_signal(signal.SIGTERM)
  proc.wait(timeout=120)
  text = "".join(out)
  assert proc.returncode == 143, text
  stopped = [l for l in out if l.startswith("[rl] stopped by SIGTERM after step ")]
  assert len(stopped) == 1, text
  step = int(stopped[0].split("after step ")[1].split("/")[0])
  assert 3 <= step < STEPS and max(restore.checkpoint_steps(tmp_path)) == step, (step, text)


# --- Corrupt, mismatched and unwritable checkpoints -------------------------------------------------------------

def _copy(src, dst):
  shutil.copytree(pathlib.Path(src), dst)
  return dst


def _data_files(step_dir):
  files = (p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d")
  return sorted(files, key=lambda p: p.stat().st_size)


CORRUPTIONS = {
    "truncated array data": lambda d: [f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
                                       for f in _data_files(d)],
    "deleted array data": lambda d: [f.unlink() for f in _data_files(d)],
    "deleted metadata": lambda d: (d / "default" / "_METADATA").unlink(),
    "empty manifest": lambda d: [f.write_bytes(b"") for f in d.rglob("manifest.ocdbt")],
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_newest_checkpoint_falls_back_to_the_previous_with_a_warning(corruption, straight, data_dir, tmp_path,
                                                                             capsys):
  workdir = _copy(straight("simclr"), tmp_path / "run")
  CORRUPTIONS[corruption](workdir / "checkpoints" / str(STEPS))
  run = loop.build(_config("simclr", data_dir))
  ckpt = ckpt_lib.Checkpointer(workdir / "checkpoints", max_to_keep=None)
  state = ckpt.restore_latest(run.init_state())
  ckpt.close()
  assert int(state.step) == STEPS - 2
  out = capsys.readouterr().out
  assert f"WARNING: checkpoint of step {STEPS} in {workdir / 'checkpoints'} is corrupt or truncated" in out, out
  assert f"restored the older checkpoint of step {STEPS - 2} instead" in out
  names = _ckpt_dirs(workdir)
  assert str(STEPS) not in names and any(n.startswith(f"{STEPS}.corrupt-") for n in names), names
  want = _leaves(straight("simclr"), STEPS - 2)
  got = dict(ocp.tree.to_flat_dict(ocp.tree.serialize_tree(jax.device_get(state), keep_empty_nodes=True)))
  for key in want:
    np.testing.assert_array_equal(got[key], want[key])


def test_every_checkpoint_corrupt_is_an_error_naming_them(straight, data_dir, tmp_path):
  workdir = _copy(straight("simclr"), tmp_path / "run")
  for step in restore.checkpoint_steps(workdir):
    CORRUPTIONS["deleted array data"](workdir / "checkpoints" / str(step))
  run = loop.build(_config("simclr", data_dir))
  ckpt = ckpt_lib.Checkpointer(workdir / "checkpoints", max_to_keep=None)
  with pytest.raises(ckpt_lib.NoGoodCheckpointError, match=r"no readable checkpoint in .*checkpoint of step 8 .*"
                                                           r"checkpoint of step 2 "):
    ckpt.restore_latest(run.init_state())
  ckpt.close()


def test_a_checkpoint_of_another_method_is_refused_naming_the_key_and_shapes(straight, data_dir, tmp_path):
  workdir = _copy(straight("simclr"), tmp_path / "run")
  config = _config("simclr", data_dir)
  config.model.projector_kwargs.out_dim = 12  # 8 in the checkpoint
  with pytest.raises(ckpt_lib.CheckpointMismatchError,
                     match=r"checkpoint of step 8 in .* does not fit this run: opt_state/0/mu/projector/\S+/bias has "
                           r"shape \(8,\) float32 in the checkpoint and \(12,\) float32 here; it was written by "
                           r"another model, method or optimizer"):
    loop.train_and_evaluate(config, workdir)
  with pytest.raises(ckpt_lib.CheckpointMismatchError, match=r"does not fit this run: it has no method_state/\S+"):
    loop.train_and_evaluate(_config("byol", data_dir), workdir)
  assert restore.checkpoint_steps(workdir)[-1] == STEPS  # refused, not moved aside


def test_interrupted_saves_are_removed_by_the_next_writer_at_once_and_never_by_a_reader(tmp_path):
  # What a kill during a save leaves (Orbax's temporary name, with or without a timestamp suffix).
  directory = tmp_path / "checkpoints"
  for name in ("6.orbax-checkpoint-tmp", "4.orbax-checkpoint-tmp-1733000000"):
    (directory / name / "default.orbax-checkpoint-tmp").mkdir(parents=True)
  reader = ckpt_lib.Checkpointer(directory, max_to_keep=None, read_only=True)
  assert reader.all_steps() == [] and len(list(directory.iterdir())) == 2  # maybe the saves of a live run
  reader.close()
  writer = ckpt_lib.Checkpointer(directory, max_to_keep=None)
  assert list(directory.iterdir()) == []  # gone before the constructor returns: no background deletion that a
  writer.close()                          # save of the same step could race with


def test_unwritable_workdir_is_named_before_training(data_dir, tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  with pytest.raises(ckpt_lib.CheckpointSaveError,
                     match=rf"workdir: cannot write to {blocker}/run \((FileExistsError|NotADirectoryError)"):
    loop.train_and_evaluate(_config("simclr", data_dir), blocker / "run")


def test_gs_workdir_without_google_cloud_storage_is_refused_before_any_work(monkeypatch):
  # No bucket is reachable here: the check must come before anything touches the path (or the data).
  monkeypatch.setitem(sys.modules, "google.cloud.storage", None)  # an import of it now raises ImportError
  monkeypatch.setattr(loop, "build", lambda config: pytest.fail("build ran before the workdir check"))
  with pytest.raises(ImportError, match=r"workdir: gs://bucket/run is on Google Cloud Storage, .*tensorboardX.*"
                                        r"pip install -e \.\[gcs\]"):
    loop.train_and_evaluate(_config("simclr", "/nonexistent"), "gs://bucket/run")


def test_disk_full_during_a_save_is_reported_and_nothing_is_declared_saved(straight, data_dir, tmp_path,
                                                                           monkeypatch, capsys):
  straight("simclr")
  real = ocp.CheckpointManager.save

  def full(self, step, *args, **kwargs):
    if step >= 4:
      raise OSError(errno.ENOSPC, "No space left on device", str(self.directory / str(step)))
    return real(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, "save", full)
  with pytest.raises(ckpt_lib.CheckpointSaveError,
                     match=rf"saving the checkpoint of step 4 to {tmp_path}/checkpoints failed \(OSError: \[Errno 28\] "
                           r"No space left on device.*\); the state of step 4 was NOT saved \(the last complete "
                           r"checkpoint is step 2\)"):
    loop.train_and_evaluate(_config("simclr", data_dir), tmp_path)
  assert restore.checkpoint_steps(tmp_path) == [2]
  assert "checkpoint of step 4 is in" not in capsys.readouterr().out


def test_a_failed_background_save_is_raised_by_the_next_wait(tmp_path, monkeypatch):
  ckpt = ckpt_lib.Checkpointer(tmp_path / "checkpoints", max_to_keep=None)

  class FakeState:  # only `.step` is read before the (patched) write
    step = np.int32(5)

  monkeypatch.setattr(ocp.CheckpointManager, "save", lambda *a, **k: True)
  monkeypatch.setattr(ocp.CheckpointManager, "check_for_errors",
                      lambda self: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
  with pytest.raises(ckpt_lib.CheckpointSaveError, match=r"\[Errno 28\] No space left on device.*NOT saved"):
    ckpt.save(FakeState())
    ckpt.wait()
  ckpt.close()


# --- Non-finite steps ---------------------------------------------------------------------------------------------

def test_finite_flags_name_the_first_nonfinite_leaf():
  grads = {"a": np.ones(3, np.float32), "b": {"c": np.array([1.0, np.inf], np.float32), "d": np.int32(1)},
           "e": np.array([np.nan], np.float32)}
  flags = np.asarray(step_lib.finite_flags(np.float32(1.0), grads))
  names = step_lib.nonfinite_leaf_names(grads)
  assert names == ["loss", "gradient of params['a']", "gradient of params['b']['c']", "gradient of params['e']"]
  assert flags.tolist() == [True, True, False, False]
  assert names[int(np.argmin(flags))] == "gradient of params['b']['c']"
  assert not np.asarray(step_lib.finite_flags(np.float32(np.nan), grads))[0]


def _nan_batches(monkeypatch, bad_steps):
  """Training batches whose inputs are NaN at `bad_steps` (0-based)."""
  real = loop.data.train_batches

  def batches(*args, start_step=0, **kwargs):
    for i, batch in enumerate(real(*args, start_step=start_step, **kwargs), start=start_step):
      if i in bad_steps:
        batch = {**batch, "x": batch["x"] * np.nan}
      yield batch

  monkeypatch.setattr(loop.data, "train_batches", batches)


def test_nonfinite_input_stops_naming_the_step_the_leaf_and_the_last_good_checkpoint(data_dir, tmp_path,
                                                                                   monkeypatch):
  _nan_batches(monkeypatch, {4})
  with pytest.raises(loop.NonFiniteLossError,
                     match=rf"non-finite loss at step 4; stopping \(the last good checkpoint is step 4 in "
                           rf"{tmp_path}/checkpoints; config.skip_nonfinite_steps=N skips up to N such steps"):
    loop.train_and_evaluate(_config("simclr", data_dir), tmp_path)
  assert restore.checkpoint_steps(tmp_path) == [2, 4]  # nothing non-finite was saved


def test_skip_nonfinite_steps_skips_a_bounded_number(straight, data_dir, tmp_path, monkeypatch, capsys):
  _nan_batches(monkeypatch, {2, 5})
  loop.train_and_evaluate(_config("simclr", data_dir, skip_nonfinite_steps=2), tmp_path / "two")
  lines = _train_lines(tmp_path / "two")
  assert [l["skipped_steps"] for l in lines] == [0, 0, 1, 1, 1, 2, 2, 2]
  assert all(np.isfinite(l["loss"]) for i, l in enumerate(lines) if i not in (2, 5))
  assert "skipped 1 step(s) with a non-finite loss or gradient by step 3 (1 of config.skip_nonfinite_steps=2" in (
      capsys.readouterr().out)
  reference = straight("simclr")
  got, want = _leaves(tmp_path / "two", 2), _leaves(reference, 2)
  for key in want:  # before the first bad step, the same run (the step with skipping compiles to other fusions)
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-7)
  final = _leaves(tmp_path / "two", STEPS)
  assert all(np.all(np.isfinite(v)) for v in final.values() if np.issubdtype(np.asarray(v).dtype, np.floating))

  with pytest.raises(loop.NonFiniteLossError,
                     match=r"2 steps had a non-finite loss or gradient, more than config.skip_nonfinite_steps=1 "
                           r"\(the last: non-finite loss at step 5\)"):
    loop.train_and_evaluate(_config("simclr", data_dir, skip_nonfinite_steps=1), tmp_path / "one")
