"""cogenav_sync_loss and the SLfM losses: hand cases, float64 NumPy references written from the authors' code
(HumanMLLM/CoGenAV models/cogenav.py; IFICL/SLfM slfm/models/slfm_geo_net.py and slfm_pretext_net.py), gradients
by finite differences of those references, jit, 1 device == 8 devices, bad inputs, bfloat16."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.losses import audio_visual as AV
from tests import multidevice


def numeric_grad(f, x, eps=1e-6):
  x = np.asarray(x, np.float64)
  g = np.zeros_like(x)
  for idx in np.ndindex(*x.shape):
    xp, xm = x.copy(), x.copy()
    xp[idx] += eps
    xm[idx] -= eps
    g[idx] = (f(xp) - f(xm)) / (2 * eps)
  return g


def torch_bce(p, y):
  """PyTorch's binary_cross_entropy for one probability: logs clamped at -100."""
  log = lambda q: max(math.log(q), -100.0) if q > 0 else -100.0
  return -(y * log(p) + (1 - y) * log(1 - p))


# ---------------------------------------------------------------------------------------------------------------
# cogenav_sync_loss
# ---------------------------------------------------------------------------------------------------------------

def cogenav_reference(audio, video, labels, mask=None):
  """seq2seq_contrastive_loss: d_i = mean_t relu(cos(a_it, v_it)), BCE(d_i, y_i), mean over pairs."""
  a, v = np.asarray(audio, np.float64), np.asarray(video, np.float64)
  total = 0.0
  for i in range(a.shape[0]):
    scores = [max(a[i, t] @ v[i, t] / (np.linalg.norm(a[i, t]) * np.linalg.norm(v[i, t])), 0.0)
              for t in range(a.shape[1])]
    weights = np.ones(a.shape[1]) if mask is None else np.asarray(mask[i], np.float64)
    d = float(np.dot(scores, weights) / max(weights.sum(), 1.0))
    total += torch_bce(d, float(labels[i]))
  return total / a.shape[0]


def _av(b=8, t=5, d=4, seed=0):
  rng = np.random.RandomState(seed)
  audio = rng.randn(b, t, d).astype(np.float32)
  video = (audio + 1.2 * rng.randn(b, t, d)).astype(np.float32)
  labels = (rng.rand(b) < 0.5).astype(np.float32)
  return audio, video, labels


def test_cogenav_hand_case_relu_drops_disagreeing_frames():
  # Pair 0: frame 0 agrees (cos 1), frame 1 disagrees (cos -1): d = (1 + 0) / 2 with the ReLU, 0 without it.
  a = jnp.ones((1, 2, 3))
  v = jnp.stack([jnp.ones(3), -jnp.ones(3)])[None]
  np.testing.assert_allclose(AV.cogenav_sync_loss(a, v, jnp.array([1.0])), math.log(2.0), rtol=1e-6)
  np.testing.assert_allclose(AV.cogenav_sync_loss(a, v, jnp.array([0.0])), math.log(2.0), rtol=1e-6)
  # Every frame disagrees: d = 0; a synchronised label costs the clamped 100, an unsynchronised one nothing.
  np.testing.assert_allclose(AV.cogenav_sync_loss(a, -a, jnp.array([1])), 100.0, rtol=1e-6)
  np.testing.assert_allclose(AV.cogenav_sync_loss(a, -a, jnp.array([False])), 0.0, atol=1e-7)


@pytest.mark.parametrize("with_mask", [False, True])
def test_cogenav_matches_float64_reference_and_jit(with_mask):
  audio, video, labels = _av()
  mask = (np.random.RandomState(1).rand(8, 5) < 0.7).astype(np.float32) if with_mask else None
  if with_mask:
    mask[0] = 0.0  # an all-padding row scores d = 0
  got = AV.cogenav_sync_loss(audio, video, labels, mask=mask)
  np.testing.assert_allclose(got, cogenav_reference(audio, video, labels, mask), rtol=1e-5)
  jitted = jax.jit(lambda a, v, y: AV.cogenav_sync_loss(a, v, y, mask=mask))(audio, video, labels)
  np.testing.assert_allclose(jitted, got, rtol=1e-6)


