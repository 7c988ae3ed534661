"""`train_and_evaluate(config, workdir)`: the one training loop, for every method and dataset.

It never branches on the method: everything method-specific is behind `rl.methods.Method`.
"""
from __future__ import annotations

import json
import logging
import sys
import time

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
from rl.train import checkpoint as ckpt_lib
from rl.train import evaluate
from rl.train import mesh as mesh_lib
from rl.train import optim
from rl.train import precision
from rl.train import preemption
from rl.train import step as step_lib
from rl.train import validate
from rl.train import writer as writer_lib
from rl.train.state import TrainState


class NonFiniteLossError(RuntimeError):
  """Raised when a loss or gradient stops being finite."""


def _recipes(config, info):
  """Training recipes, the eval recipe, the eval size and one training size per view (multi-crop)."""
  overrides = config.augment.overrides.to_dict()
  recipes = [augment.get_recipe(name, **overrides) for name in config.augment.views]
  if info.kind == "image":
    eval_recipe = augment.get_recipe("none", **{k: v for k, v in overrides.items() if k in ("mean", "std")})
    out_size = config.augment.out_size
  else:
    eval_recipe, out_size = augment.get_recipe("none_signal"), None
  view_sizes = config.augment.view_sizes
  if view_sizes is None:
    view_sizes = (out_size,) * len(recipes)
  elif len(view_sizes) != len(recipes):
    raise ValueError(f"config.augment.view_sizes has {len(view_sizes)} sizes for {len(recipes)} views "
                     f"(config.augment.views); give one size per view.")
  return recipes, eval_recipe, out_size, tuple(view_sizes)


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
  probe = workdir / ".rl-write-test"
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe.write_text("ok")
    probe.unlink()
  except OSError as e:
    raise ckpt_lib.CheckpointSaveError(
        f"workdir: cannot write to {workdir} ({type(e).__name__}: {e}); pick a writable --workdir.") from e


def build(config: ml_collections.ConfigDict):
  """Everything the loop needs, without running it (also used by tests and evaluation scripts).

  Example:
    >>> import tempfile
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")
    >>> config.data_dir = tempfile.mkdtemp()
    >>> mesh, sharding, info, method, recipes, eval_recipe, out_size, view_sizes = build(config)
    Downloading and preparing dataset ...
    >>> mesh.axis_names, info.name, info.shape, method.name, len(recipes), view_sizes
    (('data',), 'mnist1d', (40,), 'simclr', 2, (None, None))
    >>> config.num_train_examples  # filled in from the data (per-example memories are sized with it)
    4000
  """
  validate.check_config(config)  # every mistake of the config, in one sentence, before any data or compilation
  mesh = mesh_lib.make_mesh()
  sharding = mesh_lib.batch_sharding(mesh)
  info = data.dataset_info(config.dataset, image_size=config.image_size)
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
  method = precision.get_method(config)  # in config.compute_dtype (mixed precision)
  if len(config.augment.views) != method.num_views:
    raise ValueError(f"config.augment.views has {len(config.augment.views)} recipes; method {method.name!r} needs "
                     f"{method.num_views} views.")
  recipes, eval_recipe, out_size, view_sizes = _recipes(config, info)
  return mesh, sharding, info, method, recipes, eval_recipe, out_size, view_sizes


