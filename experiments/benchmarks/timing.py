"""The timing loop the step benchmarks share: run a jitted training step n times, carrying the state as training
does, and give the seconds per step with the new state (for a caller that times the same state in several rounds)."""
from __future__ import annotations

import time

import jax


def run_steps(step, state, batch, steps: int):
  """`(seconds per step, state)` after `steps` calls of `state, metrics = step(state, batch)`, waited for."""
  start = time.perf_counter()
  metrics = None
  for _ in range(steps):
    state, metrics = step(state, batch)
  jax.block_until_ready((state, metrics))
  return (time.perf_counter() - start) / max(steps, 1), state
