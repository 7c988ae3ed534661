"""Re-evaluate a finished or interrupted run: the trainer's final evaluation on its newest (or a given) checkpoint.

  python experiments/evaluate.py --workdir runs/simclr_mnist1d [--step 2500] [--config.eval.tsne_points=0]

Reads `WORKDIR/config.json` (written by the trainer), restores the checkpoint and rewrites `report.md`,
`results.json` and the plots. `--config.KEY=VALUE` overrides keys of the run's config (e.g. `data_dir` on another
machine, or evaluation settings); `metrics.jsonl` is left as the trainer wrote it.
"""
from __future__ import annotations

import os
import sys
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `configs` beside `rl`

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from configs import common  # noqa: E402


def main(argv: Sequence[str]) -> None:
  """Parses `argv` (`[program, --workdir=W, --step=N, --config.KEY=VALUE, ...]`) and re-evaluates the run.

  The flags live in a private `FlagValues`, so `main` can be called more than once in one process (tests).

  Args:
    argv: the command line, program name first.

  Raises:
    app.UsageError: no `--workdir`, or stray arguments.
    FileNotFoundError: no `config.json`, or no complete checkpoint (the message names the directory).
    ValueError: no checkpoint of `--step` (the message lists the available steps), or an unknown config key.
  """
  fv = flags.FlagValues()
  flags.DEFINE_string("workdir", None, "Workdir of the run (local or gs://).", flag_values=fv)
  flags.DEFINE_integer("step", None, "Checkpoint step to evaluate; default: the newest.", flag_values=fv)
  rest = fv(list(argv), known_only=True)
  if not fv.workdir:
    raise app.UsageError("--workdir is required: the workdir of a training run.")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # TFDS and Orbax log every file they touch at INFO
  from rl.train import mesh  # pylint: disable=g-import-not-at-top  (after flags are parsed)
  from rl.train import restore  # pylint: disable=g-import-not-at-top

  config = restore.read_config(fv.workdir, template=common.base())
  config_fv = flags.FlagValues()
  try:
    config_flags.DEFINE_config_dict("config", config, flag_values=config_fv, lock_config=True, sys_argv=rest)
  except (AttributeError, KeyError) as e:
    raise ValueError(f"--config: an override names a key that the run's config lacks ({e}).") from None
  leftover = config_fv(rest)
  if len(leftover) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(leftover[1:])}")
  mesh.initialize_distributed()
  restore.evaluate_checkpoint(fv.workdir, config_fv.config, step=fv.step)


if __name__ == "__main__":
  app.run(main, flags_parser=lambda argv: flags.FLAGS(argv, known_only=True))