def test_cogenav_gradients_match_finite_differences():
  audio, video, labels = (x.astype(np.float64) for x in _av(b=3, t=3, d=3, seed=2))
  with jax.enable_x64(True):
    ga, gv = jax.grad(AV.cogenav_sync_loss, argnums=(0, 1))(jnp.asarray(audio), jnp.asarray(video),
                                                           jnp.asarray(labels))
  np.testing.assert_allclose(ga, numeric_grad(lambda a: cogenav_reference(a, video, labels), audio), rtol=1e-5,
                             atol=1e-8)
  np.testing.assert_allclose(gv, numeric_grad(lambda v: cogenav_reference(audio, v, labels), video), rtol=1e-5,
                             atol=1e-8)
  assert np.abs(ga).max() > 1e-3


def test_cogenav_1_device_equals_8(mesh8):
  audio, video, labels = _av(b=16, seed=3)
  fn = lambda a, v, y, axis_name=None: AV.cogenav_sync_loss(a, v, y, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, (audio, video, labels), argnums=(0, 1))
  np.testing.assert_allclose(value, cogenav_reference(audio, video, labels), rtol=1e-5)


def test_cogenav_bad_inputs_and_bfloat16():
  audio, video, labels = _av()
  with pytest.raises(ValueError, match=r"audio must have shape \[b, t, d\]; got shape \(8, 5\)"):
    AV.cogenav_sync_loss(audio[..., 0], video, labels)
  with pytest.raises(ValueError, match=r"audio and video must have the same shape; got \(8, 5, 4\) and \(8, 4, 4\)"):
    AV.cogenav_sync_loss(audio, video[:, :4], labels)
  with pytest.raises(ValueError, match=r"labels must have shape \[8\].*got shape \(8, 1\)"):
    AV.cogenav_sync_loss(audio, video, labels[:, None])
  with pytest.raises(ValueError, match=r"mask must have shape \[8, 5\].*got shape \(8, 4\)"):
    AV.cogenav_sync_loss(audio, video, labels, mask=np.ones((8, 4)))
  got = AV.cogenav_sync_loss(jnp.asarray(audio, jnp.bfloat16), jnp.asarray(video, jnp.bfloat16), labels)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, cogenav_reference(audio, video, labels), rtol=3e-2)


# ---------------------------------------------------------------------------------------------------------------
# SLfM references (the code's formulation: rotation matrices of -phi, L1 against 1, branchy front-back mirror)
# ---------------------------------------------------------------------------------------------------------------

def angle_reference(logits, max_angle, activation):
  x = np.asarray(logits, np.float64)
  g = {"tanh": np.tanh, "sigmoid": lambda z: 2 / (1 + np.exp(-z)) - 1, "clamp": lambda z: np.clip(z, -1, 1)}
  return g[activation](x) * max_angle


def inverse_sound_direction(x):
  return math.pi - x if x > 0 else -math.pi - x


def geometric_reference(source, target, rotation, ambiguity):
  """calc_geometric_loss(_with_permutation): theta = -phi, |<R(theta) v(ref), v(target)> - 1|, min over the four
  (ref, target) readings [s, s', s, s'] x [t, t', t', t] when permuting, mean over pairs."""
  s, t, phi = (np.asarray(x, np.float64).ravel() for x in (source, target, rotation))
  losses = []
  for a, b, r in zip(s, t, phi):
    theta = -r
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    pairs = [(a, b)]
    if ambiguity:
      a_inv, b_inv = inverse_sound_direction(a), inverse_sound_direction(b)
      pairs = [(a, b), (a_inv, b_inv), (a, b_inv), (a_inv, b)]
    losses.append(min(abs((rot @ np.array([math.cos(x), math.sin(x)])) @ np.array([math.cos(y), math.sin(y)]) - 1)
                      for x, y in pairs))
  return float(np.mean(losses))


def cue_reference(spec):
  """calc_binaural_loss's target: log(mean_f |L| / mean_f |R|) per frame, sign, summed, sign, (x + 1) / 2."""
  spec = np.abs(np.asarray(spec)).astype(np.float64)
  lead = spec.shape[:-3]
  out = np.zeros(lead)
  for idx in np.ndindex(*lead):
    left, right = spec[idx][0].mean(axis=0), spec[idx][1].mean(axis=0)
    out[idx] = (np.sign(np.sign(np.log(left / right)).sum()) + 1) / 2
  return out


def binaural_reference(angle, cue):
  return float(np.mean([torch_bce((math.sin(a) + 1) / 2, c)
                        for a, c in zip(np.asarray(angle, np.float64).ravel(), np.asarray(cue, np.float64).ravel())]))


