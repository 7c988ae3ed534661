"""PixPro (coordinates, positive mask, PixContrast, pixel-to-propagation) and SlotCon (assignments, pooling,
group loss, slot loss): hand cases, float64 NumPy references, gradients, jit, 1 device == 8 devices."""

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import pytest

from rl.losses import dense as L
from tests import multidevice


# ------------------------------------------------------------------------------------------- references (float64)

def coords_reference(box, h, w):
  """Centre of bin (i, j) of a crop box [y0, x0, y1, x1] resized to an h x w map, one bin at a time."""
  y0, x0, y1, x1 = [float(v) for v in box]
  out = np.zeros((h, w, 2))
  for i in range(h):
    for j in range(w):
      out[i, j] = (y0 + (i + 0.5) * (y1 - y0) / h, x0 + (j + 0.5) * (x1 - x0) / w)
  return out


def mask_reference(box1, size1, box2, size2, threshold):
  """PixPro eq. 1: distance between centres over the larger bin diagonal (from the boxes), below T."""
  c1 = coords_reference(box1, *size1).reshape(-1, 2)
  c2 = coords_reference(box2, *size2).reshape(-1, 2)
  diag = lambda box, hw: np.hypot((box[2] - box[0]) / hw[0], (box[3] - box[1]) / hw[1])
  d = max(diag(box1, size1), diag(box2, size2))
  return np.array([[np.linalg.norm(p - q) / d < threshold for q in c2] for p in c1])


def _cos(a, b):
  return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def pixcontrast_reference(f1, f2, mask, t):
  """PixPro eq. 2 per pixel with >= 1 positive; mean over those pixels per image, then over all images."""
  b = f1.shape[0]
  x1, x2 = f1.reshape(b, -1, f1.shape[-1]).astype(np.float64), f2.reshape(b, -1, f2.shape[-1]).astype(np.float64)
  total = 0.0
  for n in range(b):
    losses = []
    for i in range(x1.shape[1]):
      pos = [j for j in range(x2.shape[1]) if mask[n, i, j]]
      if not pos:
        continue
      e = np.array([np.exp(_cos(x1[n, i], x2[n, j]) / t) for j in range(x2.shape[1])])
      losses.append(-np.log(e[pos].sum() / e.sum()))
    total += np.mean(losses) if losses else 0.0
  return total / b


def pixpro_reference(y, x, mask):
  b = y.shape[0]
  y, x = y.reshape(b, -1, y.shape[-1]).astype(np.float64), x.reshape(b, -1, x.shape[-1]).astype(np.float64)
  total = 0.0
  for n in range(b):
    pairs = [(i, j) for i in range(y.shape[1]) for j in range(x.shape[1]) if mask[n, i, j]]
    total += -np.mean([_cos(y[n, i], x[n, j]) for i, j in pairs]) if pairs else 0.0
  return total / b


def softmax(v):
  e = np.exp(v - v.max())
  return e / e.sum()


def assignments_reference(x, protos, t, center=None):
  b, h, w, _ = x.shape
  k = protos.shape[0]
  c = np.zeros(k) if center is None else center
  scores, assign = np.zeros((b, h, w, k)), np.zeros((b, h, w, k))
  for idx in np.ndindex(b, h, w):
    scores[idx] = [_cos(x[idx], protos[j]) for j in range(k)]
    assign[idx] = softmax((scores[idx] - c) / t)
  return scores, assign


def pooling_reference(x, a, eps):
  b, h, w, d = x.shape
  k = a.shape[-1]
  out = np.zeros((b, k, d))
  for n in range(b):
    for j in range(k):
      wts = a[n, :, :, j] + eps
      out[n, j] = (wts[:, :, None] * x[n]).sum((0, 1)) / wts.sum()
  return out


def group_reference(s, t, c, ts, tt):
  flat_s, flat_t = s.reshape(-1, s.shape[-1]).astype(np.float64), t.reshape(-1, t.shape[-1]).astype(np.float64)
  total = 0.0
  for sp, tp in zip(flat_s, flat_t):
    target = softmax((tp - c) / tt)
    log_p = sp / ts - (np.log(np.exp(sp / ts - (sp / ts).max()).sum()) + (sp / ts).max())
    total += -(target * log_p).sum()
  return total / len(flat_s)


