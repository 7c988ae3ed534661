"""W-MSE as a `Method`: per-view encoder, one projector pass, whitening in random global sub-batches."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import wmse as wmse_config
from rl import losses
from rl.methods import wmse
from rl.methods.two_view import EncoderProjector, build_network
from tests.methods import devices


def _method_and_batch(b=32, num_views=2, **overrides):
  config = wmse_config.get_config("smoke")
  config.wmse.update(overrides)
  config.augment.views = ("mnist1d",) * num_views
  method = wmse.make(config)
  rng = np.random.RandomState(0)
  x = rng.randn(b, 40).astype(np.float32)
  views = tuple((x + 0.3 * rng.randn(b, 40)).astype(np.float32) for _ in range(num_views))
  params, state = method.init(jax.random.key(0), x[:2])
  return config, method, params, state, views


def _reference(config, params, state, views, key, iters):
  """The authors' forward: encoder on each view, the head on the concatenation, mean of `iters` draws."""
  net = build_network(config, axis_name=None)
  hs = []
  for v in views:
    h, state = net.apply({"params": params, **state}, v, train=True, method=EncoderProjector.encode,
                         mutable=["batch_stats"])
    hs.append(h)
  z, state = net.apply({"params": params, **state}, jnp.concatenate(hs),
                       method=lambda m, h: m.projector(h, train=True), mutable=["batch_stats"])
  draws = [losses.wmse(z, num_views=len(views), whitening_size=config.wmse.whitening_size,
                       key=jax.random.fold_in(key, i)) for i in range(iters)]
  return sum(draws) / iters, hs[0], dict(state)


@pytest.mark.parametrize("num_views,iters", [(2, 1), (4, 2)])
def test_loss_is_wmse_of_the_projections(num_views, iters):
  config, method, params, state, views = _method_and_batch(num_views=num_views, whitening_iters=iters)
  assert method.num_views == num_views
  key = jax.random.key(1)
  value, (new_state, aux) = method.loss(params, state, {"views": views}, key)
  expected, h1, expected_state = _reference(config, params, state, views, key, iters)
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  np.testing.assert_allclose(aux["metrics"]["wmse"], value)
  np.testing.assert_allclose(aux["features"], h1, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), new_state, expected_state)
  assert not jax.tree.all(jax.tree.map(np.array_equal, new_state, state))


def test_sub_batches_are_redrawn_with_the_key():
  _, method, params, state, views = _method_and_batch()
  batch = {"views": views}
  a, _ = method.loss(params, state, batch, jax.random.key(1))
  b, _ = method.loss(params, state, batch, jax.random.key(1))
  c, _ = method.loss(params, state, batch, jax.random.key(2))
  assert a == b and a != c  # 32 examples in 2 sub-batches of 16: a new draw whitens with other statistics


def test_whitening_size_must_exceed_the_embedding_dimension():
  config = wmse_config.get_config("smoke")
  config.wmse.whitening_size = config.model.projector_kwargs.out_dim
  with pytest.raises(ValueError, match="whitening_size=8 must be greater than the projector's out_dim=8"):
    wmse.make(config)
  for variant in wmse_config.VARIANTS:
    c = wmse_config.get_config(variant)
    assert c.wmse.whitening_size > c.model.projector_kwargs.out_dim and c.batch_size % c.wmse.whitening_size == 0


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, (v1, v2) = _method_and_batch()

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (v1, v2)}, mesh8)
  # Cholesky and triangular solves in float32 on sums taken in another order: ~1e-6 on gradients of ~0.1.
  devices.assert_1_and_8_devices_equal(one, eight, grad_atol=1e-5)
