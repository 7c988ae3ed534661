"""The tiled (memory-efficient) forms of nt_xent, info_nce, clip, supcon and supcon_simclr: equal to the plain forms in value and
gradients on 1 and 8 devices (ring of ppermutes), the row log-sum-exp against float64 NumPy, and the logits
matrix never allocated (XLA's own memory analysis)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl import losses
from rl.losses import _tiled
from tests import multidevice

RTOL = 1e-5


def _np_row_lse(a, k, exclude_self):
  s = a.astype(np.float64) @ k.astype(np.float64).T
  if exclude_self:
    np.fill_diagonal(s, -np.inf)
  m = s.max(axis=1, keepdims=True)
  return (m + np.log(np.exp(s - m).sum(axis=1, keepdims=True)))[:, 0]


@pytest.mark.parametrize("n,m,tile,exclude_self", [(37, 29, 8, False), (40, 40, 16, True), (5, 5, 64, True),
                                                     (33, 70, 32, False)])
def test_row_logsumexp_matches_float64_numpy(n, m, tile, exclude_self):
  rng = np.random.RandomState(0)
  a = (3 * rng.randn(n, 6)).astype(np.float32)
  k = rng.randn(n if exclude_self else m, 6).astype(np.float32)
  got = jax.jit(functools.partial(_tiled.row_logsumexp, exclude_self=exclude_self, tile_size=tile))(a, k)
  np.testing.assert_allclose(np.asarray(got), _np_row_lse(a, k, exclude_self), rtol=1e-5, atol=1e-5)


def test_row_logsumexp_gradients_match_autodiff_of_the_dense_form():
  rng = np.random.RandomState(1)
  a, k = rng.randn(23, 5).astype(np.float32), rng.randn(23, 5).astype(np.float32)
  w = rng.rand(23).astype(np.float32)  # a non-uniform cotangent on the rows

  def dense(a, k):
    s = jnp.where(jnp.eye(23, dtype=bool), -jnp.inf, a @ k.T)
    return jnp.sum(w * jax.nn.logsumexp(s, axis=1))

  tiled = lambda a, k: jnp.sum(w * _tiled.row_logsumexp(a, k, exclude_self=True, tile_size=4))
  for got, want in zip(jax.grad(tiled, argnums=(0, 1))(a, k), jax.grad(dense, argnums=(0, 1))(a, k)):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=RTOL, atol=1e-6)


def _cases():
  rng = np.random.RandomState(2)
  z1 = rng.randn(40, 8).astype(np.float32)
  z2 = (z1 + 0.7 * rng.randn(40, 8)).astype(np.float32)
  queue = rng.randn(24, 8).astype(np.float32)
  zv = np.stack([z1, z2, (z1 - 0.5 * rng.randn(40, 8)).astype(np.float32)], axis=1)  # [40, 3 views, 8]
  labels = rng.randint(0, 5, size=40).astype(np.int32)
  return {
      "supcon": (lambda z, y, impl, axis_name=None: losses.supcon(
          z, y, temperature=0.2, impl=impl, tile_size=16, axis_name=axis_name), (zv, labels), ()),
      "supcon_simclr": (lambda z, y, impl, axis_name=None: losses.supcon_simclr(
          z, y, weight=0.3, temperature=0.2, impl=impl, tile_size=16, axis_name=axis_name), (zv, labels), ()),
      "nt_xent": (lambda x, y, impl, axis_name=None: losses.nt_xent(
          x, y, temperature=0.2, impl=impl, tile_size=8, axis_name=axis_name), (z1, z2), ()),
      "info_nce": (lambda x, y, impl, axis_name=None: losses.info_nce(
          x, y, temperature=0.3, impl=impl, tile_size=8, axis_name=axis_name), (z1, z2), ()),
      "info_nce_queue": (lambda x, y, q, impl, axis_name=None: losses.info_nce(
          x, y, negatives=q, temperature=0.3, impl=impl, tile_size=8, axis_name=axis_name), (z1, z2), (queue,)),
      "clip": (lambda x, y, impl, axis_name=None: losses.clip(
          x, y, logit_scale=7.0, impl=impl, tile_size=8, axis_name=axis_name), (z1, z2), ()),
  }


NAMES = ["nt_xent", "info_nce", "info_nce_queue", "clip", "supcon", "supcon_simclr"]


def _float_args(args):
  return tuple(i for i, a in enumerate(args) if np.issubdtype(np.asarray(a).dtype, np.floating))


@pytest.mark.parametrize("name", NAMES)
def test_tiled_equals_plain_on_one_device(name):
  fn, sharded, replicated = _cases()[name]
  args = sharded + replicated
  argnums = _float_args(args)
  plain = jax.jit(jax.value_and_grad(functools.partial(fn, impl="plain"), argnums=argnums))(*args)
  tiled = jax.jit(jax.value_and_grad(functools.partial(fn, impl="tiled"), argnums=argnums))(*args)
  np.testing.assert_allclose(float(tiled[0]), float(plain[0]), rtol=RTOL)
  for g_t, g_p in zip(tiled[1], plain[1]):
    np.testing.assert_allclose(np.asarray(g_t), np.asarray(g_p), rtol=RTOL, atol=1e-6)


def _small_loss_cases():
  """256 pairs, d = 128, temperature 0.07, views 0.6 / sqrt(128) apart (per unit of norm): each anchor's loss is small against 1 / temperature,
  the regime where a loss that sums the log-sum-exps and the positives separately before subtracting them loses
  its digits to float32 rounding (1.5e-4 relative for NT-Xent)."""
  rng = np.random.RandomState(5)
  z1 = rng.randn(256, 128).astype(np.float32)
  z2 = (z1 + 0.6 * rng.randn(256, 128)).astype(np.float32)
  zv = np.stack([z1, z2], axis=1)
  labels = np.arange(256, dtype=np.int32)  # one positive per anchor: SupCon is NT-Xent here
  t = 0.07
  return {
      "supcon": (lambda z, y, impl: losses.supcon(z, y, temperature=t, impl=impl, tile_size=64), (zv, labels)),
      "supcon_simclr": (lambda z, y, impl: losses.supcon_simclr(z, y, weight=0.3, temperature=t, impl=impl,
                                                               tile_size=64), (zv, labels)),
      "nt_xent": (lambda x, y, impl: losses.nt_xent(x, y, temperature=t, impl=impl, tile_size=64), (z1, z2)),
      "info_nce": (lambda x, y, impl: losses.info_nce(x, y, temperature=t, impl=impl, tile_size=64), (z1, z2)),
      "info_nce_queue": (lambda x, y, impl: losses.info_nce(x, y, negatives=z1[:64] + 1.0, temperature=t,
                                                            impl=impl, tile_size=64), (z1, z2)),
      "clip": (lambda x, y, impl: losses.clip(x, y, logit_scale=1 / t, impl=impl, tile_size=64), (z1, z2)),
  }


@pytest.mark.parametrize("name", NAMES)
def test_tiled_keeps_plain_precision_when_the_loss_is_small_against_one_over_temperature(name):
  fn, args = _small_loss_cases()[name]
  plain = float(jax.jit(functools.partial(fn, impl="plain"))(*args))
  tiled = float(jax.jit(functools.partial(fn, impl="tiled"))(*args))
  assert plain < 0.1  # the regime: 1 / temperature is 14
  np.testing.assert_allclose(tiled, plain, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_tiled_ring_on_8_devices_equals_plain_on_one(mesh8, name):
  """The ring form (keys passed around 8 devices, gradients sent home) against the plain single-device loss,
  under shard_map and pmap, gradients for the sharded views and for a replicated queue."""
  fn, sharded, replicated = _cases()[name]
  argnums = _float_args(sharded + replicated)
  plain = jax.jit(jax.value_and_grad(functools.partial(fn, impl="plain"), argnums=argnums))(*sharded, *replicated)
  single, under_sm, under_pmap = multidevice.grads_1_and_8(
      functools.partial(fn, impl="tiled"), mesh8, sharded, replicated, argnums=argnums)
  for value, grads in (single, under_sm, under_pmap):
    np.testing.assert_allclose(float(value), float(plain[0]), rtol=RTOL)
    for g, want in zip(grads, plain[1]):
      np.testing.assert_allclose(np.asarray(g), np.asarray(want), rtol=RTOL, atol=1e-6)


def test_clip_tiled_gradient_of_a_learned_logit_scale():
  rng = np.random.RandomState(3)
  x, y = rng.randn(20, 6).astype(np.float32), rng.randn(20, 6).astype(np.float32)
  grad = lambda impl: jax.grad(lambda t: losses.clip(x, y, logit_scale=jnp.exp(t), impl=impl, tile_size=8))(2.0)
  np.testing.assert_allclose(float(grad("tiled")), float(grad("plain")), rtol=RTOL)


def test_auto_picks_tiled_above_the_threshold_and_bad_impl_is_refused():
  assert not _tiled.choose("auto", 8192, 8192)  # 2^26 entries: SimCLR at 4096 pairs stays plain
  assert _tiled.choose("auto", 8192, 8193)
  assert _tiled.choose("tiled", 2, 2) and not _tiled.choose("plain", 10 ** 6, 10 ** 6)
  z = jnp.ones((4, 3))
  with pytest.raises(ValueError, match=r"impl must be one of \('plain', 'tiled', 'auto'\); got 'flash'"):
    losses.nt_xent(z, z, impl="flash")
  with pytest.raises(ValueError, match="tile_size must be a positive int; got 0"):
    losses.info_nce(z, z, impl="tiled", tile_size=0)


def test_same_label_sum_matches_numpy():
  rng = np.random.RandomState(5)
  y, x = rng.randint(0, 4, 29).astype(np.int32), rng.randn(29, 3).astype(np.float32)
  want = (y[:, None] == y[None, :]).astype(np.float64) @ x.astype(np.float64)
  got = jax.jit(functools.partial(_tiled.same_label_sum, tile_size=8))(y, x)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_tiled_never_allocates_the_logits_matrix():
  """XLA's buffer assignment for forward + backward at 8192 rows: the plain form needs the [2b, 2b] float32
  matrix (256 MiB), the tiled form only tiles and per-row statistics."""
  b, d, tile = 4096, 32, 256
  z = jax.ShapeDtypeStruct((b, d), jnp.float32)

  def temp_bytes(impl):
    f = jax.jit(jax.grad(lambda x, y: losses.nt_xent(x, y, impl=impl, tile_size=tile), argnums=(0, 1)))
    return f.lower(z, z).compile().memory_analysis().temp_size_in_bytes

  matrix = (2 * b) ** 2 * 4
  plain, tiled = temp_bytes("plain"), temp_bytes("tiled")
  assert plain >= matrix, (plain, matrix)
  assert tiled < matrix / 16, (tiled, matrix)


def test_tiled_supcon_never_allocates_the_logits_or_label_matrix():
  b, v, d, tile = 4096, 2, 32, 256
  z, y = jax.ShapeDtypeStruct((b, v, d), jnp.float32), jax.ShapeDtypeStruct((b,), jnp.int32)

  def temp_bytes(impl):
    f = jax.jit(jax.grad(lambda z, y: losses.supcon(z, y, impl=impl, tile_size=tile)))
    return f.lower(z, y).compile().memory_analysis().temp_size_in_bytes

  matrix = (b * v) ** 2 * 4
  plain, tiled = temp_bytes("plain"), temp_bytes("tiled")
  assert plain >= matrix, (plain, matrix)
  assert tiled < matrix / 16, (tiled, matrix)


def test_bfloat16_inputs_use_bfloat16_matmuls_and_stay_close():
  rng = np.random.RandomState(4)
  z1, z2 = rng.randn(64, 16).astype(np.float32), rng.randn(64, 16).astype(np.float32)
  f = lambda a, b: losses.nt_xent(a, b, impl="tiled", tile_size=16)
  jaxpr = str(jax.make_jaxpr(f)(z1.astype(jnp.bfloat16), z2.astype(jnp.bfloat16)))
  assert "bf16[16,16]" in jaxpr or "bf16[16,16]" in jaxpr.replace(" ", "")
  low = float(f(jnp.asarray(z1, jnp.bfloat16), jnp.asarray(z2, jnp.bfloat16)))
  assert abs(low - float(f(z1, z2))) < 0.05


def test_ring_passes_blocks_with_ppermute_and_never_gathers(mesh8):
  from jax.sharding import PartitionSpec as P
  z = jnp.ones((64, 8))
  f = jax.shard_map(jax.grad(lambda x, y: losses.nt_xent(x, y, impl="tiled", tile_size=8, axis_name="data"),
                             argnums=(0, 1)),
                    mesh=mesh8, in_specs=(P("data"), P("data")), out_specs=(P("data"), P("data")))
  text = str(jax.make_jaxpr(f)(z, z))
  assert "ppermute" in text and "all_gather" not in text
  plain = jax.shard_map(lambda x, y: losses.nt_xent(x, y, impl="plain", axis_name="data"), mesh=mesh8,
                        in_specs=(P("data"), P("data")), out_specs=P())
  assert "all_gather" in str(jax.make_jaxpr(plain)(z, z))  # the check above can fail
