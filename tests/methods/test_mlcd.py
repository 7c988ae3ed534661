"""MLCD as a `Method`: the loss is `rl.losses.multilabel_cluster_loss` of both views' projections against the k
positive clusters of the label bank, re-clustering labels each row with its k nearest centroids
(`rl.losses.assign_topk`) at the scheduled steps, and 1 device == 8 devices (value, gradients, new state)."""
import jax
import jax.numpy as jnp
import numpy as np

from configs import mlcd as mlcd_config
from rl import losses
from rl.methods import cluster_discrimination as cd
from rl.methods import mlcd
from rl.methods.two_view import build_network
from tests.methods import devices

B = 32
N = 64
K = 2  # positives per example in the smoke config


def _setup(**overrides):
  config = mlcd_config.get_config("smoke")  # 16 clusters, k = 2, 8-d projections, re-cluster every 2 steps
  config.num_train_examples = N
  for k, v in overrides.items():
    setattr(config.mlcd, k, v)
  method = mlcd.make(config)
  rng = np.random.RandomState(0)
  v1 = rng.randn(B, 40).astype(np.float32)
  v2 = (v1 + 0.3 * rng.randn(B, 40)).astype(np.float32)
  index = rng.permutation(N)[:B].astype(np.int32)
  params, state = jax.jit(method.init)(jax.random.key(0), v1[:2])
  return config, method, params, state, v1, v2, index


def _clustered(state, seed=1):
  rng = np.random.RandomState(seed)
  bank = rng.randn(N, state["bank"].shape[1]).astype(np.float32)
  bank /= np.linalg.norm(bank, axis=1, keepdims=True)
  labels = np.stack([rng.permutation(16)[:K] for _ in range(N)]).astype(np.int32)
  return {**state, "bank": jnp.asarray(bank), "labels": jnp.asarray(labels), "num_clusterings": jnp.int32(1)}


def test_init_state_holds_k_labels_per_example():
  _, _, params, state, _, _, _ = _setup()
  assert state["labels"].shape == (N, K) and state["labels"].dtype == jnp.int32
  assert params["prototypes"].shape == (16, 8)
  assert set(state) == {"batch_stats", "bank", "labels", "centroids", "num_clusterings"}


def test_loss_is_multilabel_cluster_loss_of_both_views():
  config, method, params, state, v1, v2, index = _setup()
  state = _clustered(state)
  key = jax.random.key(3)
  value, (new_state, aux) = jax.jit(method.loss)(params, state, {"views": (v1, v2), "index": index}, key)
  net_params = {k: v for k, v in params.items() if k != "prototypes"}
  (h, z), _ = build_network(config, None).apply({"params": net_params, "batch_stats": state["batch_stats"]},
                                                jnp.concatenate([v1, v2]), train=True, mutable=["batch_stats"])
  pos = state["labels"][index]
  expected = losses.multilabel_cluster_loss(z, jnp.concatenate([pos, pos]), params["prototypes"], key=key,
                                            margin=config.mlcd.margin, scale=config.mlcd.scale,
                                            negative_ratio=config.mlcd.negative_ratio,
                                            feature_ratio=config.mlcd.feature_ratio)
  np.testing.assert_allclose(value, expected, rtol=1e-5)  # jitted method, eager reference
  np.testing.assert_allclose(aux["metrics"]["mlcd"], value)
  np.testing.assert_allclose(aux["features"], h[:B], rtol=1e-5, atol=1e-6)
  u1 = z[:B] / jnp.linalg.norm(z[:B], axis=1, keepdims=True)
  np.testing.assert_allclose(new_state["bank"][index], u1, rtol=1e-5, atol=1e-6)
  # Before the first clustering the loss is 0.
  unclustered = {**state, "num_clusterings": jnp.int32(0)}
  value0, _ = jax.jit(method.loss)(params, unclustered, {"views": (v1, v2), "index": index}, key)
  assert float(value0) == 0.0


def test_reclustering_assigns_the_k_nearest_centroids_at_the_scheduled_steps():
  config, method, params, state, _, _, _ = _setup()
  state = _clustered(state)
  update = jax.jit(method.update_after_step)
  jax.tree.map(np.testing.assert_array_equal, update(params, state, jnp.int32(2)), state)
  new = update(params, state, jnp.int32(5))
  assert int(new["num_clusterings"]) == 2
  _, reseed_key = cd.recluster_keys(config.seed, 5)
  centroids = cd.lloyd(state["bank"], params["prototypes"], iters=config.mlcd.kmeans_iters, key=reseed_key)
  np.testing.assert_allclose(new["centroids"], centroids, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(new["labels"], losses.assign_topk(state["bank"], new["centroids"], K)[1])
  sims = np.asarray(state["bank"] @ new["centroids"].T)
  np.testing.assert_array_equal(np.asarray(new["labels"]), np.argsort(-sims, axis=1, kind="stable")[:, :K])


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, v1, v2, index = _setup(bank_momentum=0.5)
  state = _clustered(state)

  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": (v1, v2), "index": index}, mesh8,
                                               key=jax.random.key(3))
  _, _, g_1 = one
  assert float(jnp.abs(g_1["prototypes"]).max()) > 0
  devices.assert_1_and_8_devices_equal(one, eight, grad_atol=1e-4)
