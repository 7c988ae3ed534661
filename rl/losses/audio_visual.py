"""Audio-visual objectives: lip-audio synchrony (CoGenAV) and sound localisation from motion (SLfM).

- `cogenav_sync_loss`: CoGenAV's contrastive synchronisation. Frame-aligned audio and lip features of a clip are
  scored by their mean rectified cosine, and a binary cross-entropy pulls synchronised pairs to 1 and
  unsynchronised ones to 0.
- `slfm_angle`, `slfm_geometric_loss`, `slfm_binaural_cue`, `slfm_binaural_loss`, `slfm_symmetry_loss`, `slfm_loss`:
  SLfM's self-supervised pose objective. A visual model predicts the camera rotation between two views, an audio
  model the sound direction in each view, and the losses make them agree (the rotation must carry one direction
  onto the other), keep the audio predictions on the side that the interaural level difference says, and make
  mirrored inputs give opposite angles.
- `slfm_binauralization_loss`: SLfM's cross-view binauralisation pretext loss, which learns the features.

The encoders and heads are the caller's. Neither paper's method section was in our stored copies (they gave
abstracts and introductions), so every function here follows the authors' released code, named in its docstring.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.hypersphere import l2_normalize

_ACTIVATIONS = ("tanh", "sigmoid", "clamp")


def _clamped_log(p: jax.Array) -> jax.Array:
  """log p clamped below at -100, as `torch.nn.functional.binary_cross_entropy`; gradient 0 (not NaN) at p = 0."""
  positive = p > 0
  return jnp.maximum(jnp.where(positive, jnp.log(jnp.where(positive, p, 1.0)), -100.0), -100.0)


def _bce(p: jax.Array, y: jax.Array) -> jax.Array:
  return -(y * _clamped_log(p) + (1.0 - y) * _clamped_log(1.0 - p))


def _check_same(first: str, x, **others) -> None:
  for name, y in others.items():
    if not hasattr(y, "shape") or tuple(y.shape) != tuple(x.shape):
      got = f"shape {tuple(y.shape)}" if hasattr(y, "shape") else type(y).__name__
      raise ValueError(f"{name} must have the shape of {first}, {tuple(x.shape)}; got {got}.")


def _check_angles(name: str, x) -> None:
  _checks.check_array(name, x, shape_doc="[b] or [b, ...]")
  if x.ndim < 1 or x.size == 0:
    raise ValueError(f"{name} must have shape [b] or [b, ...] with b >= 1; got shape {tuple(x.shape)}.")


# ---------------------------------------------------------------------------------------------------------------
# CoGenAV
# ---------------------------------------------------------------------------------------------------------------

def cogenav_sync_loss(audio: jax.Array, video: jax.Array, labels: jax.Array, *, mask: jax.Array | None = None,
                      axis_name: str | None = None) -> jax.Array:
  r"""CoGenAV's contrastive synchronisation: a sequence-to-sequence, frame-by-frame audio-lip agreement score.

  For pair i with audio features a_{it} and visual (lip) features v_{it} on the same T time steps, the score is the
  mean over frames of the rectified cosine (ReLU drops frames that disagree instead of letting them push the
  score down), and a binary cross-entropy fits it to the pair's label y_i (1: synchronised, 0: not):

  .. math::
      d_i = \frac{1}{T}\sum_{t=1}^{T} \max\Big(0, \frac{a_{it}^\top v_{it}}{\|a_{it}\|\,\|v_{it}\|}\Big), \qquad
      L = -\frac{1}{B}\sum_{i=1}^{B} \Big[y_i \log d_i + (1 - y_i)\log(1 - d_i)\Big],

  the mean over the GLOBAL batch of B pairs (`psum` under `axis_name`); logs are clamped at -100 as PyTorch's
  `binary_cross_entropy`, so d_i = 0 (every frame disagrees) costs 100 for a synchronised pair, not infinity.

  Source: after the authors' code, HumanMLLM/CoGenAV, models/cogenav.py (`seq2seq_contrastive_loss`); the paper's
  equation was not in our stored copies. The released code does not show how the unsynchronised pairs are drawn:
  the caller builds them (e.g. audio of another clip, or shifted in time) and passes their labels. CoGenAV trains
  this term together with a generative one (text prediction through a frozen Whisper decoder, with a learned
  adapter), which is a token cross-entropy of the caller's decoder and is not here. `mask` is our addition for
  padded sequences; without it every frame counts, as in the code.

  Args:
    audio: [b, t, d] audio features (normalised here).
    video: [b, t, d] visual features on the same time steps; row i pairs with `audio[i]`.
    labels: [b] synchronisation labels y in {0, 1} (bool, int or float; soft labels in [0, 1] also work).
    mask: optional [b, t] valid-frame mask (1 valid, 0 padding); d_i averages the valid frames only.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard and the mean runs over every device.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input).

  Example:
    >>> a = jnp.ones((2, 3, 4))
    >>> v = jnp.stack([jnp.ones((3, 4)), -jnp.ones((3, 4))])  # pair 0 agrees on every frame, pair 1 on none
    >>> float(cogenav_sync_loss(a, v, jnp.array([1, 0])))  # d = (1, 0) matches the labels exactly
    0.0

  Bai, Wei, Bo & Ma, "CoGenAV: Versatile Audio-Visual Representation Learning via Contrastive-Generative
  Synchronization", 2025, https://arxiv.org/abs/2505.03186 (contrastive synchronisation); code
  github.com/HumanMLLM/CoGenAV.
  """
  _checks.check_array("audio", audio, ndim=3, shape_doc="[b, t, d]")
  _checks.check_array("video", video, ndim=3, shape_doc="[b, t, d]")
  _checks.check_same_shape(audio=audio, video=video)
  b, t, _ = audio.shape
  if not hasattr(labels, "shape") or tuple(labels.shape) != (b,):
    got = f"shape {tuple(labels.shape)}" if hasattr(labels, "shape") else type(labels).__name__
    raise ValueError(f"labels must have shape [{b}] (one label per pair of audio, [b, t, d]); got {got}.")
  if mask is not None and (not hasattr(mask, "shape") or tuple(mask.shape) != (b, t)):
    got = f"shape {tuple(mask.shape)}" if hasattr(mask, "shape") else type(mask).__name__
    raise ValueError(f"mask must have shape [{b}, {t}] (the [b, t] of audio); got {got}.")
  a, v = _ops.to_float32(audio, video)
  frame_scores = jax.nn.relu(jnp.sum(l2_normalize(a) * l2_normalize(v), axis=-1))  # [b, t]
  if mask is None:
    d = jnp.mean(frame_scores, axis=-1)
  else:
    m = jnp.asarray(mask, a.dtype)
    d = jnp.sum(frame_scores * m, axis=-1) / jnp.maximum(jnp.sum(m, axis=-1), 1.0)
  y = jnp.asarray(labels, a.dtype)
  return _collectives.global_mean(jnp.sum(_bce(d, y)), b, axis_name)


# ---------------------------------------------------------------------------------------------------------------
# SLfM
# ---------------------------------------------------------------------------------------------------------------

def slfm_angle(logits: jax.Array, *, max_angle: float = math.pi, activation: str = "tanh") -> jax.Array:
  r"""SLfM's map from a head's scalar output to an angle in [-max_angle, max_angle] (radians).

  .. math::
      \theta = \theta_{\max}\, g(x), \qquad g = \tanh \text{ (default)}, \quad 2\sigma(x) - 1, \quad
      \text{or } \operatorname{clip}(x, -1, 1).

  The released configs use tanh with max_angle = pi for the sound direction (full circle) and, with
  `--finer_rotation`, pi / 2 for the camera rotation. Conventions (the code's): sound direction positive to the
  LEFT, camera rotation positive when the camera turns LEFT.

  Source: `logit2angle` and `rot2theta` of SLfMGeoNet (IFICL/SLfM, slfm/models/slfm_geo_net.py).

  Args:
    logits: head outputs, any shape.
    max_angle: the largest angle, > 0 (pi).
    activation: "tanh", "sigmoid" (2 sigmoid(x) - 1) or "clamp".

  Returns:
    Angles in radians, the shape of `logits` (float32 for float32/bfloat16 input).

  Example:
    >>> slfm_angle(jnp.array([0.0, 100.0]), max_angle=2.0).tolist()
    [0.0, 2.0]

  Chen, Qian & Owens, "Sound Localization from Motion: Jointly Learning Sound Direction and Camera Rotation",
  ICCV 2023, https://arxiv.org/abs/2303.11329.
  """
  _checks.check_array("logits", logits)
  _checks.check_positive("max_angle", max_angle)
  if activation not in _ACTIVATIONS:
    raise ValueError(f"activation must be one of {_ACTIVATIONS}; got {activation!r}.")
  x = _ops.to_float32(logits)
  if activation == "tanh":
    g = jnp.tanh(x)
  elif activation == "sigmoid":
    g = 2.0 * jax.nn.sigmoid(x) - 1.0
  else:
    g = jnp.clip(x, -1.0, 1.0)
  return g * max_angle


def _geometric_terms(source, target, rotation, front_back_ambiguity):
  """Per-pair 1 - <R(-phi) u_s, u_t> (minimised over the four front/back readings), [...]."""
  us = jnp.stack([jnp.cos(source), jnp.sin(source)], axis=-1)
  ut = jnp.stack([jnp.cos(target), jnp.sin(target)], axis=-1)
  c, s = jnp.cos(rotation), jnp.sin(rotation)

  def agreement(u, w):  # <R(-phi) u, w>, R(-phi) = [[c, s], [-s, c]]
    return (c * u[..., 0] + s * u[..., 1]) * w[..., 0] + (-s * u[..., 0] + c * u[..., 1]) * w[..., 1]

  if not front_back_ambiguity:
    return 1.0 - agreement(us, ut)
  # The front-back mirror of a direction (pi - theta, or -pi - theta) keeps its sine and negates its cosine.
  mirror = jnp.array([-1.0, 1.0], us.dtype)
  readings = [(us, ut), (us * mirror, ut * mirror), (us, ut * mirror), (us * mirror, ut)]
  return jnp.min(jnp.stack([1.0 - agreement(u, w) for u, w in readings]), axis=0)


def slfm_geometric_loss(source_angle: jax.Array, target_angle: jax.Array, rotation: jax.Array, *,
                        front_back_ambiguity: bool = True, axis_name: str | None = None) -> jax.Array:
  r"""SLfM's cross-modal geometric consistency: the predicted camera rotation must turn one sound direction into
  the other.

  With theta_s, theta_t the audio model's sound directions in the source and target views and phi the visual
  model's camera rotation from source to target, u(theta) = (cos theta, sin theta) and R the 2-D rotation, a sound
  source that stays put must satisfy theta_t = theta_s - phi (turning the head left moves the source right):

  .. math::
      \ell_i = 1 - \big\langle R(-\phi_i)\, u(\theta_{s,i}),\; u(\theta_{t,i}) \big\rangle
             = 1 - \cos(\theta_{t,i} - \theta_{s,i} + \phi_i), \qquad
      L = \frac{1}{N}\sum_i \ell_i ,

  the mean over every pair of the GLOBAL batch. Binaural cues cannot tell a source in front from its mirror image
  behind (theta and pi - theta); with `front_back_ambiguity` (the released training script, `--sound_permutation`)
  each pair takes the smallest loss over the four readings (theta_s or its mirror) x (theta_t or its mirror).
  The project page writes the constraint as phi_{s,t} = theta_t - theta_s, i.e. with the opposite sign for phi;
  negate `rotation` for that convention.

  Source: after the authors' code, `SLfMGeoNet.calc_geometric_loss` and `calc_geometric_loss_with_permutation`
  (IFICL/SLfM, slfm/models/slfm_geo_net.py): an L1 loss of the dot product against 1, which equals 1 - cos. The
  code weighs it by twice the `--geometric_loss_ratio` ("a factor between code implementation and paper
  formulation": 2(1 - cos) = ||R u_s - u_t||^2); `slfm_loss` applies that weighting. The paper's equation was not
  in our stored copies.

  Args:
    source_angle: [b] (or [b, ...]) sound directions theta_s in radians (see `slfm_angle`), positive to the left.
    target_angle: theta_t in the target view, the shape of `source_angle`.
    rotation: camera rotations phi from source to target, radians, positive when turning left; same shape.
    front_back_ambiguity: True (the released script) takes the best of the four front/back readings per pair.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard and the mean runs over every device.

  Returns:
    The scalar loss in [0, 2] (float32 for float32/bfloat16 input).

  Example:
    >>> s, phi = jnp.array([0.5]), jnp.array([0.2])
    >>> abs(round(float(slfm_geometric_loss(s, s - phi, phi)), 6))  # consistent: theta_t = theta_s - phi
    0.0
    >>> round(float(slfm_geometric_loss(s, s + phi, phi, front_back_ambiguity=False)), 4)  # 1 - cos(0.4)
    0.0789

  Chen, Qian & Owens, "Sound Localization from Motion: Jointly Learning Sound Direction and Camera Rotation",
  ICCV 2023, https://arxiv.org/abs/2303.11329; code github.com/IFICL/SLfM.
  """
  _check_angles("source_angle", source_angle)
  _check_same("source_angle", source_angle, target_angle=target_angle, rotation=rotation)
  _checks.check_array("target_angle", target_angle)
  _checks.check_array("rotation", rotation)
  s, t, phi = _ops.to_float32(source_angle, target_angle, rotation)
  terms = _geometric_terms(s, t, phi, front_back_ambiguity)
  return _collectives.global_mean(jnp.sum(terms), terms.size, axis_name)


def slfm_binaural_cue(spectrogram: jax.Array) -> jax.Array:
  r"""SLfM's weak label for the sound direction: is the sound louder in the left ear or the right one?

  From the magnitude spectrograms of the left (channel 0) and right (channel 1) ears, each time frame votes for the
  louder side by its interaural level difference (ILD) of the frequency-averaged magnitudes, and the majority of
  frames decides:

  .. math::
      \mathrm{ILD}_\tau = \log\frac{\frac{1}{F}\sum_f |S_{L}(f, \tau)|}{\frac{1}{F}\sum_f |S_{R}(f, \tau)|}, \qquad
      c = \tfrac12\Big(1 + \operatorname{sign}\sum_\tau \operatorname{sign}\mathrm{ILD}_\tau\Big)
        \in \{0, \tfrac12, 1\},

  1 when the source is on the left, 0 on the right, 1/2 on a tie. The sign of the ILD is computed as the sign of
  the difference of the two means, which is the same for positive magnitudes and stays defined (0) for silence,
  where the code's log ratio would give NaN. The label carries no gradient.

  Source: `SLfMGeoNet.calc_binaural_loss` (IFICL/SLfM, slfm/models/slfm_geo_net.py), "advanced IID cues".

  Args:
    spectrogram: [..., 2, f, t] spectrograms of the two ears (channel 0 left, 1 right): linear magnitudes, or the
      complex STFT (its modulus is taken). The code crops the audio to the conditioning clip length first.

  Returns:
    [...] labels in {0, 0.5, 1} (float32 for float32/bfloat16/complex64 input), for `slfm_binaural_loss`.

  Example:
    >>> left_louder = jnp.stack([2 * jnp.ones((3, 4)), jnp.ones((3, 4))])  # [2, f, t]
    >>> slfm_binaural_cue(jnp.stack([left_louder, left_louder[::-1]])).tolist()
    [1.0, 0.0]

  Chen, Qian & Owens, "Sound Localization from Motion: Jointly Learning Sound Direction and Camera Rotation",
  ICCV 2023, https://arxiv.org/abs/2303.11329; code github.com/IFICL/SLfM.
  """
  if not hasattr(spectrogram, "shape") or not hasattr(spectrogram, "dtype"):
    raise ValueError(f"spectrogram must be an array of shape [..., 2, f, t]; got {type(spectrogram).__name__}.")
  if spectrogram.ndim < 3 or spectrogram.shape[-3] != 2:
    raise ValueError(f"spectrogram must have shape [..., 2, f, t] (left and right ears on axis -3); got shape "
                     f"{tuple(spectrogram.shape)}.")
  if not (jnp.issubdtype(spectrogram.dtype, jnp.floating) or jnp.issubdtype(spectrogram.dtype, jnp.complexfloating)):
    raise ValueError(f"spectrogram must be a floating or complex array; got dtype {spectrogram.dtype}.")
  mag = jnp.abs(spectrogram)
  mag = mag.astype(jnp.promote_types(mag.dtype, jnp.float32))
  level = jnp.mean(mag, axis=-2)  # [..., 2, t]: frequency-averaged magnitude per ear and frame
  votes = jnp.sign(level[..., 0, :] - level[..., 1, :])
  return jax.lax.stop_gradient((jnp.sign(jnp.sum(votes, axis=-1)) + 1.0) / 2.0)


def slfm_binaural_loss(angle: jax.Array, cue: jax.Array, *, axis_name: str | None = None) -> jax.Array:
  r"""SLfM's binaural-cue loss: the predicted sound direction must lie on the side the ILD says.

  The sine of the predicted direction theta (positive to the left) maps it to a probability of "left", fitted to
  the ILD label c of `slfm_binaural_cue` by a binary cross-entropy (logs clamped at -100, as PyTorch):

  .. math::
      p = \tfrac12(1 + \sin\theta), \qquad
      L = -\frac{1}{N}\sum_i \big[c_i \log p_i + (1 - c_i)\log(1 - p_i)\big],

  the mean over every prediction of the GLOBAL batch (the code averages the views of each example, then the
  examples: the same number when every example has as many views).

  Source: `SLfMGeoNet.calc_binaural_loss` (IFICL/SLfM, slfm/models/slfm_geo_net.py).

  Args:
    angle: [b] (or [b, ...], e.g. [b, views]) predicted sound directions in radians.
    cue: labels in [0, 1] of the same shape (`slfm_binaural_cue` of the same audio).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard and the mean runs over every device.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input).

  Example:
    >>> right = jnp.array([-jnp.pi / 2])  # p = 0
    >>> [abs(float(slfm_binaural_loss(right, jnp.array([c])))) for c in (0.0, 1.0)]  # clamped log: 100, not inf
    [0.0, 100.0]

  Chen, Qian & Owens, "Sound Localization from Motion: Jointly Learning Sound Direction and Camera Rotation",
  ICCV 2023, https://arxiv.org/abs/2303.11329; code github.com/IFICL/SLfM.
  """
  _check_angles("angle", angle)
  _check_same("angle", angle, cue=cue)
  theta = _ops.to_float32(angle)
  p = (jnp.sin(theta) + 1.0) / 2.0
  c = jax.lax.stop_gradient(jnp.asarray(cue, theta.dtype))
  return _collectives.global_mean(jnp.sum(_bce(p, c)), theta.size, axis_name)


def slfm_symmetry_loss(angle: jax.Array, mirrored_angle: jax.Array, *, axis_name: str | None = None) -> jax.Array:
  r"""SLfM's symmetry regulariser: a mirrored input must give the opposite angle.

  .. math:: L = \frac{1}{N}\sum_i \big|\theta_i + \theta'_i\big| ,

  the mean over the GLOBAL batch. SLfM uses it twice: for the audio model, theta' is its prediction on the same
  binaural audio with the left and right channels swapped; for the visual model, theta is the rotation from view
  s to view t and theta' the rotation predicted from t to s.

  Source: `SLfMGeoNet.calc_audio_symmetric_loss` and `calc_rota_symmetric_loss` (IFICL/SLfM,
  slfm/models/slfm_geo_net.py), L1 against 0.

  Args:
    angle: [b] (or [b, ...]) angles in radians.
    mirrored_angle: the angles predicted for the mirrored inputs, the same shape.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard and the mean runs over every device.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input).

  Example:
    >>> float(slfm_symmetry_loss(jnp.array([0.3, -1.0]), jnp.array([-0.3, 0.5])))  # (0 + 0.5) / 2
    0.25

  Chen, Qian & Owens, "Sound Localization from Motion: Jointly Learning Sound Direction and Camera Rotation",
  ICCV 2023, https://arxiv.org/abs/2303.11329; code github.com/IFICL/SLfM.
  """
  _check_angles("angle", angle)
  _check_same("angle", angle, mirrored_angle=mirrored_angle)
  _checks.check_array("mirrored_angle", mirrored_angle)
  a, m = _ops.to_float32(angle, mirrored_angle)
  return _collectives.global_mean(jnp.sum(jnp.abs(a + m)), a.size, axis_name)


def slfm_loss(source_angle: jax.Array, target_angle: jax.Array, rotation: jax.Array, reverse_rotation: jax.Array,
              source_flipped_angle: jax.Array, target_flipped_angle: jax.Array, source_cue: jax.Array,
              target_cue: jax.Array, *, geometric_weight: float = 5.0, binaural_weight: float = 1.0,
              symmetric_weight: float = 1.0, front_back_ambiguity: bool = True, return_terms: bool = False,
              axis_name: str | None = None) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
  r"""SLfM's training objective for the audio and camera heads: geometric consistency plus the two regularisers.

  For pairs (source view s, target view t) with predicted sound directions theta_s, theta_t, their predictions
  theta'_s, theta'_t on channel-swapped audio, the rotation phi from s to t and phi' from t to s:

  .. math::
      L = 2\lambda_g\, L_{\mathrm{geo}}(\theta_s, \theta_t, \phi)
          + \lambda_b\, L_{\mathrm{bin}}\big([\theta_s, \theta_t], [c_s, c_t]\big)
          + \lambda_s \Big(L_{\mathrm{sym}}\big([\theta_s, \theta_t], [\theta'_s, \theta'_t]\big)
          + L_{\mathrm{sym}}(\phi, \phi')\Big),

  with `slfm_geometric_loss`, `slfm_binaural_loss` and `slfm_symmetry_loss`, each a mean over the GLOBAL batch
  (the binaural and audio-symmetry terms over both views). The factor 2 on lambda_g is the code's.

  Source: `SLfMGeoNet.calc_loss` (IFICL/SLfM, slfm/models/slfm_geo_net.py) with the weights of the released
  training script (slfm/scripts/training/slfm-geometric.sh: geometric 5, binaural 1, symmetric 1, with
  `--sound_permutation`); there the backbones are frozen and only the two heads train. The script trains three
  views per example (one source, two targets); here each row is one (source, target) pair, which weighs the
  source's binaural and symmetry terms once per pair instead of once per example.

  Args:
    source_angle: [b] sound directions theta_s (radians, `slfm_angle`), positive to the left.
    target_angle: [b] theta_t.
    rotation: [b] camera rotations phi from s to t (radians), positive turning left.
    reverse_rotation: [b] rotations phi' predicted from t to s.
    source_flipped_angle: [b] theta'_s, the audio model on the source audio with its two channels swapped.
    target_flipped_angle: [b] theta'_t.
    source_cue: [b] ILD labels of the source audio (`slfm_binaural_cue`).
    target_cue: [b] ILD labels of the target audio.
    geometric_weight: lambda_g (5, the released script); the geometric term is weighted 2 lambda_g.
    binaural_weight: lambda_b (1).
    symmetric_weight: lambda_s (1).
    front_back_ambiguity: passed to `slfm_geometric_loss` (True, the released script).
    return_terms: also return the unweighted terms {"geometric", "binaural", "audio_symmetry",
      "rotation_symmetry"}.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard and every mean runs over every device.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input); with `return_terms`, `(loss, terms)`.

  Example:
    >>> s, phi = jnp.array([0.5]), jnp.array([0.2])  # consistent, mirrored inputs give opposite angles
    >>> loss, terms = slfm_loss(s, s - phi, phi, -phi, -s, -(s - phi), jnp.ones(1), jnp.ones(1), return_terms=True)
    >>> sorted(terms), abs(round(float(terms["geometric"]), 6)), float(terms["rotation_symmetry"])
    (['audio_symmetry', 'binaural', 'geometric', 'rotation_symmetry'], 0.0, 0.0)

  Chen, Qian & Owens, "Sound Localization from Motion: Jointly Learning Sound Direction and Camera Rotation",
  ICCV 2023, https://arxiv.org/abs/2303.11329; code github.com/IFICL/SLfM.
  """
  _checks.check_array("source_angle", source_angle, ndim=1, shape_doc="[b]")
  _check_same("source_angle", source_angle, target_angle=target_angle, rotation=rotation,
              reverse_rotation=reverse_rotation, source_flipped_angle=source_flipped_angle,
              target_flipped_angle=target_flipped_angle, source_cue=source_cue, target_cue=target_cue)
  for name, w in (("geometric_weight", geometric_weight), ("binaural_weight", binaural_weight),
                  ("symmetric_weight", symmetric_weight)):
    if isinstance(w, (int, float)) and w < 0:
      raise ValueError(f"{name} must be >= 0; got {w}.")
  both = jnp.stack([source_angle, target_angle], axis=-1)  # [b, 2]: the two views of each pair
  geometric = slfm_geometric_loss(source_angle, target_angle, rotation, front_back_ambiguity=front_back_ambiguity,
                                  axis_name=axis_name)
  binaural = slfm_binaural_loss(both, jnp.stack([source_cue, target_cue], axis=-1), axis_name=axis_name)
  audio_symmetry = slfm_symmetry_loss(both, jnp.stack([source_flipped_angle, target_flipped_angle], axis=-1),
                                      axis_name=axis_name)
  rotation_symmetry = slfm_symmetry_loss(rotation, reverse_rotation, axis_name=axis_name)
  loss = (2.0 * geometric_weight * geometric + binaural_weight * binaural
          + symmetric_weight * (audio_symmetry + rotation_symmetry))
  if return_terms:
    return loss, {"geometric": geometric, "binaural": binaural, "audio_symmetry": audio_symmetry,
                  "rotation_symmetry": rotation_symmetry}
  return loss


def slfm_binauralization_loss(pred: jax.Array, target: jax.Array, *, loss: str = "l1",
                              axis_name: str | None = None) -> jax.Array:
  r"""SLfM's cross-view binauralisation pretext loss, which learns the audio-visual features.

  The model sees the binaural audio of a source view and the images of both views, and the mono mixture
  x_L + x_R of the target view's audio; it predicts the STFT of the target's left-right difference x_L - x_R
  (real and imaginary parts), from which the two channels follow as ((x_L + x_R) +- (x_L - x_R)) / 2. The loss
  compares prediction and target spectrograms element-wise:

  .. math::
      L_{\ell_1} = \frac{10}{N}\sum_{i, k} \big|\hat S_{ik} - S_{ik}\big|, \qquad
      L_{\ell_2} = \frac{1}{N}\sum_{i, k} \big(\hat S_{ik} - S_{ik}\big)^2 ,

  N the number of elements of the GLOBAL batch; the factor 10 on the L1 form is the code's (`spec_weight`).

  Source: `SLfMNet.calc_loss` and `generate_audio_pair` (IFICL/SLfM, slfm/models/slfm_pretext_net.py, with
  `--mono2binaural` and `--loss_type L1` as in the released scripts). The STFT, the conditioning networks and
  the generator (a U-Net) are the caller's.

  Args:
    pred: [b, ...] predicted spectrograms of the left-right difference (e.g. [b, 2, f, t]: real and imaginary).
    target: the target spectrograms, the same shape (no gradient is taken through them by the code: pass
      `jax.lax.stop_gradient` if the target depends on parameters).
    loss: "l1" (default, the scripts) or "l2".
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard and the mean runs over every device.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input).

  Example:
    >>> float(slfm_binauralization_loss(jnp.ones((1, 2, 2)), jnp.zeros((1, 2, 2))))  # 10 * mean |1 - 0|
    10.0

  Chen, Qian & Owens, "Sound Localization from Motion: Jointly Learning Sound Direction and Camera Rotation",
  ICCV 2023, https://arxiv.org/abs/2303.11329 (cross-view binauralization); code github.com/IFICL/SLfM.
  """
  _check_angles("pred", pred)
  _check_same("pred", pred, target=target)
  _checks.check_array("target", target)
  if loss not in ("l1", "l2"):
    raise ValueError(f'loss must be "l1" or "l2"; got {loss!r}.')
  p, t = _ops.to_float32(pred, target)
  err = 10.0 * jnp.abs(p - t) if loss == "l1" else jnp.square(p - t)
  return _collectives.global_mean(jnp.sum(err), p.size, axis_name)


__all__ = ["cogenav_sync_loss", "slfm_angle", "slfm_geometric_loss", "slfm_binaural_cue", "slfm_binaural_loss",
           "slfm_symmetry_loss", "slfm_loss", "slfm_binauralization_loss"]
