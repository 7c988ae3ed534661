"""On-device augmentations of 1-D signals (MNIST-1D), as pure JAX functions of a PRNG key.

Single-example ops take one signal [l, c] (or [l]) and are vmapped over the batch with one key per example.
`augment_signals` chains them: crop-and-resample -> stretch -> shift -> amplitude scale -> shear -> mask ->
correlated noise -> white noise. The crop is the 1-D RandomResizedCrop: it takes a random segment and resamples it
to the output length, which may differ from the input's (multi-crop's small local views). All are elementwise,
gathers or a short convolution, so per-example probabilities are plain selects (both branches are cheap).
Samples that fall outside the signal are zero (stretch, 'zeros' shift), matching the zero-padded templates of
the MNIST-1D generator; the default shift is circular, as the generator's own translation is.

Every random op of one example reads its uniforms from fixed slots of one row of draws (`_SLOTS`); the
`random_*` functions draw that row from their key. `augment_signals` draws the rows of the whole global batch at
once (three random calls per view instead of ~20 per example, which XLA compiles several times faster) and each
shard takes its own rows, so a sharded batch gets exactly the draws of one device.
"""
from __future__ import annotations

import dataclasses
import math

import jax
from jax import lax
import jax.numpy as jnp

_PROBABILITIES = ("crop_p", "shift_p", "stretch_p", "scale_p", "shear_p", "noise_p", "corr_noise_p", "mask_p")
_SHIFT_MODES = ("circular", "zeros")


@dataclasses.dataclass(frozen=True)
class SignalRecipe:
  """Every parameter of one augmented signal view; frozen and hashable (a static jit argument).

  The defaults are the identity. Ranges are (low, high) tuples, sampled uniformly unless stated.

  Attributes:
    shift_p: probability of a time shift.
    shift_range: (low, high) integer shift in samples, inclusive; positive moves the signal later.
    shift_mode: 'circular' (samples wrap around, as the MNIST-1D generator's translation) or 'zeros'.
    stretch_p: probability of a time stretch around the centre.
    stretch_range: (low, high) stretch factor, sampled log-uniformly; > 1 dilates, < 1 compresses.
    scale_p: probability of an amplitude scaling.
    scale_range: (low, high) multiplicative amplitude factor.
    shear_p: probability of a linear shear (a ramp added along time, `shear`).
    shear_range: (low, high) slope: the ramp's rise from the first sample to the last.
    noise_p: probability of additive white Gaussian noise.
    noise_std_range: (low, high) range of the noise standard deviation (one draw per example).
    corr_noise_p: probability of additive correlated (low-pass) Gaussian noise (`correlated_noise`).
    corr_noise_std_range: (low, high) range of its standard deviation (one draw per example).
    corr_noise_length_scale: its smoothing kernel's width in samples of the output (> 0).
    mask_p: probability of zeroing a contiguous segment.
    mask_fraction_range: (low, high) length of the segment as a fraction of the signal length.
    crop_p: probability of a random crop (a segment resampled to the output length; otherwise the whole signal
      is resampled to it, which is the identity when the output length is the input's).
    crop_fraction_range: (low, high) length of the cropped segment as a fraction of the signal length.
  """
  shift_p: float = 0.0
  shift_range: tuple[int, int] = (0, 0)
  shift_mode: str = "circular"
  stretch_p: float = 0.0
  stretch_range: tuple[float, float] = (1.0, 1.0)
  scale_p: float = 0.0
  scale_range: tuple[float, float] = (1.0, 1.0)
  shear_p: float = 0.0
  shear_range: tuple[float, float] = (0.0, 0.0)
  noise_p: float = 0.0
  noise_std_range: tuple[float, float] = (0.0, 0.0)
  corr_noise_p: float = 0.0
  corr_noise_std_range: tuple[float, float] = (0.0, 0.0)
  corr_noise_length_scale: float = 1.0
  mask_p: float = 0.0
  mask_fraction_range: tuple[float, float] = (0.0, 0.0)
  crop_p: float = 0.0
  crop_fraction_range: tuple[float, float] = (1.0, 1.0)

  def __post_init__(self):
    for name in ("shift_range", "stretch_range", "scale_range", "shear_range", "noise_std_range",
                 "corr_noise_std_range", "mask_fraction_range", "crop_fraction_range"):
      value = getattr(self, name)
      cast = int if name == "shift_range" else float
      try:
        value = tuple(cast(v) for v in value)
      except TypeError as e:
        raise ValueError(f"{name} must be a (low, high) pair of numbers; got {value!r}.") from e
      if name == "shift_range" and value != tuple(getattr(self, name)):
        raise ValueError(f"shift_range must be integers (samples); got {getattr(self, name)!r}.")
      if len(value) != 2 or value[0] > value[1]:
        raise ValueError(f"{name} must be a (low, high) pair with low <= high; got {value}.")
      object.__setattr__(self, name, value)
    for name in _PROBABILITIES:
      value = getattr(self, name)
      if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1]; got {value}.")
    if self.shift_mode not in _SHIFT_MODES:
      raise ValueError(f"shift_mode must be one of {_SHIFT_MODES}; got {self.shift_mode!r}.")
    if self.stretch_range[0] <= 0.0:
      raise ValueError(f"stretch_range must be > 0; got {self.stretch_range}.")
    for name in ("noise_std_range", "corr_noise_std_range"):
      if getattr(self, name)[0] < 0.0:
        raise ValueError(f"{name} must be >= 0; got {getattr(self, name)}.")
    if not self.corr_noise_length_scale > 0.0:
      raise ValueError(f"corr_noise_length_scale must be > 0 samples; got {self.corr_noise_length_scale}.")
    if not (0.0 <= self.mask_fraction_range[0] and self.mask_fraction_range[1] <= 1.0):
      raise ValueError(f"mask_fraction_range must lie in [0, 1]; got {self.mask_fraction_range}.")
    if not (0.0 < self.crop_fraction_range[0] and self.crop_fraction_range[1] <= 1.0):
      raise ValueError(f"crop_fraction_range must lie in (0, 1]; got {self.crop_fraction_range}.")


