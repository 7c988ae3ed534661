"""DiTi (diti_masks, diti_condition, diti_noising, diti_loss): hand cases, float64 NumPy references written from the
authors' code (github.com/yue-zhongqi/diti), gradients, jit, 1 device == 8 devices, bad inputs."""
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest

from rl.losses import diffusion as D
from tests import multidevice
from tests.losses import numeric_grad

KEY = jax.random.PRNGKey(1)


# ------------------------------------------------------------------------------------------------------------
# References, float64 NumPy, from trainer/diti_trainer.py and model/diffusion/gaussian_diffusion.py.
# ------------------------------------------------------------------------------------------------------------

def masks_reference(latent_dim, k, n_timesteps, stages, dims_per_stage):
  """DiTiTrainer._build_model and get_mask_end_dim, loop for loop (t_to_idx without k_per_stage)."""
  t_to_idx = np.zeros(n_timesteps, np.int64)
  for t in range(n_timesteps):
    t_to_idx[t] = int(float(t) / (float(n_timesteps) / k))

  def end_dim(idx):
    if idx < 0:
      return 0
    if dims_per_stage is None:
      return int(float(latent_dim) / k * (idx + 1))
    accum = np.zeros(len(stages))
    for i in range(k):
      start_t = np.nonzero(t_to_idx == i)[0][0]
      stage = np.argmax(np.array(stages) > start_t)
      accum[stage:] += 1
    start_t = np.nonzero(t_to_idx == idx)[0][0]
    stage = np.argmax(np.array(stages) > start_t)
    stage_blocks = accum[stage] - accum[stage - 1] if stage > 0 else accum[stage]
    if int(accum[stage]) == idx + 1:
      return sum(dims_per_stage[0:stage + 1])
    prev_blocks = idx - int(accum[stage - 1]) if stage > 0 else idx
    return sum(dims_per_stage[0:stage]) + int(float(dims_per_stage[stage]) / float(stage_blocks)) * (prev_blocks + 1)

  masks, k_masks, receding = (np.zeros((k, latent_dim)) for _ in range(3))
  if k == 1:
    masks[:], k_masks[:] = 1.0, 1.0
  else:
    for i in range(k):
      cur, prev = end_dim(i), end_dim(i - 1)
      masks[i, 0:cur] = 1.0
      k_masks[i, prev:cur] = 1.0
      receding[i, 0:prev] = 1.0
  return t_to_idx, masks, k_masks, receding


def schedule_reference(num_timesteps=1000, beta_start=1e-4, beta_end=0.02, gamma=0.1):
  """GaussianDiffusion.__init__: linear betas, alphas_cumprod(_prev), shift_coef, weight = snr^gamma / (1 + snr)."""
  betas = np.linspace(beta_start, beta_end, num_timesteps)
  alphas = 1 - betas
  abar = np.cumprod(alphas)
  abar_prev = np.concatenate([[1.0], abar[:-1]])
  shift = -np.sqrt(alphas) * (1 - abar_prev) / np.sqrt(1 - abar)
  snr = abar / (1 - abar)
  return abar, shift, snr ** gamma / (1 + snr)


def loss_reference(noise, pred, grad, t, **schedule):
  """p_loss(noise, predicted_noise + shift_coef * gradient, weight=weight).mean(), per element in float64."""
  _, shift, weight = schedule_reference(**schedule)
  noise, pred, grad = (np.asarray(v, np.float64) for v in (noise, pred, grad))
  total = 0.0
  for i, ti in enumerate(np.asarray(t)):
    total += np.sum(weight[ti] * (noise[i] - (pred[i] + shift[ti] * grad[i])) ** 2)
  return total / noise.size



def _eps(b=4, seed=0, shape=(3, 3, 2)):
  rng = np.random.RandomState(seed)
  noise, pred, grad = (rng.randn(b, *shape).astype(np.float32) for _ in range(3))
  return noise, pred, grad, rng.randint(0, 1000, size=b).astype(np.int32)


# ------------------------------------------------------------------------------------------------------------
# diti_masks, diti_condition
# ------------------------------------------------------------------------------------------------------------

def test_masks_default_config_hand_checked():
  m = D.diti_masks(512)
  ends = np.asarray(m["masks"]).sum(axis=1).astype(int)
  # Stage 1 (t < 50) holds blocks 0-3 (they start at t = 0, 16, 32, 47): 10 dims as 2, 2, 2, 4.
  # Stage 2 (50 <= t < 100) holds blocks 4-6 (t = 63, 79, 94): 25 dims as 8, 8, 9.
  np.testing.assert_array_equal(ends[:7], [2, 4, 6, 10, 18, 26, 35])
  assert ends[-1] == 512 and np.all(np.diff(ends) > 0)
  np.testing.assert_array_equal(np.asarray(m["t_to_idx"])[[0, 15, 16, 999]], [0, 0, 1, 63])
  np.testing.assert_array_equal(np.asarray(m["k_masks"]).sum(axis=0), 1.0)  # the blocks partition the latent
  np.testing.assert_array_equal(m["masks"], np.asarray(m["k_masks"]) + np.asarray(m["receding_masks"]))


