"""A run's workdir after (or during) training: its config, its checkpoints, a fresh evaluation of a checkpoint,
and a fork of the run into a new workdir.

* `read_config(workdir)`: the `ConfigDict` the trainer wrote to `workdir/config.json`.
* `restore_state(run, workdir, step)`: a checkpointed state on the trainer's objects (`rl.train.loop.build`), for
  evaluations outside the loop.
* `evaluate_checkpoint(workdir, config)`: `report.md`, `results.json` and the plots again, with the trainer's
  own final evaluation (`loop.final_evaluation`), e.g. for a run that was interrupted before it ended.
* `fork_run(src, dst, step)`: copies a checkpoint (and the metrics up to it) into a new workdir, where the
  trainer resumes from it, e.g. with other data or more steps.
"""
from __future__ import annotations

import copy
import json
from typing import Any

from etils import epath
import ml_collections

from rl.train import checkpoint as ckpt_lib
from rl.train import loop
from rl.train import writer as writer_lib
from rl.train.state import TrainState


def _workdir(workdir: epath.PathLike) -> epath.Path:
  workdir = epath.Path(workdir)
  return workdir if "://" in str(workdir) else workdir.resolve()  # Orbax wants absolute paths


def _tuples(value: Any) -> Any:
  """JSON has no tuples: every list of the trainer's config was a tuple (views, view_sizes, knn_ks, ...)."""
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  return value


def _fill(config: ml_collections.ConfigDict, values: dict) -> None:
  """Sets `values` on `config` in place, keeping the types of fields that `config` already has."""
  for key, value in values.items():
    current = config.get(key)
    if isinstance(value, dict) and isinstance(current, ml_collections.ConfigDict):
      _fill(current, value)
    elif isinstance(value, dict):
      config[key] = ml_collections.ConfigDict()
      _fill(config[key], value)
    elif value is None and key not in config:
      # A placeholder keeps the key overridable from the command line (a plain None field is not).
      config[key] = ml_collections.config_dict.placeholder(object)
    else:
      try:
        config[key] = value
      except TypeError:  # the template's type differs from the run's (e.g. None where it had a value)
        del config[key]
        config[key] = value


def config_from_json(text: str, template: ml_collections.ConfigDict | None = None) -> ml_collections.ConfigDict:
  """Rebuilds a config from the trainer's `config.json` (`ConfigDict.to_json_best_effort`).

  Lists become tuples again. Keys of `template` (e.g. `configs.common.base()`) keep their types, so a None
  placeholder such as `data_dir` stays overridable as a str; other None values become `placeholder(object)`.

  Example:
    >>> from configs import common
    >>> config = config_from_json('{"method": "simclr", "batch_size": 64, "augment": {"views": ["simclr", "simclr"]}}')
    >>> config.method, config.batch_size, config.augment.views  # lists become tuples again
    ('simclr', 64, ('simclr', 'simclr'))
    >>> config = config_from_json('{"data_dir": null}', template=common.base())
    >>> config.data_dir = "/data/tfds"  # the template keeps data_dir a str placeholder, so it can be set

  Args:
    text: the JSON text.
    template: a config whose keys and field types seed the result; it is not modified.

  Returns:
    A new, unlocked `ConfigDict` with the values of `text`.

  Raises:
    ValueError: if `text` is not a JSON object.
  """
  values = json.loads(text)
  if not isinstance(values, dict):
    raise ValueError(f"text: expected a JSON object (the trainer's config.json), got {type(values).__name__}")
  config = ml_collections.ConfigDict() if template is None else copy.deepcopy(template)
  config.unlock()
  _fill(config, _tuples(values))
  return config


def read_config(workdir: epath.PathLike,
                template: ml_collections.ConfigDict | None = None) -> ml_collections.ConfigDict:
  """`config_from_json` of `workdir/config.json`.

  Example:
    >>> import pathlib, tempfile
    >>> from configs import simclr as simclr_config
    >>> workdir = pathlib.Path(tempfile.mkdtemp())
    >>> config = simclr_config.get_config("smoke")
    >>> _ = (workdir / "config.json").write_text(config.to_json_best_effort())  # as the trainer does
    >>> read_config(workdir).method, read_config(workdir).total_steps
    ('simclr', 6)
    >>> read_config(tempfile.mkdtemp())
    Traceback (most recent call last):
    FileNotFoundError: workdir: no config.json in ...; is it the workdir of a training run (experiments/main.py
      writes it when it starts)?

  Args:
    workdir: a run's workdir.
    template: see `config_from_json`.

  Returns:
    The run's config.

  Raises:
    FileNotFoundError: `workdir` has no `config.json` (it was not written by the trainer).
  """
  path = epath.Path(workdir) / "config.json"
  if not path.exists():
    raise FileNotFoundError(f"workdir: no config.json in {workdir}; is it the workdir of a training run "
                            f"(experiments/main.py writes it when it starts)?")
  return config_from_json(path.read_text(), template)


