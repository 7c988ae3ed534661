"""Unicom as a `Method`: the loss is `rl.losses.partial_margin_softmax` of both views' projections against the label
bank, the feature bank gets the first-view projections, re-clustering runs at the scheduled steps from the learned
prototypes and labels each row with its nearest centroid, and 1 device == 8 devices (value, gradients, state)."""
import jax
import jax.numpy as jnp
import numpy as np

from configs import unicom as unicom_config
from rl import losses
from rl.methods import cluster_discrimination as cd
from rl.methods import unicom
from rl.methods.two_view import build_network
from tests.methods import devices

B = 32
N = 64  # training examples (bank rows)


def _setup(**overrides):
  config = unicom_config.get_config("smoke")  # 16 clusters, 8-d projections, re-cluster every 2 steps
  config.num_train_examples = N
  for k, v in overrides.items():
    setattr(config.unicom, k, v)
  method = unicom.make(config)
  rng = np.random.RandomState(0)
  v1 = rng.randn(B, 40).astype(np.float32)
  v2 = (v1 + 0.3 * rng.randn(B, 40)).astype(np.float32)
  index = rng.permutation(N)[:B].astype(np.int32)
  params, state = jax.jit(method.init)(jax.random.key(0), v1[:2])
  return config, method, params, state, v1, v2, index


def _clustered(state, seed=1):
  """A state after a clustering: random unit bank rows and random labels."""
  rng = np.random.RandomState(seed)
  bank = rng.randn(N, state["bank"].shape[1]).astype(np.float32)
  bank /= np.linalg.norm(bank, axis=1, keepdims=True)
  return {**state, "bank": jnp.asarray(bank), "labels": jnp.asarray(rng.randint(0, 16, N), jnp.int32),
          "num_clusterings": jnp.int32(1)}


def _outputs(config, params, state, v1, v2):
  net_params = {k: v for k, v in params.items() if k != "prototypes"}
  (h, z), new_bn = build_network(config, None).apply(
      {"params": net_params, "batch_stats": state["batch_stats"]}, jnp.concatenate([v1, v2]), train=True,
      mutable=["batch_stats"])
  return h, z, dict(new_bn)


def test_init_state_holds_an_empty_bank_and_prototypes_are_params():
  config, _, params, state, _, _, _ = _setup()
  assert set(state) == {"batch_stats", "bank", "labels", "centroids", "num_clusterings"}
  assert set(params) == {"encoder", "projector", "prototypes"}
  assert params["prototypes"].shape == (16, 8) and state["bank"].shape == (N, 8)
  assert state["labels"].shape == (N,) and state["labels"].dtype == jnp.int32
  np.testing.assert_array_equal(state["bank"], 0.0)  # zero rows = not seen yet
  assert int(state["num_clusterings"]) == 0


def test_make_needs_num_train_examples():
  config = unicom_config.get_config("smoke")
  try:
    unicom.make(config)
  except ValueError as e:
    assert "num_train_examples" in str(e)
  else:
    raise AssertionError("expected a ValueError")


def test_loss_is_partial_margin_softmax_of_both_views_and_the_bank_gets_first_view_projections():
  config, method, params, state, v1, v2, index = _setup()
  state = _clustered(state)
  key = jax.random.key(3)
  value, (new_state, aux) = jax.jit(method.loss)(params, state, {"views": (v1, v2), "index": index}, key)
  h, z, new_bn = _outputs(config, params, state, v1, v2)
  labels = state["labels"][index]
  expected = losses.partial_margin_softmax(z, jnp.concatenate([labels, labels]), params["prototypes"], key=key,
                                           class_ratio=config.unicom.class_ratio,
                                           feature_ratio=config.unicom.feature_ratio, margin=config.unicom.margin,
                                           scale=config.unicom.scale)
  # The method runs jitted, the reference eagerly: float32 rounding only.
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  np.testing.assert_allclose(aux["metrics"]["unicom"], value)
  np.testing.assert_allclose(aux["features"], h[:B], rtol=1e-5, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), new_state["batch_stats"],
               new_bn["batch_stats"])
  # momentum 0: the rows of the batch are the normalised first-view projections, the others are untouched.
  u1 = z[:B] / jnp.linalg.norm(z[:B], axis=1, keepdims=True)
  np.testing.assert_allclose(new_state["bank"][index], u1, rtol=1e-5, atol=1e-6)
  other = np.setdiff1d(np.arange(N), index)
  np.testing.assert_array_equal(new_state["bank"][other], state["bank"][other])
  np.testing.assert_array_equal(new_state["labels"], state["labels"])  # labels change only at a clustering


