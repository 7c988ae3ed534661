"""`train_and_evaluate(config, workdir)`: the one training loop, for every method and dataset.

It reads top to bottom in stages, after big_vision's `train.py`: the workdir; the mesh, the input, the method and
its optimizers (`build`: one `Run`, which restore, evaluation and the benchmarks share); restore; the step; the
loop; the final evaluation. It never branches on the method: everything method-specific is behind
`rl.methods.Method`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from typing import Any, Callable, Iterator

from etils import epath
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm

from rl import data
from rl import methods
from rl.data import augment
from rl.methods.base import Method
from rl.train import checkpoint as ckpt_lib
from rl.train import evaluate
from rl.train import mesh as mesh_lib
from rl.train import optim
from rl.train import preemption
from rl.train import step as step_lib
from rl.train import validate
from rl.train import writer as writer_lib
from rl.train.state import TrainState


class NonFiniteLossError(RuntimeError):
  """Raised when a loss or gradient stops being finite."""


def _progress(start: int, total: int):
  if sys.stderr.isatty():
    return tqdm.tqdm(total=total, initial=start, dynamic_ncols=True, unit="step")
  return None


def _check_finite(state: TrainState, ckpt: ckpt_lib.Checkpointer, *, skip_limit: int) -> int:
  """Raises `NonFiniteLossError` for a non-finite step (beyond `skip_limit` skipped ones); returns the skip count."""
  bad, leaf, skipped = (int(v) for v in jax.device_get((state.nonfinite_step, state.nonfinite_leaf,
                                                       state.skipped_steps)))
  if (skip_limit == 0 and bad >= 0) or skipped > skip_limit:
    ckpt.wait()  # the saves in flight finish, so the checkpoint named below is on disk
    names = step_lib.nonfinite_leaf_names(state.params)
    what = f"non-finite {names[leaf] if 0 <= leaf < len(names) else 'loss or gradient'} at step {bad}"
    last = ckpt.latest_step()
    where = (f"the last good checkpoint is step {last} in {ckpt.directory}" if last is not None
             else "no checkpoint was written yet")
    if skip_limit:
      raise NonFiniteLossError(f"{skipped} steps had a non-finite loss or gradient, more than "
                               f"config.skip_nonfinite_steps={skip_limit} (the last: {what}); stopping ({where}).")
    raise NonFiniteLossError(f"{what}; stopping ({where}; config.skip_nonfinite_steps=N skips up to N such "
                             f"steps instead).")
  return skipped


def _writable_workdir(workdir: epath.Path) -> None:
  """Fails at once, naming the path, if the workdir cannot be created or written (not at the first save)."""
  if str(workdir).startswith("gs://"):
    try:  # tensorboardX writes gs:// event files through it; without it the run would fail after data preparation
      import google.cloud.storage  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError as e:
      raise ImportError(f"workdir: {workdir} is on Google Cloud Storage, and the TensorBoard writer (tensorboardX) "
                        "needs the google-cloud-storage package for gs:// paths; install it on every host "
                        "(`pip install -e .[gcs]` or `pip install google-cloud-storage`).") from e
  # One probe per process: the processes of a multi-host run share the workdir, and one's unlink must not remove
  # the file another is about to unlink.
  probe = workdir / f".rl-write-test-{jax.process_index()}-{os.getpid()}"
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe.write_text("ok")
    probe.unlink()
  except OSError as e:
    raise ckpt_lib.CheckpointSaveError(
        f"workdir: cannot write to {workdir} ({type(e).__name__}: {e}); pick a writable --workdir.") from e


@dataclasses.dataclass(frozen=True)
class Run:
  """What the trainer builds from a config (`build`), shared by the loop, restore, evaluation and the benchmarks.

  Attributes:
    config: the run's config (`num_train_examples` filled in from the data).
    mesh: the 1-D 'data' mesh over every device of every host.
    sharding: how a global batch is laid out on it (split on the leading axis).
    info: the data set's `DatasetInfo` (input kind and shape, classes, splits).
    method: the `Method` of `config.method`, computing in `config.compute_dtype`.
    recipes: one augmentation recipe per training view.
    view_sizes: one output size per training view (the one place they are normalised; None keeps the input size).
    eval_recipe: the deterministic evaluation view.
    out_size: the evaluation view's size (images; None for signals).
    tx: the optimizer of the method's parameters.
    probe_tx: the optimizer of the online linear probe.
    embed: `embed(params, method_state, x) -> features` of evaluation views, jitted.
  """
  config: ml_collections.ConfigDict
  mesh: jax.sharding.Mesh
  sharding: jax.sharding.Sharding
  info: data.DatasetInfo
  method: Method
  recipes: tuple
  view_sizes: tuple
  eval_recipe: Any
  out_size: int | None
  tx: optax.GradientTransformation
  probe_tx: optax.GradientTransformation
  embed: Callable

  def init_state(self) -> TrainState:
    """The step-0 `TrainState`, replicated on the mesh; deterministic in `config.seed`.

    The parameters are drawn from `fold_in(key(config.seed), 2**31 - 1)`, a key that no training step uses; the
    online probe starts at zero. It is also the untrained, randomly initialised encoder of the baseline row.
    """
    sample = jnp.zeros((2,) + tuple(self.info.shape), jnp.uint8 if self.info.kind == "image" else jnp.float32)
    sample_view = augment.eval_view(sample, self.eval_recipe, out_size=self.out_size)
    init_key = jax.random.fold_in(jax.random.key(self.config.seed), 2**31 - 1)  # never a step index
    params, method_state = self.method.init(init_key, sample_view)
    feature_dim = jax.eval_shape(self.method.embed, params, method_state, sample_view).shape[-1]
    probe_params = step_lib.init_probe(feature_dim, self.info.num_classes)
    state = TrainState.create(params=params, opt_state=self.tx.init(params), method_state=method_state,
                              probe_params=probe_params, probe_opt_state=self.probe_tx.init(probe_params))
    return jax.device_put(state, mesh_lib.replicated(self.mesh))

  def train_step(self, *, skip_nonfinite: bool = False) -> Callable:
    """The jitted, data-parallel `step(state, batch) -> (state, metrics)` (`rl.train.step.make_train_step`)."""
    return step_lib.make_train_step(
        self.method, self.tx, self.probe_tx, mesh=self.mesh, seed=self.config.seed, recipes=self.recipes,
        view_sizes=self.view_sizes, num_classes=self.info.num_classes,
        schedule=optim.learning_rate_schedule(self.config, self.config.total_steps), skip_nonfinite=skip_nonfinite)

  def train_batches(self, start_step: int) -> Iterator[dict[str, jax.Array]]:
    """The training stream from `start_step` on (batch s depends only on the seed and s)."""
    c = self.config
    return data.train_batches(c.dataset, global_batch_size=c.batch_size, seed=c.seed, sharding=self.sharding,
                              start_step=start_step, split=self.info.pretrain_split, data_dir=c.data_dir,
                              image_size=c.image_size, classes=c.get("data_classes"),
                              data_shards=c.get("data_shards"))


def _prepare_data(config: ml_collections.ConfigDict, info: data.DatasetInfo) -> None:
  """Prepares the data set on every process and fills in `config.num_train_examples`."""
  # Process 0 first: processes that share a data dir would otherwise generate an embedded data set at once and
  # collide on its final rename. The others still prepare after it (a host may have a data dir of its own).
  if jax.process_index() == 0:
    data.prepare(config.dataset, data_dir=config.data_dir)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("rl: data prepared")
    if jax.process_index() != 0:
      data.prepare(config.dataset, data_dir=config.data_dir)
  if config.num_train_examples is None:
    # Methods with per-example memory (NPID's bank, ODC's labels) size it from here; batch["index"] indexes it.
    with config.unlocked():
      config.num_train_examples = data.num_examples(config.dataset, info.pretrain_split, data_dir=config.data_dir)


def _views(config: ml_collections.ConfigDict, info: data.DatasetInfo, method: Method):
  """(training recipes, one size per view, eval recipe, eval size): the one place view sizes are normalised.

  `check_config` has already checked that `augment.view_sizes`, when given, has one size per view.
  """
  if len(config.augment.views) != method.num_views:
    raise ValueError(f"config.augment.views has {len(config.augment.views)} recipes; method {method.name!r} needs "
                     f"{method.num_views} views.")
  overrides = config.augment.overrides.to_dict()
  recipes = tuple(augment.get_recipe(name, **overrides) for name in config.augment.views)
  if info.kind == "image":
    eval_recipe = augment.get_recipe("none", **{k: v for k, v in overrides.items() if k in ("mean", "std")})
    out_size = config.augment.out_size
  else:
    eval_recipe, out_size = augment.get_recipe("none_signal"), None
  view_sizes = config.augment.view_sizes
  return recipes, tuple(view_sizes) if view_sizes is not None else (out_size,) * len(recipes), eval_recipe, out_size


def build(config: ml_collections.ConfigDict, *, mesh: jax.sharding.Mesh | None = None,
          prepare_data: bool = True) -> Run:
  """The mesh, the input, the method and its optimizers of `config`, without training (see `Run`).

  Checks the config first (`rl.train.validate.check_config`), prepares the data set and fills in
  `config.num_train_examples`.

  Example:
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")
    >>> run = build(config)
    >>> run.mesh.axis_names, run.info.name, run.info.shape, run.method.name, len(run.recipes), run.view_sizes
    (('data',), 'mnist1d', (40,), 'simclr', 2, (None, None))
    >>> config.num_train_examples  # filled in from the data (per-example memories are sized with it)
    4000
    >>> state = run.init_state()  # the step-0 state, replicated on the mesh
    >>> int(state.step), sorted(state.params), jax.tree.map(jnp.shape, state.probe_params)
    (0, ['encoder', 'projector'], {'bias': (10,), 'kernel': (16, 10)})

  Args:
    config: the run's config.
    mesh: the 1-D 'data' mesh to run on; None: every device of every host (`rl.train.mesh.make_mesh`).
    prepare_data: False builds without reading the data set (benchmarks on random inputs); the methods that
      size a memory by the training set then need `config.num_train_examples`.

  Returns:
    The `Run`.
  """
  mesh = mesh_lib.make_mesh() if mesh is None else mesh
  # Every mistake of the config, in one sentence, before any data or compilation.
  validate.check_config(config, num_devices=mesh.size)
  info = data.with_validation(data.dataset_info(config.dataset, image_size=config.image_size),
                              config.eval.get("validation_percent", 0))
  if prepare_data:
    _prepare_data(config, info)
  method = methods.get_method(config)
  recipes, view_sizes, eval_recipe, out_size = _views(config, info, method)
  return Run(config=config, mesh=mesh, sharding=mesh_lib.batch_sharding(mesh), info=info, method=method,
             recipes=recipes, view_sizes=view_sizes, eval_recipe=eval_recipe, out_size=out_size,
             tx=optim.make_optimizer(config, config.total_steps), probe_tx=optax.adam(config.online_probe.lr),
             embed=step_lib.make_embed_fn(method, eval_recipe, out_size=out_size))


def _open_workdir(workdir: epath.PathLike) -> epath.Path:
  workdir = epath.Path(workdir)
  if "://" not in str(workdir):
    workdir = workdir.resolve()  # Orbax wants absolute paths
  _writable_workdir(workdir)
  return workdir


def _restore(run: Run, workdir: epath.Path) -> tuple[TrainState, ckpt_lib.Checkpointer]:
  """The newest good checkpoint of `workdir/checkpoints` (else the step-0 state) and the run's checkpointer."""
  config = run.config
  ckpt = ckpt_lib.Checkpointer(workdir / "checkpoints", max_to_keep=config.checkpoint.keep,
                               metadata={"device_count": jax.device_count(), "process_count": jax.process_count(),
                                         "method": config.method, "dataset": config.dataset})
  state = run.init_state()
  restored = ckpt.restore_latest(state)
  start = 0 if restored is None else int(jax.device_get(restored.step))
  logging.getLogger("rl").info("%s step %d of %d on %d device(s)", "Resuming at" if start else "Starting at",
                               start, config.total_steps, jax.device_count())
  print(f"[rl] {'resuming from checkpoint at' if start else 'starting at'} step {start}/{config.total_steps} "
        f"on {jax.device_count()} {jax.devices()[0].platform} device(s); workdir {workdir}", flush=True)
  if restored is None:
    return state, ckpt
  saved_on = ckpt.step_metadata(start).get("device_count")
  if saved_on is not None and saved_on != jax.device_count():
    message = (f"the checkpoint was written on {saved_on} device(s) and resumes on {jax.device_count()}; the "
               f"global batch ({config.batch_size}) and the data order are unchanged, reductions may round "
               f"differently")
    logging.getLogger("rl").warning("%s", message)
    print(f"[rl] {message}", flush=True)
  return restored, ckpt