# MNIST-1D (Greydanus & Kobak 2020, https://arxiv.org/abs/2011.14439) makes each example from a digit template by
# padding, scaling the amplitude by 1 +/- 0.2, translating circularly by up to 48 of 72 samples (two thirds of the
# signal), adding correlated noise (Gaussian-smoothed, width 2 of 72 samples) and iid noise, adding a linear shear
# and resampling to 40 samples. In the units of the normalised data set (`mnist1d` divides by the data's std,
# 0.154) its shear rises by up to +/-2.4 over the signal, its correlated noise has std 0.61 at a length scale of
# 1.1 of the final 40 samples, and its iid noise std 0.13. The preset draws views from the same kinds of
# nuisance, at strengths chosen on the validation split (the last 10% of train) with SimCLR at 2000 steps of 128
# (experiments/sweep.py; RESULTS.md, "The mnist1d augmentations"; 3 seeds each, mean +/- std): circular shifts
# over the whole signal (+/-20: 94.8 +/- 1.4; +/-8: 92.9 +/- 0.6), a shear of slope U(-2, 2) on every view (with
# noise std U(0, 0.6): 94.3 +/- 1.1 against 93.5 +/- 0.5 for U(-4, 4)), correlated noise of std U(0, 1) (U(0, 0.6):
# 94.3 +/- 1.1) at length scale 2 (3: 93.8 +/- 1.3; 1 was worse in 5 of 6 single-seed comparisons) on every view;
# stretch, scale, mask and white noise as before. The ablation there: without the shift the probe loses 19
# points, without the correlated noise 4.7, without the stretch 4.3; scale, shear, mask and white noise each
# less than one point, within the seeds' spread.
MNIST1D = SignalRecipe(
    shift_p=0.8, shift_range=(-20, 20), shift_mode="circular",
    stretch_p=0.5, stretch_range=(0.85, 1.2),
    scale_p=0.8, scale_range=(0.8, 1.2),
    shear_p=1.0, shear_range=(-2.0, 2.0),
    noise_p=0.8, noise_std_range=(0.0, 0.1),
    corr_noise_p=1.0, corr_noise_std_range=(0.0, 1.0), corr_noise_length_scale=2.0,
    mask_p=0.3, mask_fraction_range=(0.05, 0.2))

NONE = SignalRecipe()


def _as_2d(signal: jax.Array, name: str = "signal") -> jax.Array:
  if signal.ndim == 1:
    return signal[:, None]
  if signal.ndim == 2:
    return signal
  raise ValueError(f"{name} must have shape [l] or [l, c]; got shape {tuple(signal.shape)}.")


