"""The training state: everything a resumed run needs, as one pytree that Orbax saves and restores."""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """Step counter, method parameters and state, optimizer state, and the online linear probe.

  `nonfinite_step` is -1 while every loss and gradient so far was finite, else the first step that was not (with
  `config.skip_nonfinite_steps`, the latest skipped one); `nonfinite_leaf` is the first non-finite leaf of that step
  (0: the loss, i > 0: the i-th floating leaf of the gradients in `jax.tree.leaves` order); `skipped_steps` counts
  the steps skipped for a non-finite loss or gradient. They are computed on device, so checking them costs no
  synchronisation per step.
  """
  step: jax.Array
  params: PyTree
  opt_state: PyTree
  method_state: PyTree
  probe_params: PyTree
  probe_opt_state: PyTree
  nonfinite_step: jax.Array
  nonfinite_leaf: jax.Array
  skipped_steps: jax.Array

  @classmethod
  def create(cls, *, params, opt_state, method_state, probe_params, probe_opt_state) -> "TrainState":
    return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state, method_state=method_state,
               probe_params=probe_params, probe_opt_state=probe_opt_state,
               nonfinite_step=jnp.full((), -1, jnp.int32), nonfinite_leaf=jnp.full((), -1, jnp.int32),
               skipped_steps=jnp.zeros((), jnp.int32))
