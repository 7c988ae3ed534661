"""ODC as a `Method`: the loss is `rl.losses.odc` of the head's logits against the label bank, the memory moves by
`rl.losses.odc_update` for the batch's rows only, the warm-up pass learns nothing and ends with k-means, centroids
are recomputed and small clusters fixed in `update_after_step` and 1 device == 8 devices (the trainer run is in
test_training.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import odc as odc_config
from rl import losses
from rl import methods
from rl.methods import odc
from tests.methods import devices

B = 32
N = 128
C = 8


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
  monkeypatch.setitem(methods.METHODS, "odc", odc.make)


def _setup(warm=1):
  config = odc_config.get_config("smoke")  # 8 clusters, neck 16-8 with dropout 0.5, centroids every 2 steps
  config.num_train_examples = N
  config.batch_size = B
  config.odc.warmup_epochs = 0.5  # 2 warm-up steps: k-means after step 1
  method = odc.make(config)
  rng = np.random.RandomState(0)
  x = rng.randn(B, 40).astype(np.float32)
  idx = rng.permutation(N)[:B].astype(np.int32)
  params, state = method.init(jax.random.key(0), x[:2])
  state = {**state, "warm": jnp.int32(warm)}
  return config, method, params, state, x, idx


def _outputs(config, params, state, x, key):
  keep = odc._keep_mask(key, 0.5, B, 16, None)
  (h, z, logits), new_bn = odc.build_odc_network(config, None).apply(
      {"params": params, "batch_stats": state["batch_stats"]}, x, train=True, keep_mask=keep, mutable=["batch_stats"])
  return h, z, logits, dict(new_bn)


def _memory(state):
  return losses.ODCMemory(state["feature_bank"], state["label_bank"], state["centroids"])


def test_make_needs_num_train_examples():
  with pytest.raises(ValueError, match="num_train_examples"):
    odc.make(odc_config.get_config("smoke"))


def test_init_memory_is_balanced_random_labels_and_unit_features():
  config, method, params, _, x, _ = _setup()
  _, state = method.init(jax.random.key(0), x[:2])
  assert set(state) == {"batch_stats", "feature_bank", "label_bank", "centroids", "warm"}
  assert set(params) == {"encoder", "neck", "head"}
  assert odc.warmup_steps(config) == 2 and int(state["warm"]) == 0
  assert state["feature_bank"].shape == (N, 8) and state["centroids"].shape == (C, 8)
  np.testing.assert_allclose(jnp.linalg.norm(state["feature_bank"], axis=1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(np.bincount(state["label_bank"], minlength=C), N // C)


def test_loss_is_odc_and_the_memory_moves_for_the_batch_only():
  config, method, params, state, x, idx = _setup()
  key = jax.random.key(1)
  value, (new_state, aux) = method.loss(params, state, {"views": (x,), "index": idx}, key)
  h, z, logits, new_bn = _outputs(config, params, state, x, key)
  np.testing.assert_allclose(value, losses.odc(logits, idx, state["label_bank"]), rtol=1e-6)
  np.testing.assert_allclose(aux["metrics"]["odc"], value)
  np.testing.assert_allclose(aux["features"], h, rtol=1e-6)
  jax.tree.map(np.testing.assert_array_equal, new_state["batch_stats"], new_bn["batch_stats"])
  want, upd = losses.odc_update(_memory(state), z, idx, momentum=config.odc.momentum, update_centroids=False)
  np.testing.assert_allclose(new_state["feature_bank"], want.feature_bank, rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(new_state["label_bank"], want.label_bank)
  np.testing.assert_array_equal(new_state["centroids"], state["centroids"])  # recomputed after the step only
  np.testing.assert_allclose(aux["metrics"]["odc_change_ratio"], upd["change_ratio"])
  others = np.setdiff1d(np.arange(N), idx)
  np.testing.assert_array_equal(new_state["feature_bank"][others], state["feature_bank"][others])
  np.testing.assert_array_equal(new_state["label_bank"][others], state["label_bank"][others])
  assert (np.linalg.norm(new_state["feature_bank"][idx] - state["feature_bank"][idx], axis=1) > 1e-3).all()
  # Random initial labels against features of the network: most batch samples are re-labelled.
  assert int(np.sum(new_state["label_bank"][idx] != state["label_bank"][idx])) > B // 2


def test_warm_up_learns_nothing_and_writes_the_features():
  config, method, params, state, x, idx = _setup(warm=0)
  key = jax.random.key(1)
  batch = {"views": (x,), "index": idx}
  (value, (new_state, aux)), g = jax.value_and_grad(method.loss, has_aux=True)(params, state, batch, key)
  assert float(value) == 0.0 and float(aux["metrics"]["odc"]) > 0
  assert all(float(jnp.abs(leaf).max()) == 0 for leaf in jax.tree.leaves(g))
  _, z, _, _ = _outputs(config, params, state, x, key)
  np.testing.assert_allclose(new_state["feature_bank"][idx], z / jnp.linalg.norm(z, axis=1, keepdims=True),
                             rtol=1e-5, atol=1e-6)
  # Before the last warm-up step nothing happens; after it, k-means labels the bank and the memory is warm.
  same = method.update_after_step(params, new_state, jnp.int32(0))
  jax.tree.map(np.testing.assert_array_equal, same, new_state)
  done = method.update_after_step(params, new_state, jnp.int32(1))
  assert int(done["warm"]) == 1
  counts = np.bincount(done["label_bank"], minlength=C)
  assert counts.min() >= config.odc.min_cluster and counts.sum() == N
  assert not np.array_equal(done["label_bank"], new_state["label_bank"])
  np.testing.assert_allclose(jnp.linalg.norm(done["centroids"], axis=1), 1.0, rtol=1e-5)


def test_centroids_are_recomputed_every_few_steps_and_small_clusters_fixed():
  config, method, params, state, x, idx = _setup()
  assert config.odc.centroid_update_every == 2
  _, (state, _) = method.loss(params, state, {"views": (x,), "index": idx}, jax.random.key(1))
  counts = np.bincount(state["label_bank"], minlength=C)
  assert counts.min() >= config.odc.min_cluster  # no small cluster: only the centroid schedule acts
  not_due = method.update_after_step(params, state, jnp.int32(0))
  jax.tree.map(np.testing.assert_array_equal, not_due, state)
  due = method.update_after_step(params, state, jnp.int32(1))
  np.testing.assert_allclose(due["centroids"], losses.odc_update_centroids(_memory(state)).centroids, rtol=1e-6)
  assert not np.allclose(due["centroids"], state["centroids"])
  np.testing.assert_array_equal(due["label_bank"], state["label_bank"])
  # A cluster of one sample is dissolved and refilled at the next step (small clusters are checked every step).
  labels = np.asarray(state["label_bank"]).copy()
  labels[labels == 3] = 4
  labels[0] = 3
  small = {**state, "label_bank": jnp.asarray(labels)}
  fixed = method.update_after_step(params, small, jnp.int32(0))
  assert np.bincount(fixed["label_bank"], minlength=C).min() >= config.odc.min_cluster


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, x, idx = _setup()

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (x,), "index": idx}, mesh8)
  # Feature rows differ only by the float rounding of the cross-device BatchNorm statistics; labels are equal.
  devices.assert_1_and_8_devices_equal(one, eight, grad_atol=1e-5, state_rtol=1e-4, state_atol=1e-5)
  (_, s_1, _), (_, s_8, _) = one, eight
  np.testing.assert_array_equal(s_8["label_bank"], s_1["label_bank"])