def shift(signal: jax.Array, amount: jax.Array | int, *, mode: str = "circular") -> jax.Array:
  """Moves `signal` later in time by `amount` samples: out[t] = signal[t - amount].

  Example:
    >>> x = jnp.arange(6.0)
    >>> shift(x, 2), shift(x, -1, mode="zeros")
    (Array([4., 5., 0., 1., 2., 3.], dtype=float32), Array([1., 2., 3., 4., 5., 0.], dtype=float32))

  Args:
    signal: [l] or [l, c] signal.
    amount: integer shift (may be traced); negative moves earlier.
    mode: 'circular' (wrap around) or 'zeros' (vacated samples are 0).

  Returns:
    The shifted signal, same shape.
  """
  if mode not in _SHIFT_MODES:
    raise ValueError(f"mode must be one of {_SHIFT_MODES}; got {mode!r}.")
  x = _as_2d(signal)
  length = x.shape[0]
  source = jnp.arange(length) - amount
  if mode == "circular":
    out = x[source % length]
  else:
    valid = (source >= 0) & (source < length)
    out = jnp.where(valid[:, None], x[jnp.clip(source, 0, length - 1)], 0.0)
  return out.reshape(signal.shape).astype(signal.dtype)


def stretch(signal: jax.Array, factor: jax.Array | float) -> jax.Array:
  """Resamples `signal` by `factor` around its centre, with linear interpolation; zero outside the input.

  out[t] = signal(c + (t - c) / factor) with c = (l - 1) / 2, so factor > 1 dilates (the ends leave the frame)
  and factor < 1 compresses (zeros enter at both ends).

  Example:
    >>> x = jnp.array([0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    >>> np.asarray(stretch(x, 2.0)).round(2)  # dilated around the centre
    array([0.25, 0.75, 1.  , 1.  , 0.75, 0.25], dtype=float32)
    >>> np.asarray(stretch(x, 0.5)).round(2)  # compressed
    array([0. , 0. , 0.5, 0.5, 0. , 0. ], dtype=float32)

  Args:
    signal: [l] or [l, c] signal.
    factor: stretch factor > 0 (may be traced).

  Returns:
    The stretched signal, same shape.
  """
  x = _as_2d(signal)
  length = x.shape[0]
  centre = (length - 1) / 2
  source = centre + (jnp.arange(length, dtype=jnp.float32) - centre) / factor
  lower = jnp.floor(source)
  weight = (source - lower)[:, None]
  i0 = jnp.clip(lower.astype(jnp.int32), 0, length - 1)
  i1 = jnp.clip(i0 + 1, 0, length - 1)
  out = (1.0 - weight) * x[i0] + weight * x[i1]
  # A tolerance keeps the end samples when factor = 1 makes source land on l - 1 up to float error.
  valid = (source >= -1e-4) & (source <= length - 1 + 1e-4)
  out = jnp.where(valid[:, None], out, 0.0)
  return out.reshape(signal.shape).astype(signal.dtype)


def crop_resample(signal: jax.Array, start: jax.Array | float, size: jax.Array | float, out_length: int
                  ) -> jax.Array:
  """Resamples the segment [start, start + size) of `signal` to `out_length` samples, with linear interpolation.

  Samples are taken at the centres of `out_length` equal cells of the segment, out[i] = signal(start + (i + 1/2)
  size / out_length - 1/2), so the whole signal at its own length (start 0, size l, out_length l) is the identity.

  Example:
    >>> x = jnp.arange(8.0)
    >>> crop_resample(x, 0.0, 8.0, 8)  # the whole signal at its own length: the identity
    Array([0., 1., 2., 3., 4., 5., 6., 7.], dtype=float32)
    >>> crop_resample(x, 2.0, 4.0, 8)  # the segment [2, 6) resampled to 8 samples
    Array([1.75, 2.25, 2.75, 3.25, 3.75, 4.25, 4.75, 5.25], dtype=float32)

  Args:
    signal: [l] or [l, c] signal.
    start: first sample of the segment, in (fractional) samples; may be traced.
    size: segment length in samples, 0 < size <= l; may be traced.
    out_length: number of output samples (static).

  Returns:
    [out_length] or [out_length, c] signal, same dtype.
  """
  x = _as_2d(signal)
  length = x.shape[0]
  source = start + (jnp.arange(out_length, dtype=jnp.float32) + 0.5) * size / out_length - 0.5
  source = jnp.clip(source, 0.0, length - 1)
  lower = jnp.floor(source)
  weight = (source - lower)[:, None]
  i0 = lower.astype(jnp.int32)
  i1 = jnp.minimum(i0 + 1, length - 1)
  out = (1.0 - weight) * x[i0] + weight * x[i1]
  return out.reshape((out_length,) + signal.shape[1:]).astype(signal.dtype)


