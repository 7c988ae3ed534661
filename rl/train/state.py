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

  `nonfinite_step` is -1 while every loss and gradient so far was finite, else the first step that was not; it is
  computed on device so checking it costs no synchronisation per step.
  """
  step: jax.Array
  params: PyTree
  opt_state: PyTree
  method_state: PyTree
  probe_params: PyTree
  probe_opt_state: PyTree
  nonfinite_step: jax.Array

  @classmethod
  def create(cls, *, params, opt_state, method_state, probe_params, probe_opt_state) -> "TrainState":
    return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state, method_state=method_state,
               probe_params=probe_params, probe_opt_state=probe_opt_state,
               nonfinite_step=jnp.full((), -1, jnp.int32))
