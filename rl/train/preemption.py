"""Graceful stop on SIGTERM (preemption) and SIGINT (Ctrl-C): the loop finishes its step, saves, and returns.

    with preemption.StopRequest(sync_every=10) as stop:
      for step in ...:
        state = train_step(state, batch)
        if stop.should_stop(step + 1):
          save(state); break

A second SIGINT raises `KeyboardInterrupt` at once (for a run that hangs). With several processes, each host's
request is shared every `sync_every` steps (`process_allgather` of one flag), so every host stops, and saves, at
the same step even when only some of them were signalled.
"""
from __future__ import annotations

import signal
import threading

import jax
from jax.experimental import multihost_utils
import numpy as np

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
  """Catches SIGTERM and SIGINT while active (main thread only; elsewhere it never asks to stop).

  Args:
    sync_every: with several processes, how often (in steps) the hosts share their requests; a host-side
      all-gather, so not every step on a pod. One process checks every step (it costs nothing).
  """

  def __init__(self, *, sync_every: int = 10):
    if sync_every < 1:
      raise ValueError(f"sync_every: expected a positive number of steps, got {sync_every}")
    self.sync_every = sync_every
    self.signal: str | None = None  # the name of the first signal received here
    self._previous = {}

  def __enter__(self) -> "StopRequest":
    if threading.current_thread() is threading.main_thread():
      for sig in SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      # None: a handler installed outside Python (JAX's preemption notifier after jax.distributed.initialize),
      # which Python cannot reinstall; the default action is the closest.
      signal.signal(sig, signal.SIG_DFL if handler is None else handler)
    self._previous = {}

  def _handle(self, signum, frame) -> None:  # pylint: disable=unused-argument
    name = signal.Signals(signum).name
    if self.signal is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt(f"second {name}: stopping without a checkpoint")
    if self.signal is None:
      self.signal = name
      print(f"\n[rl] {name} received: finishing the current step, then saving a checkpoint and exiting "
            f"(SIGINT again stops at once, without saving).", flush=True)

  def should_stop(self, step: int) -> bool:
    """Whether to save and stop after `step` (the same answer on every process)."""
    if jax.process_count() == 1:
      return self.signal is not None
    if step % self.sync_every:
      return False
    flags = multihost_utils.process_allgather(np.int32(self.signal is not None))
    if np.any(flags) and self.signal is None:
      self.signal = "another host's signal"
    return bool(np.any(flags))