def symmetry_reference(a, b):
  return float(np.mean(np.abs(np.asarray(a, np.float64) + np.asarray(b, np.float64))))


def binauralization_reference(pred, target, loss):
  p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
  per_example = [(10 * np.abs(p[i] - t[i]) if loss == "l1" else (p[i] - t[i]) ** 2).mean() for i in range(len(p))]
  return float(np.mean(per_example))


def slfm_reference(s, t, phi, phi_rev, s_flip, t_flip, c_s, c_t, gw=5.0, bw=1.0, sw=1.0, ambiguity=True):
  """calc_loss: geometric_loss_ratio * 2 * geo + binaural * bce + symmetric * (audio_sym + rota_sym), the
  binaural and audio terms averaged over the two views of each pair."""
  both, flipped, cues = np.stack([s, t], -1), np.stack([s_flip, t_flip], -1), np.stack([c_s, c_t], -1)
  terms = {"geometric": geometric_reference(s, t, phi, ambiguity), "binaural": binaural_reference(both, cues),
           "audio_symmetry": symmetry_reference(both, flipped), "rotation_symmetry": symmetry_reference(phi, phi_rev)}
  total = (2 * gw * terms["geometric"] + bw * terms["binaural"]
           + sw * (terms["audio_symmetry"] + terms["rotation_symmetry"]))
  return total, terms


def _angles(b=16, seed=0):
  rng = np.random.RandomState(seed)
  s = rng.uniform(-3.0, 3.0, b)
  phi = rng.uniform(-1.2, 1.2, b)
  t = s - phi + 0.6 * rng.randn(b)
  t = np.mod(t + math.pi, 2 * math.pi) - math.pi  # keep in (-pi, pi], as predictions are
  return tuple(x.astype(np.float32) for x in (s, t, phi))


def _slfm_inputs(b=16, seed=0):
  s, t, phi = _angles(b, seed)
  rng = np.random.RandomState(seed + 100)
  extra = [(-phi + 0.3 * rng.randn(b)), (-s + 0.3 * rng.randn(b)), (-t + 0.3 * rng.randn(b))]
  cues = [rng.choice([0.0, 0.5, 1.0], b), rng.choice([0.0, 1.0], b)]
  return (s, t, phi) + tuple(np.asarray(x, np.float32) for x in extra + cues)


# ---------------------------------------------------------------------------------------------------------------
# slfm_angle
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("activation,max_angle", [("tanh", math.pi), ("sigmoid", math.pi / 2), ("clamp", 1.5)])
def test_slfm_angle_matches_reference(activation, max_angle):
  x = np.random.RandomState(0).randn(3, 5).astype(np.float32) * 2
  got = AV.slfm_angle(x, max_angle=max_angle, activation=activation)
  np.testing.assert_allclose(got, angle_reference(x, max_angle, activation), rtol=1e-5, atol=1e-6)
  assert got.shape == x.shape and got.dtype == jnp.float32


def test_slfm_angle_bad_inputs():
  with pytest.raises(ValueError, match=r"activation must be one of .*got 'relu'"):
    AV.slfm_angle(jnp.zeros(2), activation="relu")
  with pytest.raises(ValueError, match=r"max_angle must be > 0; got 0"):
    AV.slfm_angle(jnp.zeros(2), max_angle=0)
  with pytest.raises(ValueError, match=r"logits must be a floating array; got dtype int32"):
    AV.slfm_angle(jnp.zeros(2, jnp.int32))


# ---------------------------------------------------------------------------------------------------------------
# slfm_geometric_loss
# ---------------------------------------------------------------------------------------------------------------

def test_geometric_hand_cases_sign_convention_and_front_back_mirror():
  s, phi = jnp.array([0.5]), jnp.array([0.2])
  np.testing.assert_allclose(AV.slfm_geometric_loss(s, s - phi, phi), 0.0, atol=1e-6)  # theta_t = theta_s - phi
  np.testing.assert_allclose(AV.slfm_geometric_loss(s, s + phi, phi, front_back_ambiguity=False),
                             1 - math.cos(0.4), rtol=1e-5)  # the wrong sign costs 1 - cos(2 phi)
  # The target's front-back mirror (pi - theta_t): a full loss of 2 read directly, 0 with the ambiguity.
  mirrored = math.pi - (0.5 - 0.2)
  np.testing.assert_allclose(AV.slfm_geometric_loss(s, jnp.array([mirrored]), phi, front_back_ambiguity=False),
                             1 - math.cos(mirrored - 0.3), rtol=1e-5)
  np.testing.assert_allclose(AV.slfm_geometric_loss(s, jnp.array([mirrored]), phi), 0.0, atol=1e-6)


