"""EMA update and momentum schedules against hand values."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

from rl.models import ema


def test_ema_update_mixes_every_leaf_and_keeps_dtype():
  target = {"a": jnp.full((2,), 2.0), "b": {"c": jnp.zeros((1,), jnp.bfloat16)}}
  online = {"a": jnp.full((2,), 4.0), "b": {"c": jnp.ones((1,), jnp.bfloat16)}}
  new = ema.ema_update(target, online, 0.75)
  np.testing.assert_allclose(new["a"], [2.5, 2.5])  # 0.75 * 2 + 0.25 * 4
  assert new["b"]["c"].dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(new["b"]["c"], np.float32), [0.25])
  np.testing.assert_allclose(ema.ema_update(target, online, 1.0)["a"], target["a"])
  np.testing.assert_allclose(ema.ema_update(target, online, 0.0)["a"], online["a"])


def test_ema_update_refuses_mismatched_trees_and_bad_momentum():
  with pytest.raises(ValueError, match="same tree structure"):
    ema.ema_update({"a": jnp.zeros(1)}, {"b": jnp.zeros(1)}, 0.5)
  with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]; got 1.5"):
    ema.ema_update({"a": jnp.zeros(1)}, {"a": jnp.zeros(1)}, 1.5)


def test_cosine_momentum_matches_byol_formula():
  total = 1000
  for step in (0, 1, 250, 500, 999, 1000, 2000):
    k = min(step, total)
    expected = 1 - (1 - 0.996) * (math.cos(math.pi * k / total) + 1) / 2
    np.testing.assert_allclose(float(ema.cosine_momentum(step, total)), expected, rtol=1e-6)
  with pytest.raises(ValueError, match="total_steps must be > 0; got 0"):
    ema.cosine_momentum(0, 0)


def test_cosine_momentum_ends_at_final():
  # solo-learn's MoCo v2+ CIFAR schedule, 0.99 -> 0.999: a schedule that ignored `final` would end at 1.
  total = 1000
  for step in (0, 250, 500, 1000, 2000):
    k = min(step, total)
    expected = 0.999 - (0.999 - 0.99) * (math.cos(math.pi * k / total) + 1) / 2
    np.testing.assert_allclose(float(ema.cosine_momentum(step, total, base=0.99, final=0.999)), expected, rtol=1e-6)


def test_constant_momentum():
  np.testing.assert_allclose(float(ema.constant_momentum(123, momentum=0.99)), 0.99, rtol=1e-7)
