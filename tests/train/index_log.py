"""Logs the dataset positions (`index`) of every host batch a process's pipeline yields, one JSON line per batch.

Used by test_multiprocess.py in the test process and, through its driver script, in the launched processes.
"""
import json

from rl.data import pipeline


def install(path) -> None:
  """Wraps `rl.data.pipeline.host_train_batches` so that every batch it yields is logged to `path`."""
  real = pipeline.host_train_batches

  def logged(*args, **kwargs):
    for batch in real(*args, **kwargs):
      with open(path, "a") as f:
        f.write(json.dumps({"process_index": kwargs["process_index"], "process_count": kwargs["process_count"],
                            "index": batch["index"].tolist()}) + "\n")
      yield batch

  pipeline.host_train_batches = logged