def slot_reference(q, k, qa, ka, t):
  """SlotCon slot InfoNCE over anchors present in both views, keys present in view 2, one anchor at a time."""
  b, kk, _ = q.shape
  present = lambda a: [set(np.argmax(a[n].reshape(-1, kk), axis=1)) for n in range(b)]
  qp, kp = present(qa), present(ka)
  keys = [(m, j) for m in range(b) for j in range(kk) if j in kp[m]]
  losses = []
  for n in range(b):
    for j in range(kk):
      if j in qp[n] and j in kp[n]:
        logits = np.array([_cos(q[n, j], k[m, jj]) / t for m, jj in keys])
        mx = logits.max()
        losses.append(-_cos(q[n, j], k[n, j]) / t + mx + np.log(np.exp(logits - mx).sum()))
  return float(np.mean(losses)) if losses else 0.0


# ------------------------------------------------------------------------------------------- data

def _boxes(b, seed):
  """Random crop boxes [y0, x0, y1, x1] in a 1 x 1 image, some flipped horizontally (x0 > x1)."""
  rng = np.random.RandomState(seed)
  y0, x0 = rng.uniform(0, 0.5, (2, b))
  hh, ww = rng.uniform(0.3, 0.5, (2, b))
  boxes = np.stack([y0, x0, y0 + hh, x0 + ww], axis=1)
  flip = rng.rand(b) < 0.3
  boxes[flip] = boxes[flip][:, [0, 3, 2, 1]]
  return boxes.astype(np.float32)


def _pix_data(b=16, s1=(3, 3), s2=(2, 3), d=4, seed=0):
  rng = np.random.RandomState(seed)
  box1, box2 = _boxes(b, seed), _boxes(b, seed + 100)
  mask = np.stack([mask_reference(box1[n], s1, box2[n], s2, 0.7) for n in range(b)])
  f1 = rng.randn(b, *s1, d).astype(np.float32)
  f2 = rng.randn(b, *s2, d).astype(np.float32)
  return f1, f2, mask, box1, box2


def _slot_data(b=16, h=3, w=3, k=5, d=4, seed=0):
  rng = np.random.RandomState(seed)
  x1 = rng.randn(b, h, w, d).astype(np.float32)
  x2 = rng.randn(b, h, w, d).astype(np.float32)
  protos = rng.randn(k, d).astype(np.float32)
  return x1, x2, protos


# ------------------------------------------------------------------------------------------- coordinates and mask

def test_feature_coordinates_hand_case_and_flip():
  # Box rows 0..4, cols 2..0 (flipped) on a 2 x 2 map: rows at 1 and 3, columns 1.5 then 0.5.
  c = np.asarray(L.feature_coordinates(jnp.array([[0.0, 2.0, 4.0, 0.0]]), (2, 2)))[0]
  np.testing.assert_allclose(c[..., 0], [[1.0, 1.0], [3.0, 3.0]])
  np.testing.assert_allclose(c[..., 1], [[1.5, 0.5], [1.5, 0.5]])


def test_feature_coordinates_match_reference():
  boxes = _boxes(6, 3)
  got = L.feature_coordinates(jnp.asarray(boxes), (3, 4))
  want = np.stack([coords_reference(bx, 3, 4) for bx in boxes])
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_positive_mask_hand_case():
  # View 1 = box [0, 0, 2, 2], view 2 = the same shifted right by 1, both 2 x 2: unit bins, diagonal sqrt(2).
  # Only pixels at the same place (distance 0) are within 0.7; neighbours at distance 1 give 1/sqrt(2) = 0.707.
  c1 = L.feature_coordinates(jnp.array([[0.0, 0.0, 2.0, 2.0]]), (2, 2))
  c2 = L.feature_coordinates(jnp.array([[0.0, 1.0, 2.0, 3.0]]), (2, 2))
  want = np.zeros((4, 4), bool)
  want[1, 0] = want[3, 2] = True  # v1 (0, 1) == v2 (0, 0); v1 (1, 1) == v2 (1, 0)
  np.testing.assert_array_equal(L.pixel_positive_mask(c1, c2)[0], want)
  # With T = 0.75 the distance-1 neighbours join: v1 (0, 0) ~ v2 (0, 0), v1 (0, 1) ~ v2 (0, 1), (1, 1) ~ v2 (0, 0)...
  loose = np.asarray(L.pixel_positive_mask(c1, c2, threshold=0.75))[0]
  assert loose[0, 0] and loose[1, 1] and loose[3, 0] and not loose[0, 1]