@pytest.mark.parametrize("ambiguity", [True, False])
def test_geometric_matches_float64_reference_and_jit(ambiguity):
  s, t, phi = _angles()
  got = AV.slfm_geometric_loss(s, t, phi, front_back_ambiguity=ambiguity)
  np.testing.assert_allclose(got, geometric_reference(s, t, phi, ambiguity), rtol=1e-5, atol=1e-7)
  jitted = jax.jit(lambda *x: AV.slfm_geometric_loss(*x, front_back_ambiguity=ambiguity))(s, t, phi)
  np.testing.assert_allclose(jitted, got, rtol=1e-6, atol=1e-7)
  # [b, views] works the same as the flattened pairs.
  got2 = AV.slfm_geometric_loss(s.reshape(8, 2), t.reshape(8, 2), phi.reshape(8, 2), front_back_ambiguity=ambiguity)
  np.testing.assert_allclose(got2, got, rtol=1e-6)


@pytest.mark.parametrize("ambiguity", [True, False])
def test_geometric_gradients_match_finite_differences(ambiguity):
  s, t, phi = (x.astype(np.float64) for x in _angles(b=5, seed=4))
  with jax.enable_x64(True):
    grads = jax.grad(lambda *x: AV.slfm_geometric_loss(*x, front_back_ambiguity=ambiguity), argnums=(0, 1, 2))(
        jnp.asarray(s), jnp.asarray(t), jnp.asarray(phi))
  args = [s, t, phi]
  for k, g in enumerate(grads):
    def f(x, k=k):
      a = list(args)
      a[k] = x
      return geometric_reference(*a, ambiguity)
    np.testing.assert_allclose(g, numeric_grad(f, args[k]), rtol=1e-5, atol=1e-8)
  assert np.abs(grads[2]).max() > 1e-3


def test_geometric_1_device_equals_8(mesh8):
  s, t, phi = _angles(seed=5)
  fn = lambda a, b, c, axis_name=None: AV.slfm_geometric_loss(a, b, c, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, (s, t, phi))
  np.testing.assert_allclose(value, geometric_reference(s, t, phi, True), rtol=1e-5)


def test_geometric_bad_inputs_and_bfloat16():
  s, t, phi = _angles()
  with pytest.raises(ValueError, match=r"target_angle must have the shape of source_angle, \(16,\); got shape \(15,\)"):
    AV.slfm_geometric_loss(s, t[:15], phi)
  with pytest.raises(ValueError, match=r"rotation must have the shape of source_angle, \(16,\); got list"):
    AV.slfm_geometric_loss(s, t, list(phi))
  with pytest.raises(ValueError, match=r"source_angle must have shape \[b\] or \[b, \.\.\.\] with b >= 1; got shape"):
    AV.slfm_geometric_loss(s[0], t[0], phi[0])
  got = AV.slfm_geometric_loss(*(jnp.asarray(x, jnp.bfloat16) for x in (s, t, phi)))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, geometric_reference(s, t, phi, True), rtol=5e-2)


# ---------------------------------------------------------------------------------------------------------------
# slfm_binaural_cue, slfm_binaural_loss, slfm_symmetry_loss
# ---------------------------------------------------------------------------------------------------------------

def test_binaural_cue_matches_reference_ties_and_complex_input():
  rng = np.random.RandomState(0)
  spec = rng.uniform(0.1, 1.0, (6, 2, 4, 5)).astype(np.float32)
  spec[0, 0] *= 3.0  # clearly left
  spec[1, 1] *= 3.0  # clearly right
  got = AV.slfm_binaural_cue(spec)
  np.testing.assert_array_equal(got, cue_reference(spec))
  assert got[0] == 1.0 and got[1] == 0.0
  # Two frames, one louder on each side: a tie, 1/2.
  tie = np.ones((1, 2, 3, 2), np.float32)
  tie[0, 0, :, 0] = 2.0
  tie[0, 1, :, 1] = 2.0
  np.testing.assert_array_equal(AV.slfm_binaural_cue(tie), [0.5])
  # A complex STFT: the modulus decides; leading axes are kept.
  phase = np.exp(1j * rng.uniform(0, 6.28, spec.shape))
  np.testing.assert_array_equal(AV.slfm_binaural_cue((spec * phase).astype(np.complex64).reshape(2, 3, 2, 4, 5)),
                                cue_reference(spec).reshape(2, 3))
  assert not np.any(jax.grad(lambda x: AV.slfm_binaural_cue(x).sum())(jnp.asarray(spec)))


