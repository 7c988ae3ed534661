"""Representation learning from a pre-trained diffusion model: DiTi's time-step-specific features.

DiTi (after PDAE) keeps a pre-trained DDPM frozen and trains an encoder z = E(x0) and a small decoder G that
shifts the DDPM's noise prediction so that it makes up for the reconstruction error at time-step t. DiTi's
inductive bias: the latent z is cut into k consecutive blocks; time-step t (in block idx(t) of k equal time
intervals) may use only the blocks 0..idx(t), the features of the attributes lost by time t. The pieces:

- `diti_masks`: the block structure (which latent dims time-step t may use), built once on the host;
- `diti_noising`: the forward process, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps with t ~ U{0, ..., T-1};
- `diti_condition`: the masked latent the decoder G is conditioned on;
- `diti_loss`: PDAE's weighted noise-prediction error with the decoder's shift.

The denoising networks are the user's: the frozen DDPM gives eps_theta(x_t, t) and the trained decoder gives
G(x_t, t, z_t); `diti_loss` takes both outputs.
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops


def _check_schedule(num_timesteps, beta_start, beta_end) -> None:
  if isinstance(num_timesteps, bool) or not isinstance(num_timesteps, int) or num_timesteps < 2:
    raise ValueError(f"num_timesteps must be an int >= 2; got {num_timesteps!r}.")
  _checks.check_in_range("beta_start", beta_start, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
  _checks.check_in_range("beta_end", beta_end, 0.0, 1.0, low_inclusive=False, high_inclusive=False)


def _linear_schedule(num_timesteps: int, beta_start: float, beta_end: float, gamma: float = 0.1):
  """(abar_t, shift_t, weight_t) of the linear-beta DDPM, float64 NumPy [T] each (the code's constants)."""
  betas = np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64)
  alphas = 1.0 - betas
  abar = np.cumprod(alphas)
  abar_prev = np.concatenate([[1.0], abar[:-1]])
  shift = -np.sqrt(alphas) * (1.0 - abar_prev) / np.sqrt(1.0 - abar)
  snr = abar / (1.0 - abar)
  weight = snr ** gamma / (1.0 + snr)
  return abar, shift, weight


def _check_t(t, b: int) -> None:
  if not hasattr(t, "shape") or not hasattr(t, "dtype"):
    raise ValueError(f"t must be an integer array of shape [{b}]; got {type(t).__name__}.")
  if tuple(t.shape) != (b,) or not jnp.issubdtype(t.dtype, jnp.integer):
    raise ValueError(f"t must be an integer array of shape [{b}] (one time-step per example); got shape "
                     f"{tuple(t.shape)} and dtype {t.dtype}.")