def test_positive_mask_matches_reference_with_different_scales_and_flips():
  b = 8
  box1, box2 = _boxes(b, 5), _boxes(b, 6)
  c1 = L.feature_coordinates(jnp.asarray(box1), (3, 3))
  c2 = L.feature_coordinates(jnp.asarray(box2), (4, 2))
  got = np.asarray(L.pixel_positive_mask(c1, c2, threshold=0.7))
  want = np.stack([mask_reference(box1[n], (3, 3), box2[n], (4, 2), 0.7) for n in range(b)])
  np.testing.assert_array_equal(got, want)
  assert want.any() and not want.all()


def test_positive_mask_bad_inputs():
  c = L.feature_coordinates(jnp.zeros((2, 4)) + jnp.array([0, 0, 1, 1.0]), (2, 2))
  with pytest.raises(ValueError, match=r"coords2 must have shape \[b, h, w, 2\] with h, w >= 2"):
    L.pixel_positive_mask(c, c[:, :1])
  with pytest.raises(ValueError, match="same batch size"):
    L.pixel_positive_mask(c, c[:1])
  with pytest.raises(ValueError, match="threshold must be > 0"):
    L.pixel_positive_mask(c, c, threshold=0.0)
  with pytest.raises(ValueError, match=r"boxes must have shape \[b, 4\]"):
    L.feature_coordinates(jnp.zeros((2, 3)), (2, 2))
  with pytest.raises(ValueError, match="size must be"):
    L.feature_coordinates(jnp.zeros((2, 4)), (2,))


# ------------------------------------------------------------------------------------------- PixContrast

def test_pixcontrast_hand_case():
  # One view-1 pixel u = e1; view 2 has e1 (positive) and e2 (negative); tau = 0.5:
  # l = -log(e^2 / (e^2 + e^0)) = log(1 + e^-2). A second image without positives adds 0 but counts: half.
  f1 = jnp.array([[[[1.0, 0.0]]]])
  f2 = jnp.array([[[[1.0, 0.0], [0.0, 1.0]]]])
  mask = jnp.array([[[True, False]]])
  want = np.log1p(np.exp(-2.0))
  np.testing.assert_allclose(L.pixcontrast(f1, f2, mask, temperature=0.5), want, rtol=1e-6)
  two = L.pixcontrast(jnp.concatenate([f1, f1]), jnp.concatenate([f2, f2]),
                      jnp.array([[[True, False]], [[False, False]]]), temperature=0.5)
  np.testing.assert_allclose(two, want / 2, rtol=1e-6)


@pytest.mark.parametrize("temperature", [0.3, 1.0])
def test_pixcontrast_matches_reference(temperature):
  f1, f2, mask, _, _ = _pix_data()
  got = L.pixcontrast(f1, f2, mask, temperature=temperature)
  np.testing.assert_allclose(got, pixcontrast_reference(f1, f2, mask, temperature), rtol=1e-5)


def test_pixcontrast_gradients_and_jit():
  f1, f2, mask, _, _ = _pix_data(b=3, d=3, seed=1)
  with jax.enable_x64(True):
    check_grads(jax.jit(lambda a, b: L.pixcontrast(a, b, jnp.asarray(mask))), (f1.astype(np.float64),
                f2.astype(np.float64)), order=1, modes=["rev"])
  eager = L.pixcontrast(f1, f2, mask)
  np.testing.assert_allclose(jax.jit(L.pixcontrast)(f1, f2, mask), eager, rtol=1e-6)
  # No positive anywhere: the loss is 0 and its gradient finite (no -inf log-sum-exp leaks into it).
  value, grad = jax.jit(jax.value_and_grad(L.pixcontrast))(f1, f2, np.zeros_like(mask))
  assert float(value) == 0.0 and np.isfinite(np.asarray(grad)).all()