def test_binaural_cue_bad_inputs():
  with pytest.raises(ValueError, match=r"spectrogram must have shape \[\.\.\., 2, f, t\].*got shape \(4, 3, 5, 6\)"):
    AV.slfm_binaural_cue(jnp.ones((4, 3, 5, 6)))
  with pytest.raises(ValueError, match=r"spectrogram must be a floating or complex array; got dtype int32"):
    AV.slfm_binaural_cue(jnp.ones((4, 2, 5, 6), jnp.int32))


def test_binaural_loss_hand_case_reference_and_gradient():
  # theta = pi/6: p = (1 + 1/2) / 2 = 3/4; a "left" label costs -log(3/4), a "right" one -log(1/4).
  np.testing.assert_allclose(AV.slfm_binaural_loss(jnp.array([math.pi / 6] * 2), jnp.array([1.0, 0.0])),
                             (-math.log(0.75) - math.log(0.25)) / 2, rtol=1e-5)
  angle = np.random.RandomState(1).uniform(-3, 3, (8, 2)).astype(np.float32)
  cue = np.random.RandomState(2).choice([0.0, 0.5, 1.0], (8, 2)).astype(np.float32)
  np.testing.assert_allclose(AV.slfm_binaural_loss(angle, cue), binaural_reference(angle, cue), rtol=1e-5)
  a64 = angle.astype(np.float64)[:3]
  with jax.enable_x64(True):
    g = jax.grad(AV.slfm_binaural_loss)(jnp.asarray(a64), jnp.asarray(cue[:3], jnp.float64))
  np.testing.assert_allclose(g, numeric_grad(lambda a: binaural_reference(a, cue[:3]), a64), rtol=1e-5, atol=1e-8)
  with pytest.raises(ValueError, match=r"cue must have the shape of angle, \(8, 2\); got shape \(8,\)"):
    AV.slfm_binaural_loss(angle, cue[:, 0])


def test_symmetry_loss_reference_gradient_and_bad_input():
  a, b = np.random.RandomState(3).randn(2, 6).astype(np.float32)
  np.testing.assert_allclose(AV.slfm_symmetry_loss(a, b), symmetry_reference(a, b), rtol=1e-6)
  np.testing.assert_allclose(AV.slfm_symmetry_loss(a, -a), 0.0, atol=1e-7)
  with jax.enable_x64(True):
    g = jax.grad(AV.slfm_symmetry_loss)(jnp.asarray(a, jnp.float64), jnp.asarray(b, jnp.float64))
  np.testing.assert_allclose(g, numeric_grad(lambda x: symmetry_reference(x, b), a), rtol=1e-5, atol=1e-8)
  with pytest.raises(ValueError, match=r"mirrored_angle must have the shape of angle, \(6,\); got shape \(5,\)"):
    AV.slfm_symmetry_loss(a, b[:5])