def diti_masks(latent_dim: int, *, k: int = 64, num_timesteps: int = 1000,
               stages: Sequence[int] | None = (50, 100, 300, 500, 1000),
               dims_per_stage: Sequence[int] | None = (10, 25, 327, 100, 50)) -> dict[str, jax.Array]:
  r"""DiTi's partition of the latent into k time-step blocks: which dims each time-step conditions on.

  Time-step t in {0, ..., T-1} falls in block :math:`\operatorname{idx}(t) = \lfloor t / (T / k) \rfloor`.
  Block i owns the latent dims [e_{i-1}, e_i) (e_{-1} = 0, e_{k-1} = d). With `dims_per_stage`, the time axis
  is cut into stages (`stages` are their ends); the blocks that START in stage s share its dims_per_stage[s]
  dims, each floor(dims / n_s) of them, the last block of the stage taking the rest; without it
  (`dims_per_stage=None`, `stages` then unused) :math:`e_i = \lfloor d (i + 1) / k \rfloor`. Then, for block i:

  .. math::
      m_i = \mathbb{1}[0, e_i), \qquad m^{k}_i = \mathbb{1}[e_{i-1}, e_i), \qquad
      m^{r}_i = \mathbb{1}[0, e_{i-1}) ,

  the cumulative mask, the block's own dims and the earlier blocks' dims (`diti_condition` uses them). k = 1
  gives all-ones m and m^k and zero m^r, as the released code does.

  Source: `DiTiTrainer._build_model` and `get_mask_end_dim` in trainer/diti_trainer.py of
  github.com/yue-zhongqi/diti (the authors' code); defaults from its config/celeba64/diti64.yml (also FFHQ and
  Bedroom): k = 64, stages (50, 100, 300, 500, 1000), dims (10, 25, 327, 100, 50) for d = 512. The code's other
  option, `k_per_stage`, is not offered. Our stored copies of the paper gave only its abstract and introduction.

  Args:
    latent_dim: d, the size of the encoder's output z.
    k: the number of time-step blocks, 1 <= k <= T (64).
    num_timesteps: T, the DDPM's number of time-steps (1000).
    stages: increasing stage ends in (0, T], the last equal to T; used with `dims_per_stage`.
    dims_per_stage: dims given to each stage, one per stage, summing to d; None splits d evenly over the blocks.

  Returns:
    A dict of constant arrays: "t_to_idx" int32 [T], and "masks", "k_masks", "receding_masks" float32 [k, d].

  Example:
    >>> m = diti_masks(4, k=2, num_timesteps=10, dims_per_stage=None)
    >>> m["t_to_idx"].tolist(), m["masks"].tolist(), m["receding_masks"][1].tolist()
    ([0, 0, 0, 0, 0, 1, 1, 1, 1, 1], [[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]], [1.0, 1.0, 0.0, 0.0])

  Yue, Wang, Sun, Ji, Chang & Zhang, "Exploring Diffusion Time-steps for Unsupervised Representation Learning",
  ICLR 2024, https://arxiv.org/abs/2401.11430.
  """
  for name, value, low in (("latent_dim", latent_dim, 1), ("k", k, 1), ("num_timesteps", num_timesteps, 2)):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
      raise ValueError(f"{name} must be an int >= {low}; got {value!r}.")
  if k > num_timesteps:
    raise ValueError(f"k must be <= num_timesteps = {num_timesteps} (each block needs a time-step); got {k}.")
  t_to_idx = (np.arange(num_timesteps, dtype=np.float64) / (float(num_timesteps) / k)).astype(np.int64)
  if dims_per_stage is None:
    ends = [int(float(latent_dim) / k * (i + 1)) for i in range(k)]
  else:
    if stages is None or len(stages) != len(dims_per_stage) or not len(stages):
      raise ValueError(f"stages and dims_per_stage must have the same (non-zero) length; got stages={stages!r} and "
                       f"dims_per_stage={dims_per_stage!r}.")
    stages_arr = np.asarray(stages)
    if np.any(np.diff(stages_arr) <= 0) or stages_arr[0] <= 0 or stages_arr[-1] != num_timesteps:
      raise ValueError(f"stages must increase strictly and end at num_timesteps = {num_timesteps}; got {stages!r}.")
    if sum(dims_per_stage) != latent_dim or min(dims_per_stage) < 0:
      raise ValueError(f"dims_per_stage must be >= 0 and sum to latent_dim = {latent_dim}; got {dims_per_stage!r} "
                       f"(sum {sum(dims_per_stage)}).")
    starts = [int(np.flatnonzero(t_to_idx == i)[0]) for i in range(k)]
    stage_of = [int(np.argmax(stages_arr > s)) for s in starts]
    accum = np.cumsum(np.bincount(stage_of, minlength=len(stages)))  # blocks starting in stages <= s
    ends = []
    for i in range(k):
      s = stage_of[i]
      before = int(accum[s - 1]) if s > 0 else 0
      if int(accum[s]) == i + 1:  # the stage's last block takes the rest of its dims
        ends.append(int(sum(dims_per_stage[:s + 1])))
      else:
        width = int(float(dims_per_stage[s]) / float(accum[s] - before))
        ends.append(int(sum(dims_per_stage[:s])) + width * (i - before + 1))
  masks, k_masks, receding = (np.zeros((k, latent_dim), np.float32) for _ in range(3))
  if k == 1:
    masks[:], k_masks[:] = 1.0, 1.0
  else:
    for i in range(k):
      prev = ends[i - 1] if i else 0
      masks[i, :ends[i]] = 1.0
      k_masks[i, prev:ends[i]] = 1.0
      receding[i, :prev] = 1.0
  return {"t_to_idx": jnp.asarray(t_to_idx, jnp.int32), "masks": jnp.asarray(masks),
          "k_masks": jnp.asarray(k_masks), "receding_masks": jnp.asarray(receding)}


