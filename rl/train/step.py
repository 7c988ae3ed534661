"""The jitted, data-parallel training step and the evaluation embedding function.

The per-device step runs under `jax.shard_map` inside `jax.jit` on the 1-D 'data' mesh: the batch is sharded,
the state replicated and donated. Losses reduce over the axis, so their value is the global-batch loss and the
gradients with respect to the replicated parameters arrive already summed over devices (shard_map transposes the
implicit broadcast of a replicated input into a psum): there is no separate gradient all-reduce to forget.

Mixed precision: a method computes in `config.compute_dtype` (its networks are built with that `dtype`,
`rl.methods.base.get_model`); its parameters, their gradients and the optimizer state stay float32. This module
is the one place that keeps what leaves a method in float32 whatever it computed in: the loss, the metrics and
the probe's features (`_float32`), the method state in the dtypes it was initialised with (`_like`), and the
features of `make_embed_fn` / `make_view_embed_fn`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
from jax import lax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P
import optax

from rl.data import augment
from rl.methods.base import Method
from rl.train import mesh as mesh_lib
from rl.train.state import TrainState

# Independent random streams: the step key is fold_in(root, step); each stream folds in its own id.
STREAM_AUGMENT = 0
STREAM_METHOD = 1


def _float32(tree):
  """Every floating leaf of `tree` as float32 (a bfloat16 loss, metric or feature leaves the method as float32)."""
  return jax.tree.map(lambda x: x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def _like(new, old):
  """`new` with the dtypes of `old` where both trees have the same structure (else `new` unchanged): the method
  state keeps the dtypes it was initialised with (queues, banks, centres, EMA targets)."""
  if jax.tree.structure(new) != jax.tree.structure(old):
    return new
  return jax.tree.map(lambda n, o: n.astype(o.dtype) if hasattr(n, "astype") and hasattr(o, "dtype") else n,
                      new, old)


def finite_flags(loss: jax.Array, grads) -> jax.Array:
  """[1 + number of floating gradient leaves] bools: is the loss finite, is each gradient leaf finite."""
  return jnp.stack([jnp.all(jnp.isfinite(loss))] + [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(grads)
                                                      if jnp.issubdtype(x.dtype, jnp.inexact)])


def nonfinite_leaf_names(params) -> list[str]:
  """Names of the entries of `finite_flags` (the gradients have the structure and dtypes of `params`)."""
  paths = jax.tree_util.tree_flatten_with_path(params)[0]
  return ["loss"] + [f"gradient of params{jax.tree_util.keystr(p)}" for p, x in paths
                     if jnp.issubdtype(x.dtype, jnp.inexact)]


def probe_loss(probe_params, features, labels, *, num_classes: int, axis_name: str | None):
  """Cross-entropy of the online linear probe on stop-gradient features (global-batch mean) and its accuracy.

  Example:
    >>> probe = init_probe(feature_dim=2, num_classes=2)
    >>> probe["kernel"] = jnp.array([[1.0, -1.0], [-1.0, 1.0]])
    >>> features, labels = jnp.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]), jnp.array([0, 1, 1])
    >>> loss, accuracy = probe_loss(probe, features, labels, num_classes=2, axis_name=None)
    >>> round(float(loss), 3), round(float(accuracy), 3)
    (1.351, 0.667)

  Args:
    probe_params: `{'kernel': [D, C], 'bias': [C]}` (see `init_probe`).
    features: `[B, D]` features of this device's examples.
    labels: `[B]` integer labels.
    num_classes: C (unused: the logits' width comes from the kernel).
    axis_name: the mesh axis to reduce over (inside `shard_map`), or None for a single device.

  Returns:
    `(loss, accuracy)`: scalars averaged over the global batch.
  """
  logits = features @ probe_params["kernel"] + probe_params["bias"]
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  correct = jnp.sum(jnp.argmax(logits, -1) == labels)
  n = labels.shape[0]
  total = lax.psum(n, axis_name) if axis_name else n
  loss = (lax.psum(jnp.sum(ce), axis_name) if axis_name else jnp.sum(ce)) / total
  acc = (lax.psum(correct, axis_name) if axis_name else correct) / total
  return loss, acc


def init_probe(feature_dim: int, num_classes: int):
  """Zero kernel `[feature_dim, num_classes]` and bias `[num_classes]` of the online linear probe.

  Example:
    >>> jax.tree.map(jnp.shape, init_probe(feature_dim=16, num_classes=10))
    {'bias': (10,), 'kernel': (16, 10)}
  """
  return {"kernel": jnp.zeros((feature_dim, num_classes), jnp.float32),
          "bias": jnp.zeros((num_classes,), jnp.float32)}


def make_train_step(method: Method, tx: optax.GradientTransformation, probe_tx: optax.GradientTransformation,
                    *, mesh: Mesh, seed: int, recipes: Sequence, view_sizes: Sequence[int | None],
                    num_classes: int, schedule: Callable[[jax.Array], jax.Array], augment_on_device: bool = True,
                    skip_nonfinite: bool = False):
  """Returns `step(state, batch) -> (state, metrics)`, jitted, with the state donated.

  `view_sizes` holds one output size per view (multi-crop's global and local views differ; None keeps the input
  size), as `rl.train.loop.build` normalises them. The batch holds `'x'` (raw inputs, augmented into views inside the
  step), `'label'` and optionally `'index'`. With `augment_on_device=False` it holds `'views'` instead of `'x'`: a
  tuple of already augmented views (e.g. to time the model alone, `experiments/benchmarks/step_throughput.py`);
  `recipes` and `view_sizes` are then unused. A step whose loss or gradients are not finite is recorded in
  `state.nonfinite_step`/`nonfinite_leaf`; with `skip_nonfinite`, it also leaves every parameter, optimizer and method
  state as it was (only `step` and `skipped_steps` advance), so the loop can skip a bounded number of bad steps
  (`config.skip_nonfinite_steps`).

  Example:
    >>> import optax
    >>> from configs import simclr as simclr_config
    >>> from rl.train import mesh as mesh_lib, optim
    >>> from rl.train.state import TrainState
    >>> config = simclr_config.get_config("smoke")
    >>> method, tx, probe_tx = rl.methods.get_method(config), optim.make_optimizer(config, 10), optax.adam(1e-3)
    >>> x = np.random.RandomState(0).randn(16, 40).astype(np.float32)  # 16 mnist1d signals, already augmented
    >>> params, method_state = method.init(jax.random.key(0), x[:2])
    >>> probe = init_probe(feature_dim=16, num_classes=10)
    >>> state = TrainState.create(params=params, opt_state=tx.init(params), method_state=method_state,
    ...                           probe_params=probe, probe_opt_state=probe_tx.init(probe))
    >>> step = make_train_step(method, tx, probe_tx, mesh=mesh_lib.make_mesh(), seed=0, recipes=(), view_sizes=(),
    ...                        num_classes=10, schedule=optim.learning_rate_schedule(config, 10),
    ...                        augment_on_device=False)  # the batch holds augmented views, not raw inputs
    >>> state, metrics = step(state, {"views": (x, x + 0.1), "label": np.arange(16) % 10})
    >>> int(state.step), sorted(metrics)
    (1, ['grad_norm', 'learning_rate', 'loss', 'nt_xent', 'online_probe_accuracy', 'online_probe_loss'])

  Args:
    method: the `Method` (its `loss` is differentiated; `update_after_step`, if any, runs after the update).
    tx: the optimizer of the method's parameters (`rl.train.optim.make_optimizer`).
    probe_tx: the optimizer of the online linear probe.
    mesh: the 1-D 'data' mesh (`rl.train.mesh.make_mesh`); the batch's leading axis is split over it.
    seed: the root of the step keys (augmentation and method randomness: `fold_in(key(seed), step)`).
    recipes: one augmentation recipe per view (`rl.data.augment.get_recipe`).
    view_sizes: the output size of each view; None keeps the input size.
    num_classes: the number of label classes (the probe's outputs).
    schedule: the learning-rate schedule, only to report `learning_rate` in the metrics.
    augment_on_device: augment `batch['x']` inside the step (True) or take `batch['views']` as they are.
    skip_nonfinite: leave the state unchanged (but the counters) after a non-finite loss or gradient.

  Returns:
    The jitted `step(state, batch) -> (state, metrics)`; `metrics` are replicated scalars.
  """
  root = jax.random.key(seed)
  axis = mesh_lib.AXIS
  recipes, view_sizes = tuple(recipes), tuple(view_sizes)

  def per_device(state: TrainState, batch):
    step_key = jax.random.fold_in(root, state.step)
    # Every device gets the same keys. Augmentation derives each example's randomness from its global index
    # (through axis_name), so the views do not depend on how many devices share the batch; a method that needs
    # per-device randomness folds in the device index itself.
    aug_key = jax.random.fold_in(step_key, STREAM_AUGMENT)
    method_key = jax.random.fold_in(step_key, STREAM_METHOD)
    if augment_on_device:
      views = augment.make_views(aug_key, batch["x"], recipes, out_size=view_sizes, axis_name=axis)
    else:
      views = tuple(batch["views"])
    inputs = {"views": views, "label": batch["label"]}
    if "index" in batch:
      inputs["index"] = batch["index"]

    def loss_fn(params):
      loss, (method_state, aux) = method.loss(params, state.method_state, inputs, method_key, axis_name=axis)
      return _float32(loss), (_like(method_state, state.method_state), _float32(aux))

    (loss, (method_state, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    if method.update_after_step is not None:
      method_state = _like(method.update_after_step(params, method_state, state.step), state.method_state)

    features = lax.stop_gradient(aux["features"])
    (p_loss, p_acc), p_grads = jax.value_and_grad(probe_loss, has_aux=True)(
        state.probe_params, features, batch["label"], num_classes=num_classes, axis_name=axis)
    p_updates, probe_opt_state = probe_tx.update(p_grads, state.probe_opt_state, state.probe_params)
    probe_params = optax.apply_updates(state.probe_params, p_updates)

    flags = finite_flags(loss, grads)
    finite = jnp.all(flags)
    first_bad = jnp.argmin(flags).astype(jnp.int32)  # the first False
    record = ~finite & ((state.nonfinite_step < 0) | skip_nonfinite)
    new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state, method_state=method_state,
                           probe_params=probe_params, probe_opt_state=probe_opt_state,
                           nonfinite_step=jnp.where(record, state.step, state.nonfinite_step),
                           nonfinite_leaf=jnp.where(record, first_bad, state.nonfinite_leaf),
                           skipped_steps=state.skipped_steps + (~finite & skip_nonfinite).astype(jnp.int32))
    if skip_nonfinite:  # a bad step changes nothing but the counters
      keep = ("params", "opt_state", "method_state", "probe_params", "probe_opt_state")
      new_state = new_state.replace(**{
          name: jax.tree.map(lambda new, old: jnp.where(finite, new, old), getattr(new_state, name),
                             getattr(state, name)) for name in keep})
    metrics = {"loss": loss, "learning_rate": schedule(state.step), "grad_norm": optax.tree.norm(grads),
               "online_probe_loss": p_loss, "online_probe_accuracy": p_acc, **aux["metrics"]}
    return new_state, metrics

  step = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(axis)), out_specs=(P(), P()))
  return jax.jit(step, donate_argnums=0)


def make_embed_fn(method: Method, eval_recipe, *, out_size: int | None, projection: bool = False):
  """Returns `embed(params, method_state, x) -> features` on global, batch-sharded arrays (no collectives).

  With `projection`, the features are `method.project`'s (the projection head's output) instead of `method.embed`'s.

  Example:
    >>> from configs import simclr as simclr_config
    >>> method = rl.methods.get_method(simclr_config.get_config("smoke"))
    >>> x = np.zeros((16, 40), np.float32)
    >>> params, method_state = method.init(jax.random.key(0), x[:2])
    >>> embed = make_embed_fn(method, rl.data.augment.get_recipe("none_signal"), out_size=None)
    >>> project = make_embed_fn(method, rl.data.augment.get_recipe("none_signal"), out_size=None, projection=True)
    >>> embed(params, method_state, x).shape, project(params, method_state, x).shape
    ((16, 16), (16, 8))
  """
  fn = method.project if projection else method.embed
  if fn is None:
    raise ValueError(f"method {method.name!r} has no projection head (Method.project is None).")

  @jax.jit
  def embed(params, method_state, x):
    return _float32(fn(params, method_state, augment.eval_view(x, eval_recipe, out_size=out_size)))

  return embed


def make_view_embed_fn(method: Method, recipe, *, out_size: int | None):
  """Returns `embed(params, method_state, x, key) -> features` of one random view of `x`, augmented by `recipe`.

  Used for the alignment between two views of the test set (two calls, two keys).

  Example:
    >>> from configs import simclr as simclr_config
    >>> method = rl.methods.get_method(simclr_config.get_config("smoke"))
    >>> x = np.random.RandomState(0).randn(16, 40).astype(np.float32)
    >>> params, method_state = method.init(jax.random.key(0), x[:2])
    >>> embed_view = make_view_embed_fn(method, rl.data.augment.get_recipe("mnist1d"), out_size=None)
    >>> z1 = embed_view(params, method_state, x, jax.random.key(1))
    >>> z2 = embed_view(params, method_state, x, jax.random.key(2))
    >>> z1.shape, bool((z1 != z2).any())  # two random views of the same signals
    ((16, 16), True)
  """

  @jax.jit
  def embed(params, method_state, x, key):
    return _float32(method.embed(params, method_state, augment.augment_batch(key, x, recipe, out_size=out_size)))

  return embed


__all__ = ["make_train_step", "make_embed_fn", "make_view_embed_fn", "init_probe", "probe_loss"]
