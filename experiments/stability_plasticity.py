"""Stability and plasticity of a representation across a class-incremental split (Kim & Han, CVPR 2023,
https://arxiv.org/abs/2304.01663).

  python experiments/stability_plasticity.py --config configs/simclr.py:mnist1d --workdir runs/sp_simclr \
      --old 0,1,2,3,4 --steps_old 2500 --steps_new 2500

Phase 1 pretrains on the old classes only (`config.data_classes`) for `steps_old` steps in WORKDIR/phase1.
Phase 2 forks phase 1's final checkpoint into WORKDIR/phase2 (`rl.train.restore.fork_run`) and the trainer
resumes it on the new classes (all the others) up to `steps_old + steps_new`, with phase 1's parameters and
optimizer state. Phase 2's learning-rate schedule is the config's over `steps_old + steps_new` steps, read from
step `steps_old` on: the rate restarts from that schedule's value there (phase 1's own schedule ended at 0).
Each phase writes the trainer's usual report (all classes) in its workdir; a rerun resumes an unfinished phase.

Then a linear probe is fit on frozen features of the old classes only and of the new classes only
(`rl.eval.class_subset_probe`) for the random encoder (reference), the encoder after phase 1 and after phase 2;
the changes in phase 2 are the stability (old classes) and the plasticity (new classes). The table goes to
WORKDIR/stability_plasticity.md and stdout, the numbers to WORKDIR/stability_plasticity.json.
"""
from __future__ import annotations

import copy
import json
import os
import sys
from typing import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `configs` beside `rl`

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from etils import epath  # noqa: E402
import ml_collections  # noqa: E402
from ml_collections import config_flags  # noqa: E402