@dataclasses.dataclass
class _Outcome:
  state: TrainState
  train_seconds: float
  stopped_by: str | None  # the signal that interrupted the loop, or None when it ran to the end


def _train(run: Run, state: TrainState, train_step: Callable, ckpt: ckpt_lib.Checkpointer,
           writer: writer_lib.MetricWriter, *, earlier_seconds: float = 0.0) -> _Outcome:
  """The loop from `state.step` to `config.total_steps`: steps, logs, in-loop kNN, checkpoints, preemption.

  `earlier_seconds` (the training time of the processes before a resumption) starts the running `train_seconds` of
  the train lines and of the `checkpoint` line written at each save; the outcome's `train_seconds` is this
  process's alone.
  """
  config, total = run.config, run.config.total_steps
  start = int(jax.device_get(state.step))
  skip_limit = int(config.get("skip_nonfinite_steps") or 0)
  batches = run.train_batches(start)
  bar = _progress(start, total)
  t_start, t_log, steps_since_log, skipped, stopping = time.time(), time.time(), 0, 0, False

  def run_seconds(now: float) -> float:  # the run's training time, its earlier processes' included
    return earlier_seconds + now - t_start

  with preemption.StopRequest(sync_every=config.checkpoint.get("preemption_sync_every_steps", 10)) as stop:
    for step in range(start, total):
      state, metrics = train_step(state, next(batches))
      steps_since_log += 1
      done = step + 1
      if done % config.log_every_steps == 0 or done == total:
        now = time.time()
        skipped = _log(run, state, metrics, ckpt, writer, bar, done=done, skipped=skipped,
                       rate=steps_since_log / (now - t_log), train_seconds=run_seconds(now))
        t_log, steps_since_log = time.time(), 0
      if bar is not None:
        bar.update(1)
      stopping = stop.should_stop(done)
      # The last step's kNN is the final report's, unless there is no final report (eval.final=False).
      last_is_reported = done == total and config.eval.get("final", True)
      if config.eval.every_steps and done % config.eval.every_steps == 0 and not last_is_reported and not stopping:
        _knn_during_training(run, state, writer, done=done, quiet=bar is not None)
      if done % config.checkpoint.every_steps == 0 or done == total or stopping:
        _check_finite(state, ckpt, skip_limit=skip_limit)
        ckpt.save(state)
        writer.write(done, "checkpoint", {"train_seconds": run_seconds(time.time())})
      if stopping:
        ckpt.wait()  # still under the signal handlers: a second signal during the wait is handled as the first
        break
  if bar is not None:
    bar.close()
  ckpt.wait()  # raises if a save failed: never report a checkpoint that is not on disk
  return _Outcome(state, time.time() - t_start, stop.signal if stopping else None)