def mask_segment(signal: jax.Array, start: jax.Array, size: jax.Array) -> jax.Array:
  """Zeros samples start <= t < start + size of `signal` ([l] or [l, c]); start and size may be traced.

  Example:
    >>> mask_segment(jnp.ones(6), 2, 3)
    Array([1., 1., 0., 0., 0., 1.], dtype=float32)
  """
  x = _as_2d(signal)
  t = jnp.arange(x.shape[0])
  inside = (t >= start) & (t < start + size)
  return jnp.where(inside[:, None], 0.0, x).reshape(signal.shape).astype(signal.dtype)


def shear(signal: jax.Array, slope: jax.Array | float) -> jax.Array:
  """Adds a linear ramp along time: out[t] = signal[t] + slope * (t / (l - 1) - 1/2), the same on every channel.

  MNIST-1D's generator shears each example this way (a ramp over [-1/2, 1/2] of a random slope) before resampling
  it to 40 samples, so a label never depends on the ramp.

  Example:
    >>> shear(jnp.zeros(5), 2.0)  # the shear of a constant signal is a line through the centre
    Array([-1. , -0.5,  0. ,  0.5,  1. ], dtype=float32)

  Args:
    signal: [l] or [l, c] signal, l >= 2.
    slope: the ramp's rise from the first sample to the last (may be traced).

  Returns:
    The sheared signal, same shape and dtype.
  """
  x = _as_2d(signal)
  length = x.shape[0]
  if length < 2:
    raise ValueError(f"signal: shear needs at least 2 samples; got shape {tuple(signal.shape)}.")
  ramp = jnp.arange(length, dtype=jnp.float32) / (length - 1) - 0.5
  return (x + slope * ramp[:, None]).reshape(signal.shape).astype(signal.dtype)


def _halfwidth(length_scale: float) -> int:
  return int(math.ceil(4 * length_scale))


def _smooth(white: jax.Array, length_scale: float) -> jax.Array:
  """White noise [l + 2 * halfwidth] -> correlated noise [l] of unit variance (see `correlated_noise`)."""
  half = _halfwidth(length_scale)
  taps = jnp.arange(-half, half + 1, dtype=jnp.float32)
  kernel = jnp.exp(-0.5 * (taps / length_scale) ** 2)
  kernel = kernel / jnp.sqrt(jnp.sum(kernel ** 2))
  return jnp.convolve(white.astype(jnp.float32), kernel, mode="valid")


def correlated_noise(key: jax.Array, length: int, *, length_scale: float) -> jax.Array:
  """Stationary Gaussian noise of unit variance whose autocorrelation is exp(-tau^2 / (4 length_scale^2)).

  White noise smoothed by a Gaussian kernel of standard deviation `length_scale` samples (truncated at 4 of
  them), computed on `length` + 2 * 4 * length_scale samples and cut to `length` so that the ends are as smooth
  as the middle, then divided by the kernel's norm. MNIST-1D's generator adds such noise (`gaussian_filter` of
  width 2 at its 72-sample resolution) to the background of every example.

  Example:
    >>> n = correlated_noise(jax.random.key(0), 4000, length_scale=3.0)
    >>> round(float(n.std()), 1), round(float(jnp.corrcoef(n[:-3], n[3:])[0, 1]), 1)  # exp(-9 / 36) = 0.78
    (1.0, 0.8)

  Args:
    key: PRNG key.
    length: number of samples (static).
    length_scale: the smoothing kernel's standard deviation in samples (static, > 0).

  Returns:
    float32 [length].
  """
  if not length_scale > 0:
    raise ValueError(f"length_scale: expected a positive number of samples, got {length_scale!r}.")
  return _smooth(jax.random.normal(key, (length + 2 * _halfwidth(length_scale),), jnp.float32), length_scale)


# Where each op of one example reads its uniform draws in [0, 1): (first slot, count) in a row of `_NUM_UNIFORMS`.
# The first of an op's slots decides whether it applies (< p). The slots are fixed, so switching one op on or off
# leaves the draws of the others unchanged.
_SLOTS = {"crop": (0, 3), "stretch": (3, 2), "shift": (5, 2), "scale": (7, 2), "shear": (9, 2), "mask": (11, 3),
          "corr_noise": (14, 2), "noise": (16, 2)}