def split_classes(old: Sequence[int], num_classes: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """(old, new): the given old class ids, sorted, and every other class id.

  Raises:
    ValueError: `old` repeats or leaves [0, num_classes), or leaves fewer than 2 old or 2 new classes.
  """
  old = tuple(sorted(int(c) for c in old))
  if len(set(old)) != len(old) or any(not 0 <= c < num_classes for c in old):
    raise ValueError(f"--old: expected distinct class ids in [0, {num_classes}), got {list(old)}")
  new = tuple(c for c in range(num_classes) if c not in old)
  if len(old) < 2 or len(new) < 2:
    raise ValueError(f"--old: a probe needs at least 2 old and 2 new classes; got old={list(old)}, "
                     f"new={list(new)}")
  return old, new


def _phase(config: ml_collections.ConfigDict, workdir: epath.Path, classes, total_steps: int) -> None:
  """Trains (or resumes) one phase unless its final checkpoint and report already exist."""
  from rl.train import loop, restore  # pylint: disable=g-import-not-at-top
  if total_steps in restore.checkpoint_steps(workdir) and (workdir / "results.json").exists():
    print(f"[rl] {workdir} is complete (step {total_steps}); not training it again", flush=True)
    return
  config = copy.deepcopy(config)
  with config.unlocked():
    config.data_classes = tuple(classes)
    config.total_steps = total_steps
  loop.train_and_evaluate(config, workdir)


def run(config: ml_collections.ConfigDict, workdir: epath.PathLike, *, old: Sequence[int], steps_old: int,
        steps_new: int) -> dict:
  """Both phases, the probes and the report; returns what `stability_plasticity.json` holds.

  Args:
    config: the training config (its `total_steps` and `data_classes` are set per phase).
    workdir: where phase1/, phase2/ and the report go.
    old: class ids of phase 1; phase 2 trains on every other class.
    steps_old: training steps of phase 1.
    steps_new: training steps of phase 2.

  Returns:
    {'old_classes', 'new_classes', 'steps_old', 'steps_new', 'rows': [{'representation', 'step', 'old',
    'new', 'all'}], 'measures': {'stability', 'plasticity', 'plasticity_vs_random', 'forward_transfer',
    'cka_phase1_phase2'}}.

  Raises:
    ValueError: bad `old` or step counts, or a config that already sets `data_classes`.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from rl import data  # pylint: disable=g-import-not-at-top
  from rl import eval as rl_eval  # pylint: disable=g-import-not-at-top
  from rl.train import evaluate, loop, restore  # pylint: disable=g-import-not-at-top

  for name, steps in (("--steps_old", steps_old), ("--steps_new", steps_new)):
    if not isinstance(steps, int) or steps < 1:
      raise ValueError(f"{name}: expected a positive number of steps, got {steps!r}")
  if config.get("data_classes") is not None:
    raise ValueError(f"config.data_classes: must be unset (the phases set it from --old); got "
                     f"{config.data_classes}")
  old, new = split_classes(old, data.dataset_info(config.dataset, image_size=config.image_size).num_classes)
  workdir = epath.Path(workdir)
  if "://" not in str(workdir):
    workdir = workdir.resolve()
  total = steps_old + steps_new
  _phase(config, workdir / "phase1", old, steps_old)
  if not restore.checkpoint_steps(workdir / "phase2"):
    restore.fork_run(workdir / "phase1", workdir / "phase2", step=steps_old)
  _phase(config, workdir / "phase2", new, total)

  config = copy.deepcopy(config)
  with config.unlocked():
    config.total_steps = total
  probe_run = loop.build(config)
  states = [("random encoder (reference)", probe_run.init_state()),
            (f"after phase 1: {steps_old} steps on old classes", restore.restore_state(
                probe_run, workdir / "phase1", steps_old)),
            (f"after phase 2: +{steps_new} steps on new classes", restore.restore_state(
                probe_run, workdir / "phase2", total))]
  rows, test_features = [], []
  for name, state in states:
    train = evaluate.extract(probe_run.embed, state.params, state.method_state, config,
                             probe_run.info.train_split, sharding=probe_run.sharding,
                             max_examples=config.eval.max_train_examples)
    test = evaluate.extract(probe_run.embed, state.params, state.method_state, config,
                            probe_run.info.test_split, sharding=probe_run.sharding)
    accs = rl_eval.old_new_accuracies(train.features, train.labels, test.features, test.labels, old=old, new=new,
                                      seed=config.seed)
    accs["all"] = rl_eval.class_subset_probe(train.features, train.labels, test.features, test.labels,
                                             classes=old + new, seed=config.seed)["accuracy"]
    rows.append({"representation": name, "step": int(state.step), **accs})
    test_features.append(test.features)
  measures = rl_eval.stability_plasticity(*rows)
  measures["cka_phase1_phase2"] = rl_eval.linear_cka(test_features[1], test_features[2])
  result = {"method": config.method, "dataset": config.dataset, "old_classes": list(old), "new_classes": list(new),
            "steps_old": steps_old, "steps_new": steps_new, "rows": rows, "measures": measures}
  if jax.process_index() == 0:
    (workdir / "stability_plasticity.json").write_text(json.dumps(result, indent=2))
    text = _report(result)
    (workdir / "stability_plasticity.md").write_text(text)
    print(f"\n[rl] {workdir / 'stability_plasticity.md'}:\n{text}", flush=True)
  return result


def _report(result: dict) -> str:
  from rl import eval as rl_eval  # pylint: disable=g-import-not-at-top
  m = result["measures"]
  columns = {"old": f"old classes {result['old_classes']}", "new": f"new classes {result['new_classes']}",
             "all": "all classes"}
  rows = [{"representation": r["representation"], **{columns[k]: r[k] for k in columns}} for r in result["rows"]]
  rows.append({"representation": "change in phase 2", columns["old"]: m["stability"],
               columns["new"]: m["plasticity"]})
  table = rl_eval.markdown_table(rows, ["representation", *columns.values()], float_format=".4f")
  return (f"# Stability and plasticity: {result['method']} on {result['dataset']}\n\n"
          f"Linear-probe test accuracy on frozen features, the probe fit and tested on the old classes only and on "
          f"the new classes only (Kim & Han, CVPR 2023). Phase 1 pretrains on the old classes for "
          f"{result['steps_old']} steps; phase 2 continues on the new classes for {result['steps_new']} steps.\n\n"
          f"{table}\n\n"
          f"- stability (old-class accuracy, phase 2 - phase 1; < 0 is forgetting): {m['stability']:+.4f}\n"
          f"- plasticity (new-class accuracy, phase 2 - phase 1): {m['plasticity']:+.4f}\n"
          f"- plasticity against the random encoder (new classes, phase 2 - random): "
          f"{m['plasticity_vs_random']:+.4f}\n"
          f"- forward transfer (new classes, phase 1 - random): {m['forward_transfer']:+.4f}\n"
          f"- linear CKA of the test features after phase 1 and after phase 2: {m['cka_phase1_phase2']:.4f}\n")


def main(argv: Sequence[str]) -> None:
  """Parses `argv` (`[program, --config=FILE:VARIANT, --workdir=W, --old=0,1,..., ...]`) and runs `run`.

  Args:
    argv: the command line, program name first.

  Raises:
    app.UsageError: a missing `--config` or `--workdir`, or stray arguments.
  """
  fv = flags.FlagValues()
  config_flag = config_flags.DEFINE_config_file(
      "config", None, "Config file and variant, e.g. configs/simclr.py:mnist1d.", flag_values=fv,
      lock_config=True, sys_argv=list(argv))
  flags.DEFINE_string("workdir", None, "Where phase1/, phase2/ and the report go.", flag_values=fv)
  flags.DEFINE_list("old", ["0", "1", "2", "3", "4"], "Class ids of phase 1; phase 2 gets the others.",
                    flag_values=fv)
  flags.DEFINE_integer("steps_old", None, "Steps of phase 1; default: half of config.total_steps.",
                       flag_values=fv)
  flags.DEFINE_integer("steps_new", None, "Steps of phase 2; default: the rest of config.total_steps.",
                       flag_values=fv)
  leftover = fv(list(argv))
  if len(leftover) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(leftover[1:])}")
  if fv["config"].value is None or not fv.workdir:
    raise app.UsageError("--config and --workdir are required.")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # TFDS and Orbax log every file they touch at INFO
  try:
    old = [int(c) for c in fv.old]
  except ValueError:
    raise app.UsageError(f"--old: expected comma-separated class ids, got {','.join(fv.old)}") from None
  config = config_flag.value
  steps_old = fv.steps_old if fv.steps_old is not None else config.total_steps // 2
  steps_new = fv.steps_new if fv.steps_new is not None else config.total_steps - steps_old
  from rl.train import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
  mesh_lib.initialize_distributed()
  run(config, fv.workdir, old=old, steps_old=steps_old, steps_new=steps_new)


if __name__ == "__main__":
  app.run(main, flags_parser=lambda argv: flags.FLAGS(argv, known_only=True))