def _log(run: Run, state: TrainState, metrics: dict, ckpt: ckpt_lib.Checkpointer, writer: writer_lib.MetricWriter,
         bar, *, done: int, skipped: int, rate: float, train_seconds: float) -> int:
  """Checks the loss is finite (or within the skip budget), writes the train line; returns the skip count."""
  skip_limit = int(run.config.get("skip_nonfinite_steps") or 0)
  now_skipped = _check_finite(state, ckpt, skip_limit=skip_limit)
  if now_skipped > skipped:
    print(f"[rl] WARNING: skipped {now_skipped - skipped} step(s) with a non-finite loss or gradient by step "
          f"{done} ({now_skipped} of config.skip_nonfinite_steps={skip_limit} used)", flush=True)
  metrics = jax.device_get(metrics)
  if skip_limit:
    metrics["skipped_steps"] = now_skipped
  writer.write(done, "train", {**metrics, "steps_per_second": rate, "train_seconds": train_seconds})
  if bar is not None:
    bar.set_postfix(loss=f"{float(metrics['loss']):.4f}", steps_per_s=f"{rate:.1f}")
  else:
    print(f"[rl] step {done}/{run.config.total_steps} loss {float(metrics['loss']):.4f} "
          f"online_probe_acc {float(metrics['online_probe_accuracy']):.3f} {rate:.1f} steps/s", flush=True)
  return now_skipped