_NUM_UNIFORMS = 18


def _between(u: jax.Array, value_range: tuple[float, float]) -> jax.Array:
  return value_range[0] + u * (value_range[1] - value_range[0])


def _uniforms(key: jax.Array, op: str) -> jax.Array:
  return jax.random.uniform(key, (_SLOTS[op][1],))


def _crop(u, signal, *, p, fraction_range, out_length):
  length = signal.shape[0]
  size = jnp.where(u[0] < p, _between(u[1], fraction_range) * length, float(length))
  return crop_resample(signal, u[2] * (length - size), size, out_length)


def _stretch(u, signal, *, p, stretch_range):
  factor = jnp.exp(_between(u[1], (math.log(stretch_range[0]), math.log(stretch_range[1]))))
  return jnp.where(u[0] < p, stretch(signal, factor), signal)


def _shift(u, signal, *, p, shift_range, mode):
  low, high = shift_range
  amount = jnp.minimum(low + jnp.floor(u[1] * (high - low + 1)), high).astype(jnp.int32)
  return shift(signal, jnp.where(u[0] < p, amount, 0), mode=mode)


def _scale(u, signal, *, p, scale_range):
  return jnp.where(u[0] < p, signal * _between(u[1], scale_range), signal)


def _shear(u, signal, *, p, slope_range):
  return jnp.where(u[0] < p, shear(signal, _between(u[1], slope_range)), signal)


def _mask(u, signal, *, p, fraction_range):
  length = signal.shape[0]
  size = jnp.round(_between(u[1], fraction_range) * length).astype(jnp.int32)
  start = jnp.minimum(jnp.floor(u[2] * (length - size + 1)).astype(jnp.int32), length - size)
  return jnp.where(u[0] < p, mask_segment(signal, start, size), signal)


def _noise(u, white, signal, *, p, std_range):
  return jnp.where(u[0] < p, signal + _between(u[1], std_range) * white, signal)


def _corr_noise(u, white, signal, *, p, std_range, length_scale):
  x = _as_2d(signal)
  noise = _between(u[1], std_range) * _smooth(white, length_scale)
  noisy = (x + noise[:, None]).reshape(signal.shape).astype(signal.dtype)
  return jnp.where(u[0] < p, noisy, signal)


def random_crop(key: jax.Array, signal: jax.Array, *, p: float, fraction_range: tuple[float, float],
                out_length: int) -> jax.Array:
  """With probability `p`, resamples a random segment of f * l samples, f ~ U[fraction_range], to `out_length`;
  otherwise resamples the whole signal to `out_length`. The segment's start is uniform where it fits.

  Example:
    >>> x = jnp.arange(8.0)
    >>> out = random_crop(jax.random.key(0), x, p=1.0, fraction_range=(0.5, 0.5), out_length=8)
    >>> out.shape, np.diff(out).round(3)  # a random 4-sample segment stretched to 8 samples: steps of 0.5
    ((8,), array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], dtype=float32))
  """
  return _crop(_uniforms(key, "crop"), signal, p=p, fraction_range=fraction_range, out_length=out_length)


def random_shear(key: jax.Array, signal: jax.Array, *, p: float, slope_range: tuple[float, float]) -> jax.Array:
  """With probability `p`, shears by a slope ~ U[slope_range] (see `shear`).

  Example:
    >>> out = random_shear(jax.random.key(0), jnp.zeros(3), p=1.0, slope_range=(4.0, 4.0))
    >>> out
    Array([-2.,  0.,  2.], dtype=float32)
  """
  return _shear(_uniforms(key, "shear"), signal, p=p, slope_range=slope_range)


def random_correlated_noise(key: jax.Array, signal: jax.Array, *, p: float, std_range: tuple[float, float],
                            length_scale: float) -> jax.Array:
  """With probability `p`, adds `correlated_noise` times a std ~ U[std_range] (one draw per signal; the channels
  of a [l, c] signal share the noise).

  Example:
    >>> noisy = random_correlated_noise(jax.random.key(0), jnp.zeros(2000), p=1.0, std_range=(0.5, 0.5),
    ...                                 length_scale=2.0)
    >>> round(float(noisy.std()), 1)
    0.5
  """
  if not length_scale > 0:
    raise ValueError(f"length_scale: expected a positive number of samples, got {length_scale!r}.")
  k_u, k_white = jax.random.split(key)
  white = jax.random.normal(k_white, (signal.shape[0] + 2 * _halfwidth(length_scale),), jnp.float32)
  return _corr_noise(_uniforms(k_u, "corr_noise"), white, signal, p=p, std_range=std_range,
                     length_scale=length_scale)