def diti_condition(z: jax.Array, t: jax.Array, masks: dict[str, jax.Array], *, mode: str = "base") -> jax.Array:
  r"""The latent that DiTi's decoder is conditioned on at time-step t: only the blocks up to idx(t).

  With i = idx(t) and the masks of `diti_masks`:

  .. math::
      z_t = z \odot m_i \quad (\text{"base"}), \qquad
      z_t = \operatorname{sg}(z) \odot m^{r}_i + z \odot m^{k}_i \quad (\text{"stop_grad"}),

  so in "stop_grad" mode the loss at t trains only block i of the encoder's output (the earlier blocks are
  used but held fixed). The code's "dual" mode is the sum of the two losses: call `diti_loss` on both
  conditionings and add.

  Source: `GaussianDiffusion.pdae_timestep_loss` in model/diffusion/gaussian_diffusion.py of
  github.com/yue-zhongqi/diti ("base" is its default; "stop_grad" its *_stopgrad configs).

  Args:
    z: [b, d] encoder outputs E(x0).
    t: int [b] time-steps in [0, T).
    masks: the dict of `diti_masks` (with d = z's size).
    mode: "base" or "stop_grad".

  Returns:
    [b, d] the masked latent (float32 for float32/bfloat16 z).

  Example:
    >>> m = diti_masks(4, k=2, num_timesteps=10, dims_per_stage=None)
    >>> diti_condition(jnp.array([[1.0, 2.0, 3.0, 4.0]] * 2), jnp.array([0, 9]), m).tolist()
    [[1.0, 2.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]]

  Yue et al., "Exploring Diffusion Time-steps for Unsupervised Representation Learning", ICLR 2024,
  https://arxiv.org/abs/2401.11430.
  """
  _checks.check_array("z", z, ndim=2, shape_doc="[b, d]")
  b, d = z.shape
  _check_t(t, b)
  if not isinstance(masks, dict) or set(masks) != {"t_to_idx", "masks", "k_masks", "receding_masks"}:
    raise ValueError("masks must be the dict returned by diti_masks (t_to_idx, masks, k_masks, receding_masks); "
                     f"got {type(masks).__name__}" + (f" with keys {sorted(masks)}." if isinstance(masks, dict)
                                                       else "."))
  if masks["masks"].shape[1] != d:
    raise ValueError(f"masks must be built for latent_dim = {d} (z of shape {tuple(z.shape)}); got masks of shape "
                     f"{tuple(masks['masks'].shape)}.")
  if mode not in ("base", "stop_grad"):
    raise ValueError(f'mode must be "base" or "stop_grad"; got {mode!r}.')
  z = _ops.to_float32(z)
  idx = masks["t_to_idx"][t]
  if mode == "base":
    return z * masks["masks"][idx]
  return jax.lax.stop_gradient(z) * masks["receding_masks"][idx] + z * masks["k_masks"][idx]


def diti_noising(key: jax.Array, x0: jax.Array, *, num_timesteps: int = 1000, beta_start: float = 1e-4,
                 beta_end: float = 0.02, axis_name: str | None = None) -> tuple[jax.Array, jax.Array, jax.Array]:
  r"""The DDPM forward process DiTi trains on: a random time-step and noise for each example.

  With the linear schedule :math:`\beta_t` from `beta_start` to `beta_end` over T steps and
  :math:`\bar\alpha_t = \prod_{s \le t} (1 - \beta_s)`:

  .. math::
      t \sim U\{0, \dots, T - 1\}, \quad \epsilon \sim \mathcal{N}(0, I), \quad
      x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon .

  Example i of the global batch draws from `fold_in(key, i)`, so the draws do not depend on the number of
  devices. The schedule must be the pre-trained DDPM's.

  Source: `GaussianDiffusion.q_sample` and `pdae_timestep_loss` in model/diffusion/gaussian_diffusion.py of
  github.com/yue-zhongqi/diti; schedule from its configs (T = 1000, beta 1e-4 to 0.02).

  Args:
    key: a `jax.random` key.
    x0: [b, ...] clean images (e.g. [b, h, w, c] in [-1, 1]).
    num_timesteps: T (1000).
    beta_start: beta_0 (1e-4).
    beta_end: beta_{T-1} (0.02).
    axis_name: None when `x0` is the whole batch; the mapped axis name inside `jax.shard_map` or `jax.pmap`
      (only the global example index depends on it).

  Returns:
    (t, noise, x_t): t int32 [b], noise and x_t of the shape of x0 (float32 for float32/bfloat16 x0).

  Example:
    >>> t, noise, xt = diti_noising(jax.random.key(0), jnp.zeros((2, 4, 4, 3)))
    >>> abar = jnp.cumprod(1 - jnp.linspace(1e-4, 0.02, 1000))[t]  # x0 = 0: x_t is the scaled noise
    >>> t.shape, bool(jnp.allclose(xt, jnp.sqrt(1 - abar)[:, None, None, None] * noise, atol=1e-6))
    ((2,), True)

  Yue et al., "Exploring Diffusion Time-steps for Unsupervised Representation Learning", ICLR 2024,
  https://arxiv.org/abs/2401.11430; Ho, Jain & Abbeel, DDPM, https://arxiv.org/abs/2006.11239.
  """
  _checks.check_array("x0", x0, shape_doc="[b, ...]")
  if x0.ndim < 1 or x0.shape[0] < 1:
    raise ValueError(f"x0 must have shape [b, ...] with b >= 1; got shape {tuple(x0.shape)}.")
  _check_schedule(num_timesteps, beta_start, beta_end)
  abar, _, _ = _linear_schedule(num_timesteps, beta_start, beta_end)
  x0 = _ops.to_float32(x0)
  b = x0.shape[0]
  rows = _collectives.global_rows(b, axis_name)

  def draw(i):
    k_t, k_noise = jax.random.split(jax.random.fold_in(key, i))
    return (jax.random.randint(k_t, (), 0, num_timesteps, jnp.int32),
            jax.random.normal(k_noise, x0.shape[1:], x0.dtype))

  t, noise = jax.vmap(draw)(rows)
  shape = (b,) + (1,) * (x0.ndim - 1)
  abar_t = jnp.asarray(abar, x0.dtype)[t].reshape(shape)
  return t, noise, jnp.sqrt(abar_t) * x0 + jnp.sqrt(1.0 - abar_t) * noise