def test_before_the_first_clustering_the_loss_is_zero_without_gradient_and_the_bank_fills():
  _, method, params, state, v1, v2, index = _setup(bank_momentum=0.5)
  fn = lambda p: method.loss(p, state, {"views": (v1, v2), "index": index}, jax.random.key(3))
  (value, (new_state, _)), grads = jax.jit(jax.value_and_grad(fn, has_aux=True))(params)
  assert float(value) == 0.0
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grads))
  # An unseen (zero) row gets the normalised feature whatever the momentum.
  np.testing.assert_allclose(jnp.linalg.norm(new_state["bank"][index], axis=1), 1.0, rtol=1e-5)


def test_reclustering_runs_every_recluster_every_steps_from_the_prototypes_and_labels_nearest_centroids():
  config, method, params, state, _, _, _ = _setup()
  state = _clustered(state)
  update = jax.jit(method.update_after_step)
  for step in (0, 2, 4):  # recluster_every = 2: after steps 1, 3, 5 (0-based) only
    same = update(params, state, jnp.int32(step))
    jax.tree.map(np.testing.assert_array_equal, same, state)
  new = update(params, state, jnp.int32(3))
  assert int(new["num_clusterings"]) == 2
  _, reseed_key = cd.recluster_keys(config.seed, 3)
  centroids = cd.lloyd(state["bank"], params["prototypes"], iters=3, key=reseed_key)  # from the prototypes
  np.testing.assert_allclose(new["centroids"], centroids, rtol=1e-5, atol=1e-6)
  nearest = jnp.argmax(state["bank"] @ new["centroids"].T, axis=1)
  np.testing.assert_array_equal(new["labels"], nearest)
  np.testing.assert_array_equal(new["bank"], state["bank"])


def test_without_lloyd_iterations_the_centroids_are_the_prototypes():
  # The cluster ids stay aligned with the prototypes: with 0 iterations, cluster c IS prototype c.
  _, method, params, state, _, _, _ = _setup(kmeans_iters=0)
  new = jax.jit(method.update_after_step)(params, _clustered(state), jnp.int32(1))
  protos = params["prototypes"] / jnp.linalg.norm(params["prototypes"], axis=1, keepdims=True)
  np.testing.assert_allclose(new["centroids"], protos, rtol=1e-6)
  np.testing.assert_array_equal(new["labels"], jnp.argmax(new["bank"] @ protos.T, axis=1))


def test_empty_clusters_are_reseeded_and_others_keep_their_ids():
  # 16 centroids, the first 15 far from every point: plain Lloyd leaves them empty, re-seeding fills them all.
  rng = np.random.RandomState(4)
  points = np.abs(rng.randn(200, 8)).astype(np.float32)
  init = np.concatenate([-np.ones((15, 8), np.float32), np.ones((1, 8), np.float32)])
  plain = cd.lloyd(points, init, iters=5)
  assert len(np.unique(cd.assign(points, plain, None))) == 1
  reseeded = cd.lloyd(points, init, iters=5, key=jax.random.key(0))
  assert len(np.unique(cd.assign(points, reseeded, None))) == 16
  # Without empty clusters, re-seeding changes nothing (ids stay those of the start).
  start = points[:16]
  np.testing.assert_allclose(cd.lloyd(points, start, iters=4, key=jax.random.key(0)),
                             cd.lloyd(points, start, iters=4), rtol=1e-6)


def test_first_clustering_starts_from_seen_bank_rows():
  _, method, params, state, _, _, _ = _setup(kmeans_iters=0)
  rows = np.arange(20)
  bank = np.zeros((N, 8), np.float32)
  bank[rows] = np.random.RandomState(2).randn(20, 8)
  bank[rows] /= np.linalg.norm(bank[rows], axis=1, keepdims=True)
  new = jax.jit(method.update_after_step)(params, {**state, "bank": jnp.asarray(bank)}, jnp.int32(1))
  sims = np.asarray(new["centroids"]) @ bank.T  # each centroid is one distinct seen row
  picked = np.argmax(sims, axis=1)
  np.testing.assert_allclose(sims.max(axis=1), 1.0, rtol=1e-5)
  assert set(picked) <= set(rows) and len(set(picked)) == 16
  assert int(new["num_clusterings"]) == 1


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, v1, v2, index = _setup(bank_momentum=0.5)
  state = _clustered(state)

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (v1, v2), "index": index}, mesh8,
                                               key=jax.random.key(3))
  _, _, g_1 = one
  assert float(jnp.abs(g_1["prototypes"]).max()) > 0
  # Scale 64 makes gradients of order 10-100: relative tolerance on the BN psum's rounding.
  devices.assert_1_and_8_devices_equal(one, eight, grad_atol=1e-4)