def random_shift(key: jax.Array, signal: jax.Array, *, p: float, shift_range: tuple[int, int],
                 mode: str = "circular") -> jax.Array:
  """With probability `p`, shifts by an integer ~ U{shift_range[0], ..., shift_range[1]} (see `shift`).

  Example:
    >>> x = jnp.arange(6.0)
    >>> random_shift(jax.random.key(0), x, p=1.0, shift_range=(2, 2))
    Array([4., 5., 0., 1., 2., 3.], dtype=float32)
    >>> random_shift(jax.random.key(0), x, p=0.0, shift_range=(2, 2))
    Array([0., 1., 2., 3., 4., 5.], dtype=float32)
  """
  return _shift(_uniforms(key, "shift"), signal, p=p, shift_range=shift_range, mode=mode)


def random_stretch(key: jax.Array, signal: jax.Array, *, p: float,
                   stretch_range: tuple[float, float]) -> jax.Array:
  """With probability `p`, stretches by a factor log-uniform in `stretch_range` (see `stretch`).

  Example:
    >>> x = jnp.array([0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    >>> np.asarray(random_stretch(jax.random.key(0), x, p=1.0, stretch_range=(2.0, 2.0))).round(2)
    array([0.25, 0.75, 1.  , 1.  , 0.75, 0.25], dtype=float32)
  """
  return _stretch(_uniforms(key, "stretch"), signal, p=p, stretch_range=stretch_range)


def random_scale(key: jax.Array, signal: jax.Array, *, p: float, scale_range: tuple[float, float]) -> jax.Array:
  """With probability `p`, multiplies the amplitude by a factor ~ U[scale_range].

  Example:
    >>> random_scale(jax.random.key(0), jnp.ones(4), p=1.0, scale_range=(3.0, 3.0))
    Array([3., 3., 3., 3.], dtype=float32)
  """
  return _scale(_uniforms(key, "scale"), signal, p=p, scale_range=scale_range)


def random_noise(key: jax.Array, signal: jax.Array, *, p: float, std_range: tuple[float, float]) -> jax.Array:
  """With probability `p`, adds iid Gaussian noise whose std ~ U[std_range] is drawn once per signal.

  Example:
    >>> x = jnp.zeros(1000)
    >>> noisy = random_noise(jax.random.key(0), x, p=1.0, std_range=(0.5, 0.5))
    >>> round(float(noisy.std()), 1)
    0.5
  """
  k_u, k_white = jax.random.split(key)
  white = jax.random.normal(k_white, signal.shape, signal.dtype)
  return _noise(_uniforms(k_u, "noise"), white, signal, p=p, std_range=std_range)


def random_mask(key: jax.Array, signal: jax.Array, *, p: float,
                fraction_range: tuple[float, float]) -> jax.Array:
  """With probability `p`, zeros a contiguous segment of round(f * l) samples, f ~ U[fraction_range].

  The segment's start is uniform over the positions where it fits entirely.

  Example:
    >>> out = random_mask(jax.random.key(0), jnp.ones(10), p=1.0, fraction_range=(0.3, 0.3))
    >>> int((out == 0).sum())  # round(0.3 * 10) samples in one contiguous run
    3
  """
  return _mask(_uniforms(key, "mask"), signal, p=p, fraction_range=fraction_range)