def diti_loss(noise: jax.Array, predicted_noise: jax.Array, gradient: jax.Array, t: jax.Array, *,
              num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, gamma: float = 0.1,
              axis_name: str | None = None) -> jax.Array:
  r"""DiTi's (PDAE's) training loss: the decoder's shift must make up the frozen DDPM's noise-prediction error.

  With the frozen DDPM's prediction :math:`\epsilon_\theta(x_t, t)`, the decoder's output
  :math:`G(x_t, t, z_t)` (z_t from `diti_condition`), :math:`\mathrm{snr}_t = \bar\alpha_t / (1 - \bar\alpha_t)`:

  .. math::
      L = \operatorname{mean}_{i, \text{pixels}} \; w_{t_i} \big\lVert \epsilon_i - \epsilon_\theta(x_{t_i}, t_i)
          - s_{t_i}\, G(x_{t_i}, t_i, z_{t_i}) \big\rVert^2, \quad
      w_t = \frac{\mathrm{snr}_t^{\gamma}}{1 + \mathrm{snr}_t}, \quad
      s_t = -\frac{\sqrt{\alpha_t}\,(1 - \bar\alpha_{t-1})}{\sqrt{1 - \bar\alpha_t}} ,

  the mean running over every element of the global batch. Caller's duties: the DDPM is frozen (only the
  decoder G and the encoder E are trained; pass `jax.lax.stop_gradient` of its prediction or keep its parameters
  out of the update); the schedule must be the DDPM's.

  Source: `GaussianDiffusion.__init__` (`shift_coef`, `weight` with gamma = 0.1), `p_loss` and
  `pdae_timestep_loss` in model/diffusion/gaussian_diffusion.py of github.com/yue-zhongqi/diti (the authors'
  code; the weighting and the shift come from PDAE, Zhang et al. 2022, https://arxiv.org/abs/2212.12990). Our
  stored copies of the DiTi paper gave only its abstract and introduction, so its equation could not be compared.

  Args:
    noise: [b, ...] the noise eps added by `diti_noising`.
    predicted_noise: the frozen DDPM's eps_theta(x_t, t), shape of `noise`.
    gradient: the decoder's output G(x_t, t, z_t), shape of `noise`.
    t: int [b] the time-steps.
    num_timesteps: T (1000).
    beta_start: beta_0 (1e-4).
    beta_end: beta_{T-1} (0.02).
    gamma: the exponent of the SNR weighting (0.1).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard and the mean runs over every device.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input).

  Example:
    >>> eps = jnp.ones((1, 2, 2, 1))
    >>> float(diti_loss(eps, eps, jnp.zeros_like(eps), jnp.array([500])))  # the DDPM is exact: nothing to add
    0.0

  Yue et al., "Exploring Diffusion Time-steps for Unsupervised Representation Learning", ICLR 2024,
  https://arxiv.org/abs/2401.11430.
  """
  _checks.check_array("noise", noise, shape_doc="[b, ...]")
  if noise.ndim < 1:
    raise ValueError(f"noise must have shape [b, ...]; got shape {tuple(noise.shape)}.")
  _checks.check_array("predicted_noise", predicted_noise, shape_doc="[b, ...]")
  _checks.check_array("gradient", gradient, shape_doc="[b, ...]")
  _checks.check_same_shape(noise=noise, predicted_noise=predicted_noise, gradient=gradient)
  b = noise.shape[0]
  _check_t(t, b)
  _check_schedule(num_timesteps, beta_start, beta_end)
  _checks.check_in_range("gamma", gamma, 0.0, float("inf"))
  _, shift, weight = _linear_schedule(num_timesteps, beta_start, beta_end, gamma)
  eps, pred, g = _ops.to_float32(noise, predicted_noise, gradient)
  shape = (b,) + (1,) * (eps.ndim - 1)
  s_t = jnp.asarray(shift, eps.dtype)[t].reshape(shape)
  w_t = jnp.asarray(weight, eps.dtype)[t].reshape(shape)
  err = w_t * jnp.square(eps - (pred + s_t * g))
  return _collectives.global_mean(jnp.sum(err), eps.size, axis_name)


__all__ = ["diti_masks", "diti_condition", "diti_noising", "diti_loss"]