def init_state(config, method, info, tx, probe_tx, *, eval_recipe, out_size, mesh) -> TrainState:
  """The step-0 `TrainState`, replicated on `mesh`; deterministic in `config.seed`.

  The parameters are drawn from `fold_in(key(config.seed), 2**31 - 1)`, a key that no training step uses; the
  online probe starts at zero.

  Example:
    >>> import tempfile, optax
    >>> from configs import simclr as simclr_config
    >>> from rl.train import optim
    >>> config = simclr_config.get_config("smoke")
    >>> config.data_dir = tempfile.mkdtemp()
    >>> mesh, sharding, info, method, recipes, eval_recipe, out_size, view_sizes = build(config)
    Downloading and preparing dataset ...
    >>> tx, probe_tx = optim.make_optimizer(config, config.total_steps), optax.adam(1e-3)
    >>> state = init_state(config, method, info, tx, probe_tx, eval_recipe=eval_recipe, out_size=out_size, mesh=mesh)
    >>> int(state.step), sorted(state.params), jax.tree.map(jnp.shape, state.probe_params)
    (0, ['encoder', 'projector'], {'bias': (10,), 'kernel': (16, 10)})

  Args:
    config: the run's config (`seed`).
    method: the method (`build`).
    info: the data set's `DatasetInfo` (`build`): input shape and kind, number of classes.
    tx: the method's optimizer (`rl.train.optim.make_optimizer`).
    probe_tx: the online probe's optimizer.
    eval_recipe: the evaluation view of `build`, applied to the dummy batch that shapes the parameters.
    out_size: the evaluation view's size (`build`).
    mesh: the device mesh the state is replicated on.

  Returns:
    A `TrainState` at step 0.
  """
  sample = jnp.zeros((2,) + tuple(info.shape), jnp.uint8 if info.kind == "image" else jnp.float32)
  sample_view = augment.eval_view(sample, eval_recipe, out_size=out_size)
  init_key = jax.random.fold_in(jax.random.key(config.seed), 2**31 - 1)  # never a step index
  params, method_state = method.init(init_key, sample_view)
  feature_dim = jax.eval_shape(method.embed, params, method_state, sample_view).shape[-1]
  probe_params = step_lib.init_probe(feature_dim, info.num_classes)
  state = TrainState.create(params=params, opt_state=tx.init(params), method_state=method_state,
                            probe_params=probe_params, probe_opt_state=probe_tx.init(probe_params))
  return jax.device_put(state, mesh_lib.replicated(mesh))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: epath.PathLike) -> dict:
  """Trains `config.method` on `config.dataset`, evaluates, and writes everything into `workdir`.

  Resumes from the newest good checkpoint of `workdir/checkpoints` (a corrupt one is moved aside with a warning).
  On SIGTERM or SIGINT it finishes the step in flight, saves a checkpoint, waits until it is on disk and returns
  `{'rows': [], 'interrupted': {'signal': name, 'step': step}}` without the final evaluation; otherwise it returns
  `{'rows': the rows of the final report}`.

  Example:
    >>> import os, tempfile
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")  # 6 steps of a tiny SimCLR on mnist1d
    >>> config.data_dir, workdir = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> config.eval.every_steps, config.eval.baselines, config.eval.tsne_points = 0, False, 0  # a quicker evaluation
    >>> result = train_and_evaluate(config, workdir)
    Downloading and preparing dataset ...
    [rl] starting at step 0/6 on ... device(s); workdir ...
    [rl] step 6/6 loss ...
    [rl] results (.../report.md):
    | representation | linear_probe_accuracy | knn_20_accuracy | ...
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
  workdir = epath.Path(workdir)
  if "://" not in str(workdir):
    workdir = workdir.resolve()  # Orbax wants absolute paths
  _writable_workdir(workdir)
  mesh, sharding, info, method, recipes, eval_recipe, out_size, view_sizes = build(config)
  if jax.process_index() == 0:
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))

  total = config.total_steps
  tx = optim.make_optimizer(config, total)
  probe_tx = optax.adam(config.online_probe.lr)
  state = init_state(config, method, info, tx, probe_tx, eval_recipe=eval_recipe, out_size=out_size, mesh=mesh)
  ckpt = ckpt_lib.Checkpointer(workdir / "checkpoints", max_to_keep=config.checkpoint.keep,
                               metadata={"device_count": jax.device_count(), "process_count": jax.process_count(),
                                         "method": config.method, "dataset": config.dataset})
  restored = ckpt.restore_latest(state)
  if restored is not None:
    state = restored
  start = int(jax.device_get(state.step))
  log = logging.getLogger("rl")
  log.info("%s step %d of %d on %d device(s)", "Resuming at" if start else "Starting at", start, total,
           jax.device_count())
  print(f"[rl] {'resuming from checkpoint at' if start else 'starting at'} step {start}/{total} "
        f"on {jax.device_count()} {jax.devices()[0].platform} device(s); workdir {workdir}", flush=True)
  if restored is not None:
    saved_on = ckpt.step_metadata(start).get("device_count")
    if saved_on is not None and saved_on != jax.device_count():
      message = (f"the checkpoint was written on {saved_on} device(s) and resumes on {jax.device_count()}; the "
                 f"global batch ({config.batch_size}) and the data order are unchanged, reductions may round "
                 f"differently")
      log.warning("%s", message)
      print(f"[rl] {message}", flush=True)

  writer = writer_lib.MetricWriter(workdir, resume_step=start)
  skip_limit = int(config.get("skip_nonfinite_steps") or 0)
  train_step = step_lib.make_train_step(
      method, tx, probe_tx, mesh=mesh, seed=config.seed, recipes=recipes, out_size=view_sizes,
      num_classes=info.num_classes, schedule=optim.learning_rate_schedule(config, total),
      skip_nonfinite=skip_limit > 0)
  embed = step_lib.make_embed_fn(method, eval_recipe, out_size=out_size)
  batches = data.train_batches(config.dataset, global_batch_size=config.batch_size, seed=config.seed,
                               sharding=sharding, start_step=start, split=info.pretrain_split,
                               data_dir=config.data_dir, image_size=config.image_size,
                               classes=config.get("data_classes"), data_shards=config.get("data_shards"))

  bar = _progress(start, total)
  t_start, t_log, steps_since_log = time.time(), time.time(), 0
  skipped = 0
  with preemption.StopRequest(sync_every=config.checkpoint.get("preemption_sync_every_steps", 10)) as stop:
    for step in range(start, total):
      state, metrics = train_step(state, next(batches))
      steps_since_log += 1
      done = step + 1
      if done % config.log_every_steps == 0 or done == total:
        now_skipped = _check_finite(state, ckpt, skip_limit=skip_limit)
        if now_skipped > skipped:
          print(f"[rl] WARNING: skipped {now_skipped - skipped} step(s) with a non-finite loss or gradient by step "
                f"{done} ({now_skipped} of config.skip_nonfinite_steps={skip_limit} used)", flush=True)
          skipped = now_skipped
        metrics = jax.device_get(metrics)
        if skip_limit:
          metrics["skipped_steps"] = skipped
        rate = steps_since_log / (time.time() - t_log)
        t_log, steps_since_log = time.time(), 0
        writer.write(done, "train", {**metrics, "steps_per_second": rate})
        if bar is not None:
          bar.set_postfix(loss=f"{float(metrics['loss']):.4f}", steps_per_s=f"{rate:.1f}")
        else:
          print(f"[rl] step {done}/{total} loss {float(metrics['loss']):.4f} "
                f"online_probe_acc {float(metrics['online_probe_accuracy']):.3f} {rate:.1f} steps/s", flush=True)
      if bar is not None:
        bar.update(1)
      stopping = stop.should_stop(done)
      if (config.eval.every_steps and done % config.eval.every_steps == 0 and done != total
          and not stopping):
        train_split = evaluate.extract(embed, state.params, state.method_state, config, info.train_split,
                                       sharding=sharding, max_examples=config.eval.max_train_examples)
        test_split = evaluate.extract(embed, state.params, state.method_state, config, info.test_split,
                                      sharding=sharding)
        row = evaluate.knn_eval(train_split, test_split, config, info.num_classes)
        writer.write(done, "eval", row)
        if bar is None:
          print(f"[rl] step {done} eval " + " ".join(f"{k} {v:.4f}" for k, v in row.items()), flush=True)
      if done % config.checkpoint.every_steps == 0 or done == total or stopping:
        _check_finite(state, ckpt, skip_limit=skip_limit)
        ckpt.save(state)
      if stopping:
        ckpt.wait()  # raises if the save failed: never report a checkpoint that is not on disk
        if bar is not None:
          bar.close()
        writer.close()
        ckpt.close()
        print(f"[rl] stopped by {stop.signal} after step {done}/{total}; the checkpoint of step {done} is in "
              f"{ckpt.directory}. Run the same command to resume.", flush=True)
        return {"rows": [], "interrupted": {"signal": stop.signal, "step": done}}
  if bar is not None:
    bar.close()
  ckpt.wait()
  train_seconds = time.time() - t_start
  if not config.eval.get("final", True):
    writer.close()
    ckpt.close()
    return {"rows": []}

  results = final_evaluation(config, workdir, method, state, embed, sharding=sharding, info=info,
                             recipes=recipes, out_size=out_size, view_sizes=view_sizes, tx=tx, probe_tx=probe_tx,
                             mesh=mesh, eval_recipe=eval_recipe, train_seconds=train_seconds, writer=writer)
  writer.close()
  ckpt.close()
  return results


def final_evaluation(config, workdir, method, state, embed, *, sharding, info, recipes, out_size, view_sizes, tx,
                     probe_tx, mesh, eval_recipe, train_seconds, writer) -> dict:
  """The final table: the trained encoder and the two baselines; plots; `report.md`; `results.json`.

  Also called outside the loop (`rl.train.restore.evaluate_checkpoint`): then `writer` is None and no "final"
  line is appended to `metrics.jsonl`.

  Example:
    >>> import tempfile
    >>> from configs import simclr as simclr_config
    >>> from rl.train import restore
    >>> config = simclr_config.get_config("smoke")
    >>> config.data_dir, workdir = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> config.eval.baselines, config.eval.tsne_points = False, 0
    >>> run = restore.build_run(config)
    Downloading and preparing dataset ...
    >>> state = run.init_state()  # an untrained encoder
    >>> out = final_evaluation(
    ...     config, epath.Path(workdir), run.method, state, run.embed, sharding=run.sharding, info=run.info,
    ...     recipes=run.recipes, out_size=run.out_size, view_sizes=run.view_sizes, tx=run.tx, probe_tx=run.probe_tx,
    ...     mesh=run.mesh, eval_recipe=run.eval_recipe, train_seconds=0.0, writer=None)
    [rl] results (.../report.md):
    | representation | linear_probe_accuracy | knn_20_accuracy | ...
    >>> [row["representation"] for row in out["rows"]]
    ['simclr (trained)', 'simclr (projection head output)']
  """
  cap = config.eval.max_train_examples
  # The raw training inputs stay in host memory only for the raw-input baseline (ImageNet: tens of GB).
  train_split = evaluate.extract(embed, state.params, state.method_state, config, info.train_split,
                                 sharding=sharding, keep_inputs=bool(config.eval.baselines), max_examples=cap)
  test_split = evaluate.extract(embed, state.params, state.method_state, config, info.test_split,
                                sharding=sharding, keep_inputs=True)
  pair = _view_pair(config, method, state, test_split.inputs, recipes, view_sizes)
  trained = {"representation": f"{config.method} (trained)",
             **evaluate.full_eval(train_split, test_split, config, info.num_classes, view_pair=pair)}

  rows = [trained]
  if method.project is not None and config.eval.projection:
    # Pre- vs post-projection (Xue et al. 2024, https://arxiv.org/abs/2403.11391): the same evaluation on the
    # projection head's output.
    project = step_lib.make_embed_fn(method, eval_recipe, out_size=out_size, projection=True)
    p_train = evaluate.extract(project, state.params, state.method_state, config, info.train_split,
                               sharding=sharding, max_examples=cap)
    p_test = evaluate.extract(project, state.params, state.method_state, config, info.test_split, sharding=sharding)
    rows.append({"representation": f"{config.method} (projection head output)",
                 **evaluate.full_eval(p_train, p_test, config, info.num_classes)})
  if config.eval.baselines:
    rand = init_state(config, method, info, tx, probe_tx, eval_recipe=eval_recipe, out_size=out_size, mesh=mesh)
    r_train = evaluate.extract(embed, rand.params, rand.method_state, config, info.train_split, sharding=sharding,
                               max_examples=cap)
    r_test = evaluate.extract(embed, rand.params, rand.method_state, config, info.test_split, sharding=sharding)
    r_pair = _view_pair(config, method, rand, test_split.inputs, recipes, view_sizes)
    rows.append({"representation": "random encoder (baseline)",
                 **evaluate.full_eval(r_train, r_test, config, info.num_classes, view_pair=r_pair)})
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


def _view_pair(config, method, state, inputs, recipes, view_sizes):
  """Features of two augmented views of (a subset of) the test inputs, for alignment and uniformity.

  The first two training views (multi-crop: the two global crops); a one-view method uses its view twice.
  """
  n = min(len(inputs), config.eval.alignment_examples)
  n -= n % jax.device_count()
  x = jax.device_put(inputs[:n], mesh_lib.batch_sharding(mesh_lib.make_mesh()))
  key = jax.random.fold_in(jax.random.key(config.seed), 2**31 - 2)
  views = []
  pairs = list(zip(recipes, view_sizes))
  for i, (recipe, size) in enumerate(pairs[:2] if len(pairs) >= 2 else pairs * 2):
    fn = step_lib.make_view_embed_fn(method, recipe, out_size=size)
    out = fn(state.params, state.method_state, x, jax.random.fold_in(key, i))
    # Multi-process: the features are spread over the devices of every process; each process gathers all of them.
    views.append(np.asarray(multihost_utils.process_allgather(out, tiled=True) if jax.process_count() > 1
                            else jax.device_get(out)))
  return views[0], views[1]