def _augment_one(u: jax.Array, white: dict, signal: jax.Array, recipe: SignalRecipe, out_length: int) -> jax.Array:
  """One example's view from its row of uniforms `u` [_NUM_UNIFORMS] and its white noise ('noise', 'corr_noise')."""
  r = recipe
  part = lambda op: u[_SLOTS[op][0]:_SLOTS[op][0] + _SLOTS[op][1]]
  # Ops with probability 0 are dropped at trace time, so the identity recipe costs nothing.
  if r.crop_p > 0 or out_length != signal.shape[0]:
    signal = _crop(part("crop"), signal, p=r.crop_p, fraction_range=r.crop_fraction_range, out_length=out_length)
  if r.stretch_p > 0:
    signal = _stretch(part("stretch"), signal, p=r.stretch_p, stretch_range=r.stretch_range)
  if r.shift_p > 0:
    signal = _shift(part("shift"), signal, p=r.shift_p, shift_range=r.shift_range, mode=r.shift_mode)
  if r.scale_p > 0:
    signal = _scale(part("scale"), signal, p=r.scale_p, scale_range=r.scale_range)
  if r.shear_p > 0:
    signal = _shear(part("shear"), signal, p=r.shear_p, slope_range=r.shear_range)
  if r.mask_p > 0:
    signal = _mask(part("mask"), signal, p=r.mask_p, fraction_range=r.mask_fraction_range)
  if r.corr_noise_p > 0:
    signal = _corr_noise(part("corr_noise"), white["corr_noise"], signal, p=r.corr_noise_p,
                         std_range=r.corr_noise_std_range, length_scale=r.corr_noise_length_scale)
  if r.noise_p > 0:
    signal = _noise(part("noise"), white["noise"], signal, p=r.noise_p, std_range=r.noise_std_range)
  return signal


def _check_batch(x: jax.Array) -> None:
  if x.ndim not in (2, 3):
    raise ValueError(f"x must be signals of shape [b, l] or [b, l, c]; got shape {tuple(x.shape)}.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"x must be floating signals; got dtype {x.dtype}.")


def augment_signals(key: jax.Array, x: jax.Array, recipe: SignalRecipe, *, out_size: int | None = None,
                    axis_name: str | None = None) -> jax.Array:
  """One augmented view of a batch of signals, with per-example randomness.

  The draws are made for the global batch at once (one row of uniforms and of white noise per example) and each
  shard takes the rows of its examples, so with `axis_name` the shards of a `jax.shard_map` get exactly the
  draws of one device over the global batch.

  Example:
    >>> x = jnp.asarray(np.random.RandomState(0).randn(4, 40), jnp.float32)
    >>> view = augment_signals(jax.random.key(0), x, MNIST1D)
    >>> view.shape, view.dtype
    ((4, 40), dtype('float32'))
    >>> augment_signals(jax.random.key(0), x, MNIST1D, out_size=20).shape  # a shorter (local) view
    (4, 20)

  Args:
    key: PRNG key, the same on every device.
    x: [b, l] or [b, l, c] float signals (channels share one transform per example).
    recipe: the view's parameters.
    out_size: output length (multi-crop's local views are shorter); None keeps the input length l.
    axis_name: mesh axis when `x` is this device's shard inside `jax.shard_map`, else None.

  Returns:
    Augmented signals [b, out_size] or [b, out_size, c] (out_size = l when None), dtype of `x`.
  """
  _check_batch(x)
  batch, length = x.shape[:2]
  out_length = length if out_size is None else int(out_size)
  if out_length < 1:
    raise ValueError(f"out_size must be a positive length; got {out_size}.")
  shards = 1 if axis_name is None else lax.axis_size(axis_name)
  first = 0 if axis_name is None else lax.axis_index(axis_name) * batch
  rows = lambda a: lax.dynamic_slice_in_dim(a, first, batch) if shards > 1 else a
  k_u, k_noise, k_corr = jax.random.split(key, 3)
  u = rows(jax.random.uniform(k_u, (shards * batch, _NUM_UNIFORMS)))
  white = {}
  if recipe.noise_p > 0:
    white["noise"] = rows(jax.random.normal(k_noise, (shards * batch, out_length) + x.shape[2:], x.dtype))
  if recipe.corr_noise_p > 0:
    padded = out_length + 2 * _halfwidth(recipe.corr_noise_length_scale)
    white["corr_noise"] = rows(jax.random.normal(k_corr, (shards * batch, padded), jnp.float32))
  return jax.vmap(lambda u_i, w_i, s: _augment_one(u_i, w_i, s, recipe, out_length))(u, white, x)


def eval_signals(x: jax.Array, recipe: SignalRecipe) -> jax.Array:
  """Deterministic eval view of [b, l] or [b, l, c] signals: the identity (shape and dtype checked).

  Example:
    >>> x = jnp.ones((2, 40))
    >>> bool((eval_signals(x, MNIST1D) == x).all())
    True
  """
  del recipe  # Signals need no eval preprocessing; the argument keeps the API uniform with images.
  _check_batch(x)
  return x