@pytest.mark.parametrize("args", [(512, 64, 1000, (50, 100, 300, 500, 1000), (10, 25, 327, 100, 50)),
                                  (12, 5, 40, (7, 20, 40), (3, 4, 5)), (10, 4, 100, None, None),
                                  (8, 1, 10, (10,), (8,))])
def test_masks_match_the_code(args):
  d, k, n, stages, dims = args
  m = D.diti_masks(d, k=k, num_timesteps=n, stages=stages, dims_per_stage=dims)
  t_to_idx, masks, k_masks, receding = masks_reference(d, k, n, stages, dims)
  np.testing.assert_array_equal(m["t_to_idx"], t_to_idx)
  np.testing.assert_array_equal(m["masks"], masks)
  np.testing.assert_array_equal(m["k_masks"], k_masks)
  np.testing.assert_array_equal(m["receding_masks"], receding)


def test_condition_matches_reference_and_its_gradients():
  m = D.diti_masks(6, k=3, num_timesteps=30, dims_per_stage=None)
  z = np.random.RandomState(2).randn(4, 6)
  t = np.array([0, 12, 25, 29], np.int32)
  idx = [0, 1, 2, 2]
  base = D.diti_condition(z.astype(np.float32), t, m)
  np.testing.assert_allclose(base, z * np.asarray(m["masks"])[idx], rtol=1e-6)
  np.testing.assert_allclose(jax.jit(lambda a, b: D.diti_condition(a, b, m, mode="stop_grad"))(z.astype(np.float32), t),
                             base, rtol=1e-6)  # the same value in both modes
  up = np.random.RandomState(3).randn(4, 6)
  with jax.enable_x64(True):
    grads = {mode: jax.grad(lambda a: jnp.sum(jnp.asarray(up) * D.diti_condition(a, jnp.asarray(t), m, mode=mode)))(
        jnp.asarray(z)) for mode in ("base", "stop_grad")}
  np.testing.assert_allclose(grads["base"], up * np.asarray(m["masks"])[idx])
  # stop_grad: only the block of t is trained; the earlier blocks are used but constant.
  np.testing.assert_allclose(grads["stop_grad"], up * np.asarray(m["k_masks"])[idx])


# ------------------------------------------------------------------------------------------------------------
# diti_noising
# ------------------------------------------------------------------------------------------------------------

def test_noising_matches_the_documented_draws_and_q_sample():
  x0 = np.random.RandomState(4).randn(3, 2, 2, 1).astype(np.float32)
  t, noise, xt = jax.jit(lambda k, x: D.diti_noising(k, x))(KEY, x0)
  abar, _, _ = schedule_reference()

  @jax.jit
  def documented_draws(key):  # example i: split(fold_in(key, i)) -> (randint over [0, T), standard normal)
    keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(key, i)))(jnp.arange(3))
    return (jax.vmap(lambda k: jax.random.randint(k, (), 0, 1000, jnp.int32))(keys[:, 0]),
            jax.vmap(lambda k: jax.random.normal(k, (2, 2, 1)))(keys[:, 1]))

  want_t, want_noise = documented_draws(KEY)
  np.testing.assert_array_equal(t, want_t)
  np.testing.assert_allclose(noise, want_noise, rtol=1e-6)
  for i in range(3):
    np.testing.assert_allclose(xt[i], np.sqrt(abar[t[i]]) * x0[i] + np.sqrt(1 - abar[t[i]]) * noise[i], rtol=1e-5,
                               atol=1e-6)
  assert xt.dtype == jnp.float32 and t.dtype == jnp.int32


def test_noising_1_equals_8_devices(mesh8):
  x0 = np.random.RandomState(5).randn(16, 2, 3).astype(np.float32)
  fn = lambda x, key, axis_name: D.diti_noising(key, x, axis_name=axis_name)
  single, sm, pm = multidevice.run_1_and_8(fn, mesh8, (x0,), (KEY,), out_specs=(P("data"),) * 3)
  for out in (sm, pm):
    for a, b in zip(out, single):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert len(set(np.asarray(single[0]).tolist())) > 8  # global-index keys: devices do not repeat each other


# ------------------------------------------------------------------------------------------------------------
# diti_loss
# ------------------------------------------------------------------------------------------------------------

