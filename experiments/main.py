"""Train and evaluate a representation: the one script that defines flags.

  python experiments/main.py --config configs/simclr.py:mnist1d --workdir runs/simclr_mnist1d \
      --config.batch_size=512 --config.total_steps=5000
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `configs` beside `rl`

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file and variant, e.g. configs/simclr.py:mnist1d.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and the report go (local or gs://).")
flags.mark_flags_as_required(["config", "workdir"])


def train(config, workdir: str) -> int:
  """What `main` runs once the flags are parsed: joins a multi-process launch, trains, evaluates.

  Returns:
    The exit code: 0, or 143 / 130 when SIGTERM / SIGINT interrupted the run (after its checkpoint), as the signal
    would have.
  """
  from rl.train import loop  # pylint: disable=g-import-not-at-top  (after flags are parsed)
  from rl.train import mesh  # pylint: disable=g-import-not-at-top
  mesh.initialize_distributed()
  result = loop.train_and_evaluate(config, workdir)
  if "interrupted" in result:
    return 128 + {"SIGTERM": 15, "SIGINT": 2}.get(result["interrupted"]["signal"], 15)
  return 0


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # TFDS and Orbax log every file they touch at INFO
  code = train(_CONFIG.value, _WORKDIR.value)
  if code:  # checkpointed after SIGTERM/SIGINT: exit as the signal would (143 / 130)
    sys.exit(code)


if __name__ == "__main__":
  app.run(main)