def _knn_during_training(run: Run, state: TrainState, writer: writer_lib.MetricWriter, *, done: int,
                         quiet: bool) -> None:
  config, info = run.config, run.info
  train_split = evaluate.extract(run.embed, state.params, state.method_state, config, info.train_split,
                                 sharding=run.sharding, max_examples=config.eval.max_train_examples)
  test_split = evaluate.extract(run.embed, state.params, state.method_state, config, info.test_split,
                                sharding=run.sharding)
  row = evaluate.knn_eval(train_split, test_split, config, info.num_classes)
  writer.write(done, "eval", row)
  if not quiet:
    print(f"[rl] step {done} eval " + " ".join(f"{k} {v:.4f}" for k, v in row.items()), flush=True)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: epath.PathLike) -> dict:
  """Trains `config.method` on `config.dataset`, evaluates, and writes everything into `workdir`.

  Resumes from the newest good checkpoint of `workdir/checkpoints` (a corrupt one is moved aside with a warning).
  On SIGTERM or SIGINT it finishes the step in flight, saves a checkpoint, waits until it is on disk and returns
  `{'rows': [], 'interrupted': {'signal': name, 'step': step}}` without the final evaluation; otherwise it returns
  `{'rows': the rows of the final report, 'train_seconds': the wall time of the training steps}` (a resumed run
  adds its earlier processes' time, from their `metrics.jsonl` lines: `rl.train.writer.train_seconds_from_metrics`;
  NaN for a workdir whose log has neither times nor rates up to the checkpoint), and, for a resumed run,
  `'resumed': {'step': the checkpoint's step, 'train_seconds': the earlier processes' time}`.

  Example:
    >>> import os, tempfile
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")  # 6 steps of a tiny SimCLR on mnist1d
    >>> workdir = tempfile.mkdtemp()
    >>> config.eval.every_steps, config.eval.baselines, config.eval.tsne_points = 0, False, 0  # a quicker evaluation
    >>> result = train_and_evaluate(config, workdir)
    [rl] starting at step 0/6 on ... device(s); workdir ...
    [rl] step 6/6 loss ...
    [rl] results (.../report.md):
    | representation | linear_probe_accuracy | knn_5_accuracy | knn_20_accuracy | ...
    >>> [row["representation"] for row in result["rows"]]
    ['simclr (trained)', 'simclr (projection head output)']
    >>> sorted(os.listdir(workdir))
    ['accuracy.png',
     'checkpoints',
     'config.json',
     'loss.png',
     'metrics.jsonl',
     'report.md',
     'results.json',
     'tensorboard']

  Raises:
    NonFiniteLossError: a non-finite loss or gradient (beyond `config.skip_nonfinite_steps` skipped steps).
    rl.train.checkpoint.CheckpointSaveError: the workdir is not writable, or a save failed (disk full).
    rl.train.checkpoint.CheckpointMismatchError: the workdir's checkpoint belongs to another model or method.
  """
  # Workdir.
  workdir = _open_workdir(workdir)
  # Mesh, input, model and optimizer.
  run = build(config)
  if jax.process_index() == 0:
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
  # Restore.
  state, ckpt = _restore(run, workdir)
  start = int(jax.device_get(state.step))
  writer = writer_lib.MetricWriter(workdir, resume_step=start)
  # Step.
  train_step = run.train_step(skip_nonfinite=int(config.get("skip_nonfinite_steps") or 0) > 0)
  # Loop.
  # A resumed run's training time is its earlier segments' (from their metric lines) and this process's.
  earlier_seconds = writer_lib.train_seconds_from_metrics(workdir, start) if start else 0.0
  outcome = _train(run, state, train_step, ckpt, writer, earlier_seconds=earlier_seconds)
  if outcome.stopped_by is not None:
    writer.close()
    ckpt.close()
    step = int(jax.device_get(outcome.state.step))
    print(f"[rl] stopped by {outcome.stopped_by} after step {step}/{config.total_steps}; the checkpoint of step "
          f"{step} is in {ckpt.directory}. Run the same command to resume.", flush=True)
    return {"rows": [], "interrupted": {"signal": outcome.stopped_by, "step": step}}
  # Final evaluation.
  train_seconds = earlier_seconds + outcome.train_seconds
  results = {"rows": []}
  if config.eval.get("final", True):
    results = final_evaluation(run, outcome.state, workdir, train_seconds=train_seconds, writer=writer)
  results["train_seconds"] = train_seconds
  if start:
    results["resumed"] = {"step": start, "train_seconds": earlier_seconds}
  writer.close()
  ckpt.close()
  return results


