"""Metrics to `workdir/metrics.jsonl` (one JSON object per line) and TensorBoard events; process 0 writes."""
from __future__ import annotations

import json
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
