"""Metrics to `workdir/metrics.jsonl` (one JSON object per line) and TensorBoard events; process 0 writes."""
from __future__ import annotations

import json
import math
import numbers

from etils import epath
import jax
import numpy as np


def _plain(value):
  value = np.asarray(value)
  return value.item() if value.ndim == 0 else value.tolist()


class MetricWriter:
  """Appends `{"step": s, "kind": kind, **scalars}` lines; on resume, drops lines past the restored step."""

  def __init__(self, workdir: epath.PathLike, *, resume_step: int):
    self.path = epath.Path(workdir) / "metrics.jsonl"
    self._active = jax.process_index() == 0
    self._tb = None
    if not self._active:
      return
    if self.path.exists():
      # Lines written after the checkpoint we resume from would be written again: keep the log exact.
      kept = [l for l in self.path.read_text().splitlines() if l and json.loads(l)["step"] <= resume_step]
      self.path.write_text("".join(l + "\n" for l in kept))
    # tensorboardX writes event files without TensorBoard itself (which tensorflow-cpu no longer brings).
    import tensorboardX  # pylint: disable=g-import-not-at-top
    self._tb = tensorboardX.SummaryWriter(str(epath.Path(workdir) / "tensorboard"))

  def write(self, step: int, kind: str, scalars: dict) -> None:
    if not self._active:
      return
    record = {"step": int(step), "kind": kind}
    record.update({k: _plain(v) for k, v in scalars.items()})
    with self.path.open("a") as f:
      f.write(json.dumps(record) + "\n")
    for k, v in record.items():
      if k not in ("step", "kind") and isinstance(v, numbers.Number):
        self._tb.add_scalar(f"{kind}/{k}", v, global_step=int(step))
    self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def read_metrics(workdir: epath.PathLike) -> list[dict]:
  """Every line of `workdir/metrics.jsonl` as a dict (`step`, `kind` and the scalars); [] if there is none.

  Example:
    >>> import tempfile
    >>> workdir = tempfile.mkdtemp()
    >>> writer = MetricWriter(workdir, resume_step=0)
    >>> writer.write(10, "train", {"loss": 2.5, "learning_rate": np.float32(0.001)})
    >>> writer.write(20, "eval", {"knn_top1": 0.75}); writer.close()
    >>> read_metrics(workdir)
    [{'step': 10, 'kind': 'train', 'loss': 2.5, 'learning_rate': 0.0010000000474974513},
     {'step': 20, 'kind': 'eval', 'knn_top1': 0.75}]
  """
  path = epath.Path(workdir) / "metrics.jsonl"
  if not path.exists():
    return []
  return [json.loads(l) for l in path.read_text().splitlines() if l]


def train_seconds_from_metrics(workdir: epath.PathLike, step: int) -> float:
  """Training time up to `step`, from the lines of `metrics.jsonl`.

  The trainer writes the running training time (`train_seconds`, across resumptions; compilation, in-loop kNN and
  checkpoint saves included) into each train line and into a `checkpoint` line at each save, so the time of a
  checkpoint's step is exact. Between lines, steps are counted at the last train line's `steps_per_second`. Logs
  written before the trainer kept `train_seconds` are summed from the train lines' rates (each is its window's steps
  over its wall time; after a resumption the first window is shorter than its steps, so this overcounts).

  Example:
    >>> import json, tempfile, pathlib
    >>> workdir = pathlib.Path(tempfile.mkdtemp())
    >>> lines = [{"step": 2, "kind": "train", "steps_per_second": 0.5, "train_seconds": 4.5},
    ...          {"step": 3, "kind": "checkpoint", "train_seconds": 6.25},
    ...          {"step": 6, "kind": "train", "steps_per_second": 2.0, "train_seconds": 7.0}]
    >>> _ = (workdir / "metrics.jsonl").write_text("".join(json.dumps(l) + "\\n" for l in lines))
    >>> train_seconds_from_metrics(workdir, step=3), train_seconds_from_metrics(workdir, step=7)  # 7.0 + 1 / 2.0
    (6.25, 7.5)
    >>> lines = [{"step": 2, "kind": "train", "steps_per_second": 0.5},  # an older log: rates only
    ...          {"step": 6, "kind": "train", "steps_per_second": 2.0}]
    >>> _ = (workdir / "metrics.jsonl").write_text("".join(json.dumps(l) + "\\n" for l in lines))
    >>> train_seconds_from_metrics(workdir, step=6)  # 2 steps at 0.5/s, then 4 at 2/s
    6.0

  Args:
    workdir: the run's workdir.
    step: the last step to count.

  Returns:
    The seconds, or NaN where nothing up to `step` tells them (no line with `train_seconds` and no train line with
    a rate).
  """
  lines = [m for m in read_metrics(workdir) if m["step"] <= step]
  rates = [m for m in lines if m["kind"] == "train" and m.get("steps_per_second")]
  timed = [m for m in lines if m["kind"] in ("train", "checkpoint") and m.get("train_seconds") is not None]
  if timed:
    last = timed[-1]
    if last["step"] == step:
      return last["train_seconds"]
    return last["train_seconds"] + ((step - last["step"]) / rates[-1]["steps_per_second"] if rates else math.nan)
  train = [m for m in lines if m["kind"] == "train"]
  if not train or len(rates) < len(train):
    return math.nan
  seconds, previous = 0.0, 0
  for m in train:
    seconds += (m["step"] - previous) / m["steps_per_second"]
    previous = m["step"]
  return seconds + (step - previous) / train[-1]["steps_per_second"]