def checkpoint_steps(workdir: epath.PathLike) -> list[int]:
  """Steps of the complete checkpoints in `workdir/checkpoints`, ascending ([] if there is none).

  Example:
    >>> import tempfile
    >>> from rl.train.state import TrainState
    >>> workdir = tempfile.mkdtemp()
    >>> state = TrainState.create(params={"w": jnp.zeros(3)}, opt_state=(), method_state={}, probe_params={},
    ...                           probe_opt_state=())  # a stand-in for a run's state
    >>> ckpt = rl.train.checkpoint.Checkpointer(f"{workdir}/checkpoints", max_to_keep=None)
    >>> for step in (3, 6):  # as the trainer saves them
    ...   _ = ckpt.save(state.replace(step=jnp.int32(step)))
    >>> ckpt.wait(); ckpt.close()
    >>> checkpoint_steps(workdir), checkpoint_steps(tempfile.mkdtemp())
    ([3, 6], [])
  """
  directory = _workdir(workdir) / "checkpoints"
  if not directory.exists():
    return []
  ckpt = ckpt_lib.Checkpointer(directory, max_to_keep=None, read_only=True)
  try:
    return ckpt.all_steps()
  finally:
    ckpt.close()


def _check_step(workdir: epath.Path, step: int | None) -> int:
  steps = checkpoint_steps(workdir)
  if not steps:
    raise FileNotFoundError(f"workdir: no complete checkpoint in {workdir / 'checkpoints'}")
  if step is None:
    return steps[-1]
  if step not in steps:
    raise ValueError(f"step: no checkpoint of step {step} in {workdir / 'checkpoints'}; available steps: "
                     f"{', '.join(map(str, steps))}")
  return step


def restore_state(run: loop.Run, workdir: epath.PathLike, step: int | None = None) -> TrainState:
  """Restores a checkpoint of `workdir` onto the trainer's state template.

  Example:
    >>> import tempfile
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")
    >>> workdir = tempfile.mkdtemp()
    >>> run = rl.train.loop.build(config)
    >>> ckpt = rl.train.checkpoint.Checkpointer(f"{workdir}/checkpoints", max_to_keep=None)
    >>> for step in (3, 6):  # checkpoints of the untrained state, as the trainer would save them
    ...   _ = ckpt.save(run.init_state().replace(step=jnp.int32(step)))
    >>> ckpt.wait(); ckpt.close()
    >>> int(restore_state(run, workdir).step), int(restore_state(run, workdir, step=3).step)
    (6, 3)
    >>> restore_state(run, workdir, step=4)
    Traceback (most recent call last):
    ValueError: step: no checkpoint of step 4 in .../checkpoints; available steps: 3, 6

  Args:
    run: `rl.train.loop.build` of the run's config.
    workdir: the run's workdir.
    step: the checkpoint's step; None for the newest.

  Returns:
    The restored `TrainState`, replicated on `run.mesh`.

  Raises:
    FileNotFoundError: no complete checkpoint (the message names the directory).
    ValueError: no checkpoint of `step` (the message lists the available steps).
  """
  workdir = _workdir(workdir)
  step = _check_step(workdir, step)
  ckpt = ckpt_lib.Checkpointer(workdir / "checkpoints", max_to_keep=None, read_only=True)
  try:
    return ckpt.restore(run.init_state(), step)
  finally:
    ckpt.close()