def test_pixcontrast_one_equals_eight(mesh8):
  f1, f2, mask, _, _ = _pix_data(seed=2)
  multidevice.assert_1_equals_8(L.pixcontrast, mesh8, sharded=(f1, f2, mask))


def test_pixcontrast_bfloat16_and_bad_inputs():
  f1, f2, mask, _, _ = _pix_data(seed=3)
  got = L.pixcontrast(f1.astype(jnp.bfloat16), f2.astype(jnp.bfloat16), mask)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, L.pixcontrast(f1, f2, mask), rtol=2e-2)
  with pytest.raises(ValueError, match=r"mask must have shape \[b, h1 \* w1, h2 \* w2\] = \(16, 9, 6\)"):
    L.pixcontrast(f1, f2, mask[:, :, :5])
  with pytest.raises(ValueError, match="f1 and f2 must share the batch size and feature size"):
    L.pixcontrast(f1, f2[..., :3], mask)
  with pytest.raises(ValueError, match=r"f1 must have shape \[b, h, w, d\]"):
    L.pixcontrast(f1[0], f2, mask)
  with pytest.raises(ValueError, match="temperature must be > 0"):
    L.pixcontrast(f1, f2, mask, temperature=0.0)


# ------------------------------------------------------------------------------------------- PixPro consistency

def test_pixpro_hand_case():
  # y = e1 against positives e1 (cos 1) and e2 (cos 0): -(1 + 0) / 2. A scaled y changes nothing.
  y = jnp.array([[[[2.0, 0.0]]]])
  x = jnp.array([[[[1.0, 0.0], [0.0, 3.0]]]])
  np.testing.assert_allclose(L.pixpro(y, x, jnp.array([[[True, True]]])), -0.5, rtol=1e-6)
  np.testing.assert_allclose(L.pixpro(y, x, jnp.array([[[False, True]]])), 0.0, atol=1e-7)


def test_pixpro_matches_reference_gradients_and_jit():
  y, x, mask, _, _ = _pix_data(seed=4)
  np.testing.assert_allclose(L.pixpro(y, x, mask), pixpro_reference(y, x, mask), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(L.pixpro)(y, x, mask), L.pixpro(y, x, mask), rtol=1e-6)
  ys, xs, ms, _, _ = _pix_data(b=3, d=3, seed=5)
  with jax.enable_x64(True):
    check_grads(jax.jit(lambda a, b: L.pixpro(a, b, jnp.asarray(ms))),
                (ys.astype(np.float64), xs.astype(np.float64)), order=1, modes=["rev"])


def test_pixpro_one_equals_eight(mesh8):
  y, x, mask, _, _ = _pix_data(seed=6)
  multidevice.assert_1_equals_8(L.pixpro, mesh8, sharded=(y, x, mask))


def test_pixpro_bfloat16_and_bad_inputs():
  y, x, mask, _, _ = _pix_data(seed=7)
  got = L.pixpro(y.astype(jnp.bfloat16), x.astype(jnp.bfloat16), mask)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, L.pixpro(y, x, mask), rtol=2e-2, atol=2e-3)
  with pytest.raises(ValueError, match=r"mask must have shape \[b, h1 \* w1, h2 \* w2\]"):
    L.pixpro(y, x, mask.transpose(0, 2, 1))
  with pytest.raises(ValueError, match="y1 and x2_target must share"):
    L.pixpro(y, x[:8], mask)


# ------------------------------------------------------------------------------------------- SlotCon: grouping