def test_loss_hand_case_and_schedule():
  abar, shift, weight = schedule_reference()
  np.testing.assert_allclose(shift[0], 0.0)  # t = 0: abar_prev = 1
  # Noise 1, DDPM prediction 0, decoder G = 1 at t = 500: error (1 - s_500)^2 weighted by w_500.
  one = jnp.ones((1, 1))
  np.testing.assert_allclose(D.diti_loss(one, 0 * one, one, jnp.array([500])), weight[500] * (1 - shift[500]) ** 2,
                             rtol=1e-5)
  assert abar[-1] < 1e-4 < abar[0]


@pytest.mark.parametrize("schedule", [{}, {"num_timesteps": 1000, "beta_start": 2e-4, "beta_end": 0.03, "gamma": 0.5}])
def test_loss_matches_float64_reference_jit_and_bfloat16(schedule):
  noise, pred, grad, t = _eps(seed=6)
  fn = lambda a, b, c, d: D.diti_loss(a, b, c, d, **schedule)
  want = loss_reference(noise, pred, grad, t, **schedule)
  np.testing.assert_allclose(fn(noise, pred, grad, t), want, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(fn)(noise, pred, grad, t), want, rtol=1e-5)
  low = fn(*(jnp.asarray(v, jnp.bfloat16) for v in (noise, pred, grad)), t)
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, want, rtol=5e-2)


def test_loss_gradients_match_finite_differences():
  noise, pred, grad, t = _eps(b=2, seed=7, shape=(2, 2))
  noise, pred, grad = (v.astype(np.float64) for v in (noise, pred, grad))
  with jax.enable_x64(True):
    gp, gg = jax.grad(lambda b, c: D.diti_loss(jnp.asarray(noise), b, c, jnp.asarray(t)), argnums=(0, 1))(
        jnp.asarray(pred), jnp.asarray(grad))
  np.testing.assert_allclose(gg, numeric_grad(lambda c: loss_reference(noise, pred, c, t), grad.copy()), rtol=1e-6,
                             atol=1e-10)
  np.testing.assert_allclose(gp, numeric_grad(lambda b: loss_reference(noise, b, grad, t), pred.copy()), rtol=1e-6,
                             atol=1e-10)


def test_loss_1_equals_8_devices(mesh8):
  noise, pred, grad, t = _eps(b=16, seed=8, shape=(2, 2))
  fn = lambda a, b, c, d, axis_name=None: D.diti_loss(a, b, c, d, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, (noise, pred, grad, t), argnums=(1, 2))
  np.testing.assert_allclose(value, loss_reference(noise, pred, grad, t), rtol=1e-5)


def test_diti_bad_inputs():
  with pytest.raises(ValueError, match=r"dims_per_stage must be >= 0 and sum to latent_dim = 256.*sum 512"):
    D.diti_masks(256)
  with pytest.raises(ValueError, match=r"stages must increase strictly and end at num_timesteps = 1000; got \(50, 40"):
    D.diti_masks(6, stages=(50, 40, 1000), dims_per_stage=(2, 2, 2))
  with pytest.raises(ValueError, match=r"stages and dims_per_stage must have the same \(non-zero\) length"):
    D.diti_masks(6, stages=(500, 1000), dims_per_stage=(2, 2, 2))
  with pytest.raises(ValueError, match=r"k must be <= num_timesteps = 10.*got 11"):
    D.diti_masks(6, k=11, num_timesteps=10, dims_per_stage=None)
  m = D.diti_masks(4, k=2, num_timesteps=10, dims_per_stage=None)
  with pytest.raises(ValueError, match=r"masks must be built for latent_dim = 5.*got masks of shape \(2, 4\)"):
    D.diti_condition(jnp.zeros((3, 5)), jnp.zeros(3, jnp.int32), m)
  with pytest.raises(ValueError, match=r"t must be an integer array of shape \[3\].*dtype float32"):
    D.diti_condition(jnp.zeros((3, 4)), jnp.zeros(3), m)
  with pytest.raises(ValueError, match=r'mode must be "base" or "stop_grad"; got \'dual\''):
    D.diti_condition(jnp.zeros((3, 4)), jnp.zeros(3, jnp.int32), m, mode="dual")
  with pytest.raises(ValueError, match=r"masks must be the dict returned by diti_masks"):
    D.diti_condition(jnp.zeros((3, 4)), jnp.zeros(3, jnp.int32), {"masks": m["masks"]})
  noise, pred, grad, t = _eps()
  with pytest.raises(ValueError, match=r"noise and gradient must have the same shape; got \(4, 3, 3, 2\) and "
                                       r"\(4, 3, 3\)"):
    D.diti_loss(noise, pred, grad[..., 0], t)
  with pytest.raises(ValueError, match=r"t must be an integer array of shape \[4\].*got shape \(2,\)"):
    D.diti_loss(noise, pred, grad, t[:2])
  with pytest.raises(ValueError, match=r"beta_end must be in \(0.0, 1.0\); got 1.5"):
    D.diti_noising(KEY, noise, beta_end=1.5)