def evaluate_checkpoint(workdir: epath.PathLike, config: ml_collections.ConfigDict, *,
                        step: int | None = None) -> dict:
  """Re-runs the trainer's final evaluation on a checkpoint: `report.md`, `results.json` and the plots.

  `metrics.jsonl` is left as the trainer wrote it (no "final" line is added); the report's training time is
  estimated from it (`rl.train.writer.train_seconds_from_metrics`).

  Example:
    >>> import tempfile
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")  # 6 steps, a checkpoint every 3
    >>> workdir = tempfile.mkdtemp()
    >>> config.eval.final, config.eval.every_steps, config.eval.baselines, config.eval.tsne_points = False, 0, False, 0
    >>> _ = rl.train.loop.train_and_evaluate(config, workdir)
    [rl] starting at step 0/6 on ... device(s); workdir ...
    [rl] step 6/6 loss ...
    >>> result = evaluate_checkpoint(workdir, read_config(workdir), step=3)
    [rl] evaluating the checkpoint of step 3 in .../checkpoints
    [rl] results (.../report.md):
    | representation | linear_probe_accuracy | knn_5_accuracy | knn_20_accuracy | ...
    >>> [row["representation"] for row in result["rows"]]
    ['simclr (trained)', 'simclr (projection head output)']

  Args:
    workdir: the run's workdir.
    config: the run's config (`read_config(workdir)`, possibly with overrides such as `data_dir`).
    step: the checkpoint's step; None for the newest.

  Returns:
    {'rows': the result rows, as in `results.json`}.

  Raises:
    FileNotFoundError: no complete checkpoint (the message names the directory).
    ValueError: no checkpoint of `step` (the message lists the available steps).
  """
  workdir = _workdir(workdir)
  step = _check_step(workdir, step)  # before building anything: a wrong workdir fails at once
  run = loop.build(config)
  state = restore_state(run, workdir, step)
  print(f"[rl] evaluating the checkpoint of step {step} in {workdir / 'checkpoints'}", flush=True)
  return loop.final_evaluation(run, state, workdir, train_seconds=writer_lib.train_seconds_from_metrics(workdir, step))


def _copy_tree(src: epath.Path, dst: epath.Path) -> None:
  dst.mkdir(parents=True, exist_ok=True)
  for child in src.iterdir():
    if child.is_dir():
      _copy_tree(child, dst / child.name)
    else:
      child.copy(dst / child.name)


def fork_run(src: epath.PathLike, dst: epath.PathLike, *, step: int | None = None) -> int:
  """Copies the checkpoint of `step` of run `src`, and its metrics up to `step`, into the new workdir `dst`.

  Training in `dst` then resumes at `step` (with whatever config it is given: more steps, other classes), and
  `dst/metrics.jsonl` continues the log of `src`.

  Example:
    >>> import json, tempfile
    >>> from rl.train.state import TrainState
    >>> workdir = tempfile.mkdtemp()
    >>> state = TrainState.create(params={"w": jnp.zeros(3)}, opt_state=(), method_state={}, probe_params={},
    ...                           probe_opt_state=())  # a stand-in for a run's state
    >>> ckpt = rl.train.checkpoint.Checkpointer(f"{workdir}/checkpoints", max_to_keep=None)
    >>> for step in (3, 6):  # as the trainer saves them
    ...   _ = ckpt.save(state.replace(step=jnp.int32(step)))
    >>> ckpt.wait(); ckpt.close()
    >>> lines = [{"step": s, "kind": "train", "loss": 6.0 - s / 10} for s in (2, 4, 6)] + [{"step": 6, "kind": "final"}]
    >>> with open(f"{workdir}/metrics.jsonl", "w") as f:
    ...   _ = f.write("".join(json.dumps(l) + "\\n" for l in lines))
    >>> fork = tempfile.mkdtemp()
    >>> fork_run(workdir, fork, step=3)
    3
    >>> checkpoint_steps(fork), [(m["step"], m["kind"]) for m in rl.train.writer.read_metrics(fork)]
    ([3], [(2, 'train')])
    >>> fork_run(workdir, fork)
    Traceback (most recent call last):
    FileExistsError: dst: .../checkpoints already holds checkpoints (steps 3); fork into an empty workdir.

  Args:
    src: the workdir to fork.
    dst: the new workdir; it must hold no checkpoint yet.
    step: the checkpoint's step; None for the newest.

  Returns:
    The step of the copied checkpoint.

  Raises:
    FileNotFoundError: `src` has no complete checkpoint.
    ValueError: `src` has no checkpoint of `step`.
    FileExistsError: `dst` already holds checkpoints.
  """
  src, dst = _workdir(src), _workdir(dst)
  step = _check_step(src, step)
  existing = checkpoint_steps(dst)
  if existing:
    raise FileExistsError(f"dst: {dst / 'checkpoints'} already holds checkpoints (steps "
                          f"{', '.join(map(str, existing))}); fork into an empty workdir.")
  tmp = dst / "checkpoints" / f"{step}.fork-tmp"
  _copy_tree(src / "checkpoints" / str(step), tmp)
  tmp.rename(dst / "checkpoints" / str(step))  # Orbax lists the step only once it is complete
  lines = [m for m in writer_lib.read_metrics(src) if m["step"] <= step and m["kind"] != "final"]
  (dst / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
  return step