def test_slot_assignments_hand_case_and_reference():
  # Pixel (3, 4) against prototypes e1, e2: cosines 0.6, 0.8; with tau = 0.1 the softmax is
  # (1, e^2) / (1 + e^2); a centre (0, 0.2) makes the two logits equal: (0.5, 0.5).
  x = jnp.array([[[[3.0, 4.0]]]])
  scores, a = L.slot_assignments(x, jnp.eye(2), temperature=0.1)
  np.testing.assert_allclose(scores[0, 0, 0], [0.6, 0.8], rtol=1e-6)
  np.testing.assert_allclose(a[0, 0, 0], np.array([1.0, np.e ** 2]) / (1 + np.e ** 2), rtol=1e-5)
  _, ac = L.slot_assignments(x, jnp.eye(2), temperature=0.1, center=jnp.array([0.0, 0.2]))
  np.testing.assert_allclose(ac[0, 0, 0], [0.5, 0.5], rtol=1e-5)
  x1, _, protos = _slot_data(b=2)
  center = np.random.RandomState(0).randn(5).astype(np.float32) * 0.1
  got_s, got_a = L.slot_assignments(x1, protos, center=jnp.asarray(center))
  want_s, want_a = assignments_reference(x1, protos, 0.07, center)
  np.testing.assert_allclose(got_s, want_s, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got_a, want_a, rtol=1e-4, atol=1e-6)


def test_slot_assignments_gradients_bfloat16_and_bad_inputs():
  x1, _, protos = _slot_data(b=2, h=2, w=2, k=3, d=3)
  with jax.enable_x64(True):
    check_grads(jax.jit(lambda x, p: L.slot_assignments(x, p, temperature=0.5)[1]), (x1.astype(np.float64),
                protos.astype(np.float64)), order=1, modes=["rev"])
  _, a16 = L.slot_assignments(x1.astype(jnp.bfloat16), protos.astype(jnp.bfloat16), temperature=0.5)
  assert a16.dtype == jnp.float32
  np.testing.assert_allclose(a16, L.slot_assignments(x1, protos, temperature=0.5)[1], atol=2e-2)
  with pytest.raises(ValueError, match=r"prototypes must have shape \[K, 3\]"):
    L.slot_assignments(x1, protos[:, :2])
  with pytest.raises(ValueError, match=r"center must have shape \[K\] = \(3,\)"):
    L.slot_assignments(x1, protos, center=jnp.zeros(4))
  with pytest.raises(ValueError, match=r"features must have shape \[b, h, w, d\]"):
    L.slot_assignments(x1[0], protos)


