"""Mixed precision from `config.compute_dtype`: bfloat16 computation, float32 parameters and optimizer state.

`get_method(config)` is where the trainer makes the method. With `compute_dtype='bfloat16'` it makes it inside
`rl.models.compute_dtype(bfloat16)` and wraps every function of the `Method` in the same block, so every model
and head built through `rl.models.get_model` (when the method is made and again when its functions are traced
inside the jitted step) computes in bfloat16: convolutions and matmuls take bfloat16 operands, while the
parameters stay float32 (flax casts them per op), and so do the gradients and the optimizer state. BatchNorm
reduces its statistics in float32 and keeps its running averages in float32; the losses upcast their inputs to
float32. The wrapper also keeps the method's own state (queues, banks, centres, EMA targets) in the dtypes it
was initialised with and returns float32 features from `embed`/`project`, so evaluation never sees bfloat16.

With `compute_dtype='float32'` (the default) the method is returned unchanged.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from rl import methods
from rl import models
from rl.methods.base import Method

COMPUTE_DTYPES: dict[str, Any] = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(config: ml_collections.ConfigDict) -> jnp.dtype:
  """The computation dtype named by `config.compute_dtype` (a workdir's older config without it: float32).

  Example:
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")
    >>> compute_dtype(config)
    dtype('float32')
    >>> config.compute_dtype = "bfloat16"
    >>> compute_dtype(config)
    dtype(bfloat16)

  Args:
    config: the run's config.

  Returns:
    `jnp.dtype('float32')` or `jnp.dtype('bfloat16')`.

  Raises:
    ValueError: for any other value, naming the key, the accepted values and the value given.
  """
  name = config.get("compute_dtype", "float32")
  if not isinstance(name, str) or name not in COMPUTE_DTYPES:
    raise ValueError(f"config.compute_dtype: expected one of {', '.join(repr(k) for k in COMPUTE_DTYPES)}; "
                     f"got {name!r}.")
  return jnp.dtype(COMPUTE_DTYPES[name])


def _to_float32(tree):
  return jax.tree.map(lambda x: x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def _like(new, old):
  """`new` with the dtypes of `old` where both trees have the same structure (else `new` unchanged)."""
  if jax.tree.structure(new) != jax.tree.structure(old):
    return new
  return jax.tree.map(lambda n, o: n.astype(o.dtype) if hasattr(n, "astype") and hasattr(o, "dtype") else n,
                      new, old)


def _in_block(fn: Callable | None, dtype) -> Callable | None:
  if fn is None:
    return None

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with models.compute_dtype(dtype):
      return fn(*args, **kwargs)

  return wrapped


def with_compute_dtype(method: Method, dtype: Any) -> Method:
  """`method` with every function run inside `rl.models.compute_dtype(dtype)`.

  Example:
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")
    >>> with rl.models.compute_dtype(jnp.bfloat16): method = rl.methods.get_method(config)
    >>> method = with_compute_dtype(method, jnp.bfloat16)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> z, z32 = method.embed(params, state, x), rl.methods.get_method(config).embed(params, state, x)
    >>> jax.tree.leaves(params)[0].dtype, z.dtype  # float32 parameters and outputs
    (dtype('float32'), dtype('float32'))
    >>> bool(jnp.any(z != z32)), bool(jnp.allclose(z, z32, atol=0.1))  # computed in bfloat16: close, not equal
    (True, True)

  Args:
    method: a `Method` that was made inside the same `compute_dtype` block (its closed-over evaluation networks
      are built when it is made).
    dtype: the computation dtype, e.g. `jnp.bfloat16`.

  Returns:
    A `Method` with the same contract: the loss is float32, the metrics float32, the new method state has the
    dtypes of the state passed in, and `embed`/`project` return float32 features.
  """
  init, loss, embed = _in_block(method.init, dtype), _in_block(method.loss, dtype), _in_block(method.embed, dtype)
  project, after = _in_block(method.project, dtype), _in_block(method.update_after_step, dtype)

  def loss_fn(params, method_state, batch, key, *, axis_name=None):
    value, (new_state, aux) = loss(params, method_state, batch, key, axis_name=axis_name)
    if "metrics" in aux:
      aux = {**aux, "metrics": _to_float32(aux["metrics"])}
    return jnp.asarray(value, jnp.float32), (_like(new_state, method_state), aux)

  def embed_fn(params, method_state, x):
    return jnp.asarray(embed(params, method_state, x), jnp.float32)

  def project_fn(params, method_state, x):
    return jnp.asarray(project(params, method_state, x), jnp.float32)

  def after_fn(params, method_state, step):
    return _like(after(params, method_state, step), method_state)

  return dataclasses.replace(method, init=init, loss=loss_fn, embed=embed_fn,
                             project=None if project is None else project_fn,
                             update_after_step=None if after is None else after_fn)


def get_method(config: ml_collections.ConfigDict) -> Method:
  """`rl.methods.get_method(config)` computing in `config.compute_dtype` (see the module docstring).

  Example:
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")
    >>> config.compute_dtype = "bfloat16"
    >>> method = get_method(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> z = method.embed(params, state, x)
    >>> config.compute_dtype = "float32"
    >>> z32 = get_method(config).embed(params, state, x)
    >>> jax.tree.leaves(params)[0].dtype, z.dtype, bool(jnp.any(z != z32)), bool(jnp.allclose(z, z32, atol=0.1))
    (dtype('float32'), dtype('float32'), True, True)

  Args:
    config: the run's config.

  Returns:
    The `Method`; unchanged from `rl.methods.get_method` for float32.
  """
  dtype = compute_dtype(config)
  if dtype == jnp.float32:
    return methods.get_method(config)
  with models.compute_dtype(dtype):
    method = methods.get_method(config)
  return with_compute_dtype(method, dtype)


__all__ = ["COMPUTE_DTYPES", "compute_dtype", "get_method", "with_compute_dtype"]