def final_evaluation(run: Run, state: TrainState, workdir: epath.PathLike, *, train_seconds: float,
                     writer: writer_lib.MetricWriter | None = None) -> dict:
  """The final table: the trained encoder, its projection head and the two baselines; plots; `report.md`;
  `results.json`.

  Also called outside the loop (`rl.train.restore.evaluate_checkpoint`): then `writer` is None and no "final"
  line is appended to `metrics.jsonl`.

  Example:
    >>> import tempfile
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")
    >>> workdir = tempfile.mkdtemp()
    >>> config.eval.baselines, config.eval.tsne_points = False, 0
    >>> run = build(config)
    >>> out = final_evaluation(run, run.init_state(), workdir, train_seconds=0.0)  # an untrained encoder
    [rl] results (.../report.md):
    | representation | linear_probe_accuracy | knn_5_accuracy | knn_20_accuracy | ...
    >>> [row["representation"] for row in out["rows"]]
    ['simclr (trained)', 'simclr (projection head output)']
  """
  config, info, method = run.config, run.info, run.method
  workdir = epath.Path(workdir)
  cap = config.eval.max_train_examples

  def features(embed, params, method_state, split, **kwargs):
    return evaluate.extract(embed, params, method_state, config, split, sharding=run.sharding, **kwargs)

  # The raw training inputs stay in host memory only for the raw-input baseline (ImageNet: tens of GB).
  train_split = features(run.embed, state.params, state.method_state, info.train_split,
                         keep_inputs=bool(config.eval.baselines), max_examples=cap)
  test_split = features(run.embed, state.params, state.method_state, info.test_split, keep_inputs=True)
  trained = {"representation": f"{config.method} (trained)",
             **evaluate.full_eval(train_split, test_split, config, info.num_classes,
                                  view_pair=_view_pair(run, state, test_split.inputs))}
  rows = [trained]
  if method.project is not None and config.eval.projection:
    # Pre- vs post-projection (Xue et al. 2024, https://arxiv.org/abs/2403.11391): the same evaluation on the
    # projection head's output.
    project = step_lib.make_embed_fn(method, run.eval_recipe, out_size=run.out_size, projection=True)
    rows.append({"representation": f"{config.method} (projection head output)",
                 **evaluate.full_eval(features(project, state.params, state.method_state, info.train_split,
                                               max_examples=cap),
                                      features(project, state.params, state.method_state, info.test_split),
                                      config, info.num_classes)})
  if config.eval.baselines:
    rand = run.init_state()
    rows.append({"representation": "random encoder (baseline)",
                 **evaluate.full_eval(features(run.embed, rand.params, rand.method_state, info.train_split,
                                               max_examples=cap),
                                      features(run.embed, rand.params, rand.method_state, info.test_split),
                                      config, info.num_classes, view_pair=_view_pair(run, rand, test_split.inputs))})
    rows.append({"representation": "raw inputs (baseline)",
                 **evaluate.raw_input_baseline(train_split, test_split, config, info.num_classes)})
  step = int(jax.device_get(state.step))
  if writer is not None:
    writer.write(step, "final", {k: v for k, v in trained.items() if k != "representation"})
  if jax.process_index() == 0:
    table = evaluate.write_report(workdir, rows, config=config, train_seconds=train_seconds, steps=step)
    evaluate.write_plots(workdir, writer_lib.read_metrics(workdir), test_split,
                         title=f"{config.method} on {config.dataset}", tsne_points=config.eval.tsne_points,
                         seed=config.seed)
    (workdir / "results.json").write_text(json.dumps(rows, indent=2))
    print(f"\n[rl] results ({workdir / 'report.md'}):\n{table}", flush=True)
  return {"rows": rows}


def _view_pair(run: Run, state: TrainState, inputs):
  """Features of two augmented views of (a subset of) the test inputs, for alignment and uniformity.

  The first two training views (multi-crop: the two global crops); a one-view method uses its view twice.
  """
  n = min(len(inputs), run.config.eval.alignment_examples)
  n -= n % jax.device_count()
  x = jax.device_put(inputs[:n], run.sharding)
  key = jax.random.fold_in(jax.random.key(run.config.seed), 2**31 - 2)
  views = []
  pairs = list(zip(run.recipes, run.view_sizes))
  for i, (recipe, size) in enumerate(pairs[:2] if len(pairs) >= 2 else pairs * 2):
    fn = step_lib.make_view_embed_fn(run.method, recipe, out_size=size)
    out = fn(state.params, state.method_state, x, jax.random.fold_in(key, i))
    # Multi-process: the features are spread over the devices of every process; each process gathers all of them.
    views.append(np.asarray(multihost_utils.process_allgather(out, tiled=True) if jax.process_count() > 1
                            else jax.device_get(out)))
  return views[0], views[1]


__all__ = ["NonFiniteLossError", "Run", "build", "final_evaluation", "train_and_evaluate"]