def test_slot_pooling_hand_case_reference_gradients():
  # Two pixels x = (1, 0), (0, 2); slot 0 weights (1, 0) + eps, slot 1 (0.5, 0.5) + eps.
  x = jnp.array([[[[1.0, 0.0], [0.0, 2.0]]]])
  a = jnp.array([[[[1.0, 0.5], [0.0, 0.5]]]])
  eps = 0.5  # slot 0: (1.5 * (1, 0) + 0.5 * (0, 2)) / 2 = (0.75, 0.5); slot 1: the plain mean (0.5, 1).
  np.testing.assert_allclose(L.slot_pooling(x, a, eps=eps)[0], [[0.75, 0.5], [0.5, 1.0]], rtol=1e-6)
  x1, _, protos = _slot_data(b=2, h=2, w=3, k=3, d=3)
  assign = np.random.RandomState(1).uniform(0.2, 1.0, (2, 2, 3, 3)).astype(np.float32)
  got = L.slot_pooling(x1, assign)
  np.testing.assert_allclose(got, pooling_reference(x1, np.asarray(assign, np.float64), 1e-6), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(jax.jit(L.slot_pooling)(x1, assign), got, rtol=1e-6, atol=1e-7)
  with jax.enable_x64(True):
    check_grads(jax.jit(L.slot_pooling), (x1.astype(np.float64), assign.astype(np.float64)), order=1,
                modes=["rev"])
  assert L.slot_pooling(x1.astype(jnp.bfloat16), assign.astype(jnp.bfloat16)).dtype == jnp.float32
  with pytest.raises(ValueError, match=r"assignments must have shape \[b, h, w, K\] with b, h, w of features"):
    L.slot_pooling(x1, assign[:, :1])
  with pytest.raises(ValueError, match="eps must be in"):
    L.slot_pooling(x1, assign, eps=-1.0)


# ------------------------------------------------------------------------------------------- SlotCon: group loss

def test_group_loss_hand_case():
  # One pixel, K = 2: student scores (1, 0) at tau_s = 0.1 give log-probs (10, 0) - lse; the teacher (0, 0)
  # gives (1/2, 1/2); CE = lse - 5 with lse = log(e^10 + 1).
  s = jnp.array([[[[1.0, 0.0]]]])
  t = jnp.zeros((1, 1, 1, 2))
  want = np.log(np.exp(10.0) + 1.0) - 5.0
  np.testing.assert_allclose(L.slotcon_group_loss(s, t, jnp.zeros(2)), want, rtol=1e-6)


def test_group_loss_matches_reference_and_jit():
  x1, x2, protos = _slot_data(seed=1)
  s, _ = L.slot_assignments(x1, protos)
  t, _ = L.slot_assignments(x2, protos)
  c = np.random.RandomState(1).randn(5).astype(np.float32) * 0.1
  got = L.slotcon_group_loss(s, t, c)
  np.testing.assert_allclose(got, group_reference(np.asarray(s), np.asarray(t), c, 0.1, 0.07), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(L.slotcon_group_loss)(s, t, c), got, rtol=1e-6)


def test_group_loss_gradients_flow_to_student_only():
  rng = np.random.RandomState(2)
  s, t = rng.uniform(-1, 1, (2, 2, 3, 4, 3))
  c = rng.randn(3) * 0.1
  with jax.enable_x64(True):
    check_grads(jax.jit(lambda a: L.slotcon_group_loss(a, jnp.asarray(t), jnp.asarray(c))), (s,), order=1,
                modes=["rev"])
    g_t = jax.grad(L.slotcon_group_loss, argnums=1)(s, t, c)
  np.testing.assert_array_equal(g_t, 0.0)


def test_group_loss_one_equals_eight(mesh8):
  rng = np.random.RandomState(3)
  s, t = rng.uniform(-1, 1, (2, 16, 2, 2, 5)).astype(np.float32)
  c = (rng.randn(5) * 0.1).astype(np.float32)
  multidevice.assert_1_equals_8(L.slotcon_group_loss, mesh8, sharded=(s, t), replicated=(c,), argnums=(0,))


def test_group_loss_bfloat16_and_bad_inputs():
  rng = np.random.RandomState(4)
  s, t = rng.uniform(-1, 1, (2, 4, 2, 2, 5)).astype(np.float32)
  c = np.zeros(5, np.float32)
  got = L.slotcon_group_loss(s.astype(jnp.bfloat16), t.astype(jnp.bfloat16), c)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, L.slotcon_group_loss(s, t, c), rtol=5e-2)
  with pytest.raises(ValueError, match="student_scores and teacher_scores must have the same shape"):
    L.slotcon_group_loss(s, t[:, :1], c)
  with pytest.raises(ValueError, match=r"center must have shape \[K\] = \(5,\)"):
    L.slotcon_group_loss(s, t, np.zeros(4, np.float32))
  with pytest.raises(ValueError, match="teacher_temp must be > 0"):
    L.slotcon_group_loss(s, t, c, teacher_temp=-1.0)


# ------------------------------------------------------------------------------------------- SlotCon: slot loss

def test_slot_loss_hand_case():
  # One image, K = 2 orthogonal slots, both present in both views, tau = 0.5:
  # each anchor: -2 + log(e^2 + e^0) = log(1 + e^-2).
  slots = jnp.eye(2)[None]
  both = jnp.eye(2).reshape(1, 1, 2, 2)  # pixel 0 -> prototype 0, pixel 1 -> prototype 1
  np.testing.assert_allclose(L.slotcon_slot_loss(slots, slots, both, both, temperature=0.5),
                             np.log1p(np.exp(-2.0)), rtol=1e-6)
  # Prototype 1 absent from view 2: one anchor and one key, its own positive: the loss is exactly 0.
  only0 = jnp.array([[[[1.0, 0.0], [1.0, 0.0]]]])
  np.testing.assert_allclose(L.slotcon_slot_loss(slots, slots, both, only0, temperature=0.5), 0.0, atol=1e-6)