def test_angle_losses_1_device_equals_8(mesh8):
  angle = np.random.RandomState(4).uniform(-3, 3, (16, 2)).astype(np.float32)
  cue = np.random.RandomState(5).choice([0.0, 1.0], (16, 2)).astype(np.float32)
  fn = lambda a, c, axis_name=None: AV.slfm_binaural_loss(a, c, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, (angle, cue), argnums=(0,))
  np.testing.assert_allclose(value, binaural_reference(angle, cue), rtol=1e-5)
  mirrored = (-angle + 0.2 * np.random.RandomState(6).randn(16, 2)).astype(np.float32)
  fn = lambda a, m, axis_name=None: AV.slfm_symmetry_loss(a, m, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, (angle, mirrored))
  np.testing.assert_allclose(value, symmetry_reference(angle, mirrored), rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# slfm_loss
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("weights,ambiguity", [((5.0, 1.0, 1.0), True), ((0.5, 2.0, 0.3), False)])
def test_slfm_loss_matches_float64_reference_terms_and_jit(weights, ambiguity):
  inputs = _slfm_inputs()
  kw = dict(geometric_weight=weights[0], binaural_weight=weights[1], symmetric_weight=weights[2],
            front_back_ambiguity=ambiguity)
  loss, terms = AV.slfm_loss(*inputs, return_terms=True, **kw)
  ref_loss, ref_terms = slfm_reference(*inputs, *weights, ambiguity)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  assert sorted(terms) == sorted(ref_terms)
  for name, value in ref_terms.items():
    np.testing.assert_allclose(terms[name], value, rtol=1e-5, atol=1e-7, err_msg=name)
  np.testing.assert_allclose(jax.jit(lambda *x: AV.slfm_loss(*x, **kw))(*inputs), loss, rtol=1e-6)


def test_slfm_loss_gradients_match_finite_differences():
  inputs = [x.astype(np.float64) for x in _slfm_inputs(b=3, seed=7)]
  with jax.enable_x64(True):
    grads = jax.grad(AV.slfm_loss, argnums=tuple(range(6)))(*(jnp.asarray(x) for x in inputs))
  for k, g in enumerate(grads):
    def f(x, k=k):
      a = list(inputs)
      a[k] = x
      return slfm_reference(*a)[0]
    np.testing.assert_allclose(g, numeric_grad(f, inputs[k]), rtol=1e-5, atol=1e-8, err_msg=f"argument {k}")


def test_slfm_loss_1_device_equals_8(mesh8):
  inputs = _slfm_inputs(seed=8)
  fn = lambda *x, axis_name=None: AV.slfm_loss(*x, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, inputs, argnums=tuple(range(6)))
  np.testing.assert_allclose(value, slfm_reference(*inputs)[0], rtol=1e-5)


def test_slfm_loss_bad_inputs():
  inputs = list(_slfm_inputs())
  bad = list(inputs)
  bad[6] = inputs[6][:4]
  with pytest.raises(ValueError, match=r"source_cue must have the shape of source_angle, \(16,\); got shape \(4,\)"):
    AV.slfm_loss(*bad)
  with pytest.raises(ValueError, match=r"source_angle must have shape \[b\]; got shape \(8, 2\)"):
    AV.slfm_loss(*(x.reshape(8, 2) for x in inputs))
  with pytest.raises(ValueError, match=r"binaural_weight must be >= 0; got -1.0"):
    AV.slfm_loss(*inputs, binaural_weight=-1.0)


# ---------------------------------------------------------------------------------------------------------------
# slfm_binauralization_loss
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss", ["l1", "l2"])
def test_binauralization_matches_reference_and_gradient(loss):
  rng = np.random.RandomState(9)
  pred, target = rng.randn(2, 4, 2, 3, 5).astype(np.float32)
  np.testing.assert_allclose(AV.slfm_binauralization_loss(pred, target, loss=loss),
                             binauralization_reference(pred, target, loss), rtol=1e-5)
  p64, t64 = pred[:2, :, :2, :2].astype(np.float64), target[:2, :, :2, :2].astype(np.float64)
  with jax.enable_x64(True):
    g = jax.grad(lambda p: AV.slfm_binauralization_loss(p, jnp.asarray(t64), loss=loss))(jnp.asarray(p64))
  np.testing.assert_allclose(g, numeric_grad(lambda p: binauralization_reference(p, t64, loss), p64), rtol=1e-5,
                             atol=1e-8)


def test_binauralization_1_device_equals_8_and_bad_inputs(mesh8):
  rng = np.random.RandomState(10)
  pred, target = rng.randn(2, 16, 2, 3, 4).astype(np.float32)
  fn = lambda p, t, axis_name=None: AV.slfm_binauralization_loss(p, t, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, (pred, target), argnums=(0,))
  np.testing.assert_allclose(value, binauralization_reference(pred, target, "l1"), rtol=1e-5)
  with pytest.raises(ValueError, match=r'loss must be "l1" or "l2"; got \'huber\''):
    AV.slfm_binauralization_loss(pred, target, loss="huber")
  with pytest.raises(ValueError, match=r"target must have the shape of pred, \(16, 2, 3, 4\); got shape \(16, 2, 3\)"):
    AV.slfm_binauralization_loss(pred, target[..., 0])
