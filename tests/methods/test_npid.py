"""NPID as a `Method`: the loss is `rl.losses.npid` of the embeddings against the memory bank (full softmax or NCE
with Z fixed from the first batch), only the batch's bank rows move, the bank gets no gradient, 1 device == 8
devices (value, gradients, new bank) (the one-view trainer run is in test_training.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import npid as npid_config
from rl import losses
from rl import methods
from rl.methods import npid
from rl.methods import two_view
from tests.methods import devices

B = 32
N = 128


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
  monkeypatch.setitem(methods.METHODS, "npid", npid.make)


def _setup(num_negatives=None):
  config = npid_config.get_config("smoke")  # linear head to 8 dims
  config.num_train_examples = N
  config.npid.num_negatives = num_negatives
  method = npid.make(config)
  rng = np.random.RandomState(0)
  x = rng.randn(B, 40).astype(np.float32)
  idx = rng.permutation(N)[:B].astype(np.int32)
  params, state = method.init(jax.random.key(0), x[:2])
  return config, method, params, state, x, idx


def _outputs(config, params, state, x):
  (h, z), new_bn = two_view.build_network(config, None).apply(
      {"params": params, "batch_stats": state["batch_stats"]}, x, train=True, mutable=["batch_stats"])
  return h, z, dict(new_bn)


def test_make_needs_num_train_examples():
  with pytest.raises(ValueError, match="num_train_examples"):
    npid.make(npid_config.get_config("smoke"))


def test_init_state_is_a_bank_of_random_unit_vectors():
  _, method, params, state, _, _ = _setup()
  assert set(state) == {"batch_stats", "memory_bank"}
  assert set(params) == {"encoder", "projector"}
  assert state["memory_bank"].shape == (N, 8)
  np.testing.assert_allclose(jnp.linalg.norm(state["memory_bank"], axis=1), 1.0, rtol=1e-5)
  assert method.num_views == 1


def test_loss_is_npid_and_only_the_batch_rows_of_the_bank_move():
  config, method, params, state, x, idx = _setup()
  value, (new_state, aux) = method.loss(params, state, {"views": (x,), "index": idx}, jax.random.key(1))
  h, z, new_bn = _outputs(config, params, state, x)
  bank = state["memory_bank"]
  np.testing.assert_allclose(value, losses.npid(z, idx, bank, temperature=config.npid.temperature), rtol=1e-6)
  np.testing.assert_allclose(aux["metrics"]["npid"], value)
  np.testing.assert_allclose(aux["features"], h, rtol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, new_state["batch_stats"], new_bn["batch_stats"])
  np.testing.assert_allclose(new_state["memory_bank"], losses.memory_bank_update(bank, z, idx, momentum=0.5),
                             rtol=1e-5, atol=1e-7)
  others = np.setdiff1d(np.arange(N), idx)
  np.testing.assert_array_equal(new_state["memory_bank"][others], bank[others])
  moved = np.linalg.norm(new_state["memory_bank"][idx] - bank[idx], axis=1)
  assert (moved > 1e-3).all()
  np.testing.assert_allclose(jnp.linalg.norm(new_state["memory_bank"], axis=1), 1.0, rtol=1e-5)


def test_nce_fixes_the_normalizer_from_the_first_batch():
  config, method, params, state, x, idx = _setup(num_negatives=16)
  assert float(state["nce_normalizer"]) < 0
  batch = {"views": (x,), "index": idx}
  key = jax.random.key(1)
  value, (s1, _) = method.loss(params, state, batch, key)
  _, z, _ = _outputs(config, params, state, x)
  kw = dict(temperature=config.npid.temperature, num_negatives=16, key=key)
  z0 = losses.npid_nce_normalizer(z, idx, state["memory_bank"], **kw)
  np.testing.assert_allclose(s1["nce_normalizer"], z0, rtol=1e-6)
  np.testing.assert_allclose(value, losses.npid(z, idx, state["memory_bank"], nce_normalizer=z0, **kw), rtol=1e-6)
  # Later steps keep Z (the bank has moved, so a fresh estimate would differ).
  s1 = {**s1, "nce_normalizer": jnp.float32(3.0)}
  value2, (s2, _) = method.loss(params, s1, batch, key)
  assert float(s2["nce_normalizer"]) == 3.0
  np.testing.assert_allclose(value2, losses.npid(z, idx, s1["memory_bank"], nce_normalizer=3.0, **kw), rtol=1e-6)


def test_the_bank_gets_no_gradient():
  _, method, params, state, x, idx = _setup()
  batch = {"views": (x,), "index": idx}
  g_bank = jax.grad(lambda bank: method.loss(params, {**state, "memory_bank": bank}, batch, jax.random.key(1))[0])(
      state["memory_bank"])
  np.testing.assert_array_equal(g_bank, 0.0)
  g = jax.grad(lambda p: method.loss(p, state, batch, jax.random.key(1))[0])(params)
  assert all(float(jnp.abs(leaf).max()) > 0 for leaf in jax.tree.leaves(g["projector"]))


@pytest.mark.parametrize("num_negatives", [None, 16])
def test_8_devices_equal_1_device(mesh8, num_negatives):
  _, method, params, state, x, idx = _setup(num_negatives)

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (x,), "index": idx}, mesh8)
  # The bank rows differ only by the float rounding of the cross-device BatchNorm statistics.
  devices.assert_1_and_8_devices_equal(one, eight, grad_atol=1e-5, state_rtol=1e-4, state_atol=1e-5)
  _, s_8, _ = eight
  others = np.setdiff1d(np.arange(N), idx)
  np.testing.assert_array_equal(s_8["memory_bank"][others], state["memory_bank"][others])