@jax.jit
def _group_and_pool(x, protos):
  scores, assign = L.slot_assignments(x, protos, temperature=0.2)
  return L.slot_pooling(x, assign), scores


def _slot_inputs(b=16, seed=0, k=5):
  x1, x2, protos = _slot_data(b=b, k=k, seed=seed)
  (q, s1), (k, s2) = _group_and_pool(x1, protos), _group_and_pool(x2, protos)
  return np.asarray(q), np.asarray(k), np.asarray(s1), np.asarray(s2)


def test_slot_loss_matches_reference_gradients_and_jit():
  q, k, s1, s2 = _slot_inputs()
  got = L.slotcon_slot_loss(q, k, s1, s2)
  want = slot_reference(q, k, s1, s2, 0.2)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(L.slotcon_slot_loss)(q, k, s1, s2), got, rtol=1e-6)
  qs, ks, a1, a2 = _slot_inputs(b=3, seed=1, k=3)
  with jax.enable_x64(True):
    check_grads(jax.jit(lambda a, b: L.slotcon_slot_loss(a, b, jnp.asarray(a1), jnp.asarray(a2))),
                (qs.astype(np.float64), ks.astype(np.float64)), order=1, modes=["rev"])


def test_slot_loss_one_equals_eight_and_uses_global_negatives(mesh8):
  q, k, s1, s2 = _slot_inputs(seed=2)
  v1, _ = multidevice.assert_1_equals_8(L.slotcon_slot_loss, mesh8, sharded=(q, k, s1, s2), argnums=(0, 1))
  # With negatives from one device only, the mean of the 8 local losses is a different (smaller) number.
  local = [slot_reference(q[i:i + 2], k[i:i + 2], s1[i:i + 2], s2[i:i + 2], 0.2) for i in range(0, 16, 2)]
  assert abs(np.mean(local) - float(v1)) > 1e-2


def test_slot_loss_no_present_slot_is_zero_bfloat16_and_bad_inputs():
  q, k, s1, s2 = _slot_inputs(b=4, seed=3)
  # View 1 picks prototype 0 everywhere, view 2 prototype 1: no slot present in both.
  a1 = np.zeros_like(s1)
  a1[..., 0] = 1
  a2 = np.zeros_like(s2)
  a2[..., 1] = 1
  value, grad = jax.jit(jax.value_and_grad(L.slotcon_slot_loss))(q, k, a1, a2)
  np.testing.assert_array_equal(value, 0.0)
  assert np.isfinite(np.asarray(grad)).all()
  got = jax.jit(L.slotcon_slot_loss)(q.astype(jnp.bfloat16), k.astype(jnp.bfloat16), s1, s2)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, jax.jit(L.slotcon_slot_loss)(q, k, s1, s2), rtol=2e-2)
  with pytest.raises(ValueError, match="q_slots and k_slots must have the same shape"):
    L.slotcon_slot_loss(q, k[:, :3], s1, s2)
  with pytest.raises(ValueError, match=r"k_assignments must have shape \[b, h, w, K\] with b, K = 4, 5"):
    L.slotcon_slot_loss(q, k, s1, s2[..., :3])
  with pytest.raises(ValueError, match="temperature must be > 0"):
    L.slotcon_slot_loss(q, k, s1, s2, temperature=0.0)


def test_center_update_reuses_dino_on_pixel_scores():
  # SlotCon's centre is DINO's: the mean teacher score over every pixel of both views, psum-ed over devices.
  from rl.losses import clustering
  rng = np.random.RandomState(5)
  t = rng.uniform(-1, 1, (4, 2, 2, 3)).astype(np.float32)
  new = clustering.dino_center_update(jnp.zeros(3), jnp.asarray(t).reshape(-1, 3), momentum=0.9)
  np.testing.assert_allclose(new, 0.1 * t.reshape(-1, 3).mean(0), rtol=1e-5)
