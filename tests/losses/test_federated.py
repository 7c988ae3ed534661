"""FedSA (rl.losses.federated): float64 NumPy references of the released code, gradients, 1 device == 8 devices,
bad inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from rl.losses import federated as F
from tests import multidevice
from tests.losses import numeric_grad


# ------------------------------------------------------------------------------------------------------------
# References written from the released FedSA code (clientsa.py, serversa.py), float64 NumPy, loops.
# ------------------------------------------------------------------------------------------------------------

def mcl_reference(z, y, a, margin):
  """cal_mcl_loss: CrossEntropy(-(dist + one_hot * gap), y) with dist the Euclidean feature-anchor distance."""
  z, a = np.asarray(z, np.float64), np.asarray(a, np.float64)
  total = 0.0
  for i in range(len(z)):
    logits = np.array([-(np.linalg.norm(z[i] - a[c]) + (margin if c == y[i] else 0.0)) for c in range(len(a))])
    total += -logits[y[i]] + np.log(np.sum(np.exp(logits)))
  return total / len(z)


def anchors_loss_reference(z, y, a, h, margin, lam=10.0, mcl=1.0, cc=1.0):
  """cal_anchors_loss: CE(head(anchors), arange(C)) * cc + MSELoss(z, anchors[y]) * lam + mcl_loss * mcl."""
  z, a, h = (np.asarray(v, np.float64) for v in (z, a, h))
  calib = np.mean([np.log(np.sum(np.exp(h[c]))) - h[c, c] for c in range(len(a))])
  reg = np.mean((z - a[np.asarray(y)]) ** 2)
  return cc * calib + lam * reg + mcl * mcl_reference(z, y, a, margin), (reg, mcl_reference(z, y, a, margin), calib)


def gap_reference(p, present=None):
  """cal_global_gap / cal_local_gap: cdist, diagonal = inf, min per row, mean (-inf with fewer than 2 classes)."""
  p = np.asarray(p, np.float64)
  keep = [c for c in range(len(p)) if present is None or present[c]]
  if len(keep) < 2:
    return -np.inf
  return np.mean([min(np.linalg.norm(p[c] - p[k]) for k in keep if k != c) for c in keep])



def _data(b=8, d=5, c=4, seed=0):
  rng = np.random.RandomState(seed)
  return (rng.randn(b, d).astype(np.float32), rng.randint(0, c, size=b).astype(np.int32),
          rng.randn(c, d).astype(np.float32), rng.randn(c, c).astype(np.float32))


# ------------------------------------------------------------------------------------------------------------
# fedsa_margin_contrastive, fedsa_loss
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("margin", [0.0, 1.7])
def test_margin_contrastive_matches_reference_and_jit(margin):
  z, y, a, _ = _data()
  got = F.fedsa_margin_contrastive(z, y, a, margin)
  np.testing.assert_allclose(got, mcl_reference(z, y, a, margin), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(F.fedsa_margin_contrastive)(z, y, a, margin), got, rtol=1e-6)
  low = F.fedsa_margin_contrastive(jnp.asarray(z, jnp.bfloat16), y, a, margin)
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, got, rtol=3e-2)


def test_margin_raises_the_loss_and_a_feature_on_its_anchor_has_a_finite_gradient():
  z, y, a, _ = _data(seed=1)
  assert float(F.fedsa_margin_contrastive(z, y, a, 2.0)) > float(F.fedsa_margin_contrastive(z, y, a, 0.0)) + 0.5
  on_anchor = a[y]  # d = 0 exactly: the code's sqrt of the expansion would be NaN here
  g = jax.grad(lambda v: F.fedsa_margin_contrastive(v, y, a, 1.0))(jnp.asarray(on_anchor))
  assert np.all(np.isfinite(g))


def test_fedsa_loss_matches_reference_terms_and_gradients():
  z, y, a, h = (v.astype(np.float64) if v.dtype == np.float32 else v for v in _data(b=4, d=3, c=3, seed=2))
  loss, terms = jax.jit(lambda *v: F.fedsa_loss(*v, 0.8, return_terms=True))(z, y, a, h)
  ref, (reg, mcl, calib) = anchors_loss_reference(z, y, a, h, 0.8)
  np.testing.assert_allclose(loss, ref, rtol=1e-5)
  np.testing.assert_allclose([terms["regularization"], terms["contrastive"], terms["calibration"]],
                             [reg, mcl, calib], rtol=1e-5)
  weighted = F.fedsa_loss(z, y, a, h, 0.8, regularization_weight=2.0, contrastive_weight=0.5,
                          calibration_weight=3.0)
  np.testing.assert_allclose(weighted, anchors_loss_reference(z, y, a, h, 0.8, 2.0, 0.5, 3.0)[0], rtol=1e-5)
  with jax.enable_x64(True):
    gz, ga, gh = jax.jit(jax.grad(lambda u, v, w: F.fedsa_loss(u, y, v, w, 0.8), argnums=(0, 1, 2)))(
        jnp.asarray(z), jnp.asarray(a), jnp.asarray(h))
  np.testing.assert_allclose(gz, numeric_grad(lambda u: anchors_loss_reference(u, y, a, h, 0.8)[0], z),
                             rtol=1e-5, atol=1e-8)
  np.testing.assert_allclose(ga, numeric_grad(lambda v: anchors_loss_reference(z, y, v, h, 0.8)[0], a),
                             rtol=1e-5, atol=1e-8)
  np.testing.assert_allclose(gh, numeric_grad(lambda w: anchors_loss_reference(z, y, a, w, 0.8)[0], h),
                             rtol=1e-5, atol=1e-8)


def test_fedsa_loss_1_equals_8(mesh8):
  z, y, a, h = _data(b=16, seed=3)
  fn = lambda u, lab, v, w, axis_name=None: F.fedsa_loss(u, lab, v, w, 0.9, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=(z, y), replicated=(a, h), argnums=(0, 2, 3))
  np.testing.assert_allclose(value, anchors_loss_reference(z, y, a, h, 0.9)[0], rtol=1e-5)


# ------------------------------------------------------------------------------------------------------------
# fedsa_prototypes, fedsa_class_gap, fedsa_anchor_update
# ------------------------------------------------------------------------------------------------------------

def test_prototypes_match_class_means_and_1_equals_8(mesh8):
  z, y, _, _ = _data(b=16, c=5, seed=4)
  y[y == 3] = 0  # class 3 absent
  protos, counts = F.fedsa_prototypes(z, y, 5)
  for c in range(5):
    members = z[y == c].astype(np.float64)
    np.testing.assert_allclose(protos[c], members.mean(0) if len(members) else np.zeros(5), rtol=1e-5, atol=1e-7)
    assert counts[c] == len(members)
  single, sm, pm = multidevice.run_1_and_8(lambda u, lab, axis_name=None: F.fedsa_prototypes(
      u, lab, 5, axis_name=axis_name), mesh8, sharded=(z, y), out_specs=(P(), P()))
  for out in (sm, pm):
    np.testing.assert_allclose(out[0], single[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1], single[1])


def test_class_gap_matches_reference():
  _, _, a, _ = _data(c=6, seed=5)
  np.testing.assert_allclose(F.fedsa_class_gap(a), gap_reference(a), rtol=1e-5)
  present = np.array([True, False, True, True, False, True])
  a[1] = a[0] + 0.01  # an absent class right next to a present one: it must not count as its nearest
  np.testing.assert_allclose(F.fedsa_class_gap(a, present=present), gap_reference(a, present), rtol=1e-5)
  assert F.fedsa_class_gap(a, present=np.eye(6, dtype=bool)[0]) == -np.inf


def test_anchor_update_moves_present_classes_only():
  _, _, a, _ = _data(c=4, seed=6)
  p = np.random.RandomState(7).randn(*a.shape).astype(np.float32)
  present = np.array([True, False, True, False])
  new = F.fedsa_anchor_update(a, p, present)
  expected = np.where(present[:, None], 0.9999 * a.astype(np.float64) + 0.0001 * p, a)
  np.testing.assert_allclose(new, expected, rtol=1e-6, atol=1e-7)


def test_fedsa_bad_inputs():
  z, y, a, h = _data()
  with pytest.raises(ValueError, match=r"anchors must have shape \[num_classes, 5\].*got shape \(4, 3\)"):
    F.fedsa_margin_contrastive(z, y, a[:, :3], 1.0)
  with pytest.raises(ValueError, match=r"labels must have shape \[8\].*got shape \(7,\)"):
    F.fedsa_margin_contrastive(z, y[:7], a, 1.0)
  with pytest.raises(ValueError, match=r"margin must be in \[0.0, inf\]; got -1.0"):
    F.fedsa_margin_contrastive(z, y, a, -1.0)
  with pytest.raises(ValueError, match=r"anchor_logits must have shape \[4, 4\].*got shape \(4, 3\)"):
    F.fedsa_loss(z, y, a, h[:, :3], 1.0)
  with pytest.raises(ValueError, match=r"features must have shape \[b, d\]; got shape \(8,\)"):
    F.fedsa_prototypes(z[:, 0], y, 4)
  with pytest.raises(ValueError, match=r"present must have shape \[4\].*got shape \(3,\)"):
    F.fedsa_class_gap(a, present=np.ones(3, bool))
  with pytest.raises(ValueError, match=r"anchors and prototypes must have the same shape"):
    F.fedsa_anchor_update(a, a[:3], np.ones(4, bool))
  with pytest.raises(ValueError, match=r"momentum must be in \[0.0, 1.0\]; got 1.5"):
    F.fedsa_anchor_update(a, a, np.ones(4, bool), momentum=1.5)
