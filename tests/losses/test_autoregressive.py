"""SemAIM (semaim_similarity, semaim_order, semaim_attention_masks, semaim_pixel_loss, semaim_feature_loss): hand
cases, float64 NumPy references written from the authors' code, gradients, jit, 1 device == 8 devices, bad inputs."""
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest

from rl.losses import autoregressive as A
from tests import multidevice
from tests.losses import numeric_grad

KEY = jax.random.PRNGKey(0)


# ------------------------------------------------------------------------------------------------------------
# References, float64 NumPy, from models/models_semaim.py and util/blocks.py of github.com/skyoux/SemAIM.
# ------------------------------------------------------------------------------------------------------------

def similarity_reference(tokens, reference="cls"):
  """calculate_attention_cls / _gap: softmax over patches of <normalize(ref), normalize(patch)>."""
  x = np.asarray(tokens, np.float64)
  out = []
  for t in x:
    ref = t[0] if reference == "cls" else t[1:].mean(axis=0)
    ref = ref / np.linalg.norm(ref)
    cos = np.array([p @ ref / np.linalg.norm(p) for p in t[1:]])
    e = np.exp(cos - cos.max())
    out.append(e / e.sum())
  return np.stack(out)


def order_reference(similarity, grid, uniforms, jitter):
  """generate_attention_distance_center_permutation: Euclidean grid distance to the argmax patch + rand * 1e-3."""
  h, w = grid
  out = []
  for s, u in zip(np.asarray(similarity), uniforms):
    c = int(np.argmax(s))
    out.append([np.hypot(p // w - c // w, p % w - c % w) + jitter * u[p] for p in range(h * w)])
  return np.array(out)


def masks_reference(order):
  """generate_attention_mask: mask_h = -inf where perm_q < perm_k, mask_g = -inf where perm_q <= perm_k; the class
  token row sees only itself, every row sees the class token. Returns 'may attend' booleans."""
  out_h, out_g = [], []
  for perm in np.asarray(order):
    n = len(perm)
    h = np.zeros((n + 1, n + 1), bool)
    g = np.zeros((n + 1, n + 1), bool)
    h[:, 0] = g[:, 0] = True
    for q in range(n):
      for k in range(n):
        h[q + 1, k + 1] = not perm[q] < perm[k]
        g[q + 1, k + 1] = not perm[q] <= perm[k]
    out_h.append(h)
    out_g.append(g)
  return np.stack(out_h), np.stack(out_g)


def blur_reference(images, size, sigma):
  """GaussianConv2d: a normalised size x size Gaussian per channel, zero padding size // 2, NHWC here."""
  x = np.asarray(images, np.float64)
  m = (size - 1) // 2
  kernel = np.array([[np.exp(-((i - m) ** 2 + (j - m) ** 2) / (2 * sigma ** 2)) for j in range(size)]
                     for i in range(size)])
  kernel /= kernel.sum()
  pad = size // 2
  xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  out = np.zeros_like(x)
  for i in range(x.shape[1]):
    for j in range(x.shape[2]):
      out[:, i, j, :] = np.einsum("bijc,ij->bc", xp[:, i:i + size, j:j + size, :], kernel)
  return out


def patchify_reference(images, p):
  """The official MAE patchify ('nchpwq->nhwpqc') on the NCHW version of NHWC images."""
  x = np.transpose(images, (0, 3, 1, 2))
  n, c, hh, ww = x.shape
  x = x.reshape(n, c, hh // p, p, ww // p, p)
  return np.einsum("nchpwq->nhwpqc", x).reshape(n, (hh // p) * (ww // p), p * p * c)


def pixel_loss_reference(pred, images, p, norm_pix=True, size=9, sigma=1.0, loss_type="l2"):
  """forward_pixel_loss: target = patchify(blur(imgs)), normalised by its mean and unbiased variance, then the
  mean over every element of (pred - target)^2 (or |pred - target|)."""
  x = np.asarray(images, np.float64)
  if size is not None:
    x = blur_reference(x, size, sigma)
  t = patchify_reference(x, p)
  if norm_pix:
    t = (t - t.mean(-1, keepdims=True)) / np.sqrt(t.var(-1, ddof=1, keepdims=True) + 1e-6)
  d = np.asarray(pred, np.float64) - t
  return np.mean(d ** 2) if loss_type == "l2" else np.mean(np.abs(d))


def feature_loss_reference(pred, target):
  """forward_feature_loss: ((normalize(pred) - normalize(feature)) ** 2).sum(-1).mean()."""
  p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
  p = p / np.linalg.norm(p, axis=-1, keepdims=True)
  t = t / np.linalg.norm(t, axis=-1, keepdims=True)
  return np.mean(np.sum((p - t) ** 2, axis=-1))



def _uniforms(key, b, n, offset=0):
  """The documented draws: uniform(fold_in(key, global index), (L,))."""
  return np.stack([np.asarray(jax.random.uniform(jax.random.fold_in(key, offset + i), (n,))) for i in range(b)])


# ------------------------------------------------------------------------------------------------------------
# semaim_similarity, semaim_order, semaim_attention_masks
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reference", ["cls", "gap"])
def test_similarity_matches_float64_reference_and_is_constant(reference):
  tokens = np.random.RandomState(0).randn(3, 5, 4).astype(np.float32)
  got = A.semaim_similarity(tokens, reference=reference)
  np.testing.assert_allclose(got, similarity_reference(tokens, reference), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(lambda t: A.semaim_similarity(t, reference=reference))(tokens), got, rtol=1e-6)
  g = jax.grad(lambda t: jnp.sum(A.semaim_similarity(t, reference=reference) ** 2))(jnp.asarray(tokens))
  np.testing.assert_array_equal(g, 0.0)  # a map for the order, never trained through


def test_order_hand_case_and_reference():
  o = A.semaim_order(KEY, jnp.array([[0.0, 0.0, 0.0, 0.0, 0.0, 9.0]]), grid_shape=(2, 3), jitter=0.0)
  np.testing.assert_allclose(o, [[np.sqrt(5), np.sqrt(2), 1.0, 2.0, 1.0, 0.0]], rtol=1e-6)  # centre (1, 2)
  sim = np.random.RandomState(1).rand(4, 9).astype(np.float32)
  got = A.semaim_order(KEY, sim)
  want = order_reference(sim, (3, 3), _uniforms(KEY, 4, 9), 1e-3)
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
  # The jitter only breaks ties: the ranks by distance are kept.
  assert np.all(np.diff(np.asarray(got)[np.arange(4)[:, None], np.argsort(want, axis=1)], axis=1) >= 0)


def test_order_1_equals_8_devices(mesh8):
  sim = np.random.RandomState(2).rand(16, 4).astype(np.float32)
  fn = lambda s, key, axis_name: A.semaim_order(key, s, axis_name=axis_name)
  single, sm, pm = multidevice.run_1_and_8(fn, mesh8, (sim,), (KEY,), out_specs=P("data"))
  np.testing.assert_array_equal(sm, single)
  np.testing.assert_array_equal(pm, single)
  np.testing.assert_allclose(single, order_reference(sim, (2, 2), _uniforms(KEY, 16, 4), 1e-3), rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_attention_masks_match_the_code(seed):
  rng = np.random.RandomState(seed)
  order = np.round(rng.rand(3, 6) * 3).astype(np.float32)  # ties on purpose
  content, query = jax.jit(A.semaim_attention_masks)(order)
  want_h, want_g = masks_reference(order)
  np.testing.assert_array_equal(content, want_h)
  np.testing.assert_array_equal(query, want_g)
  # No query row is empty (the class token is always visible), and a query never sees its own patch.
  assert np.all(np.asarray(query).any(axis=-1)) and not np.any(np.diagonal(np.asarray(query), axis1=1, axis2=2)[:, 1:])


# ------------------------------------------------------------------------------------------------------------
# semaim_pixel_loss, semaim_feature_loss
# ------------------------------------------------------------------------------------------------------------

def _pixels(b=2, side=4, c=2, p=2, seed=0):
  rng = np.random.RandomState(seed)
  images = rng.rand(b, side, side, c).astype(np.float32)
  pred = rng.randn(b, (side // p) ** 2, p * p * c).astype(np.float32)
  return pred, images


def test_pixel_loss_hand_cases():
  x = jnp.ones((1, 4, 4, 1))
  np.testing.assert_allclose(A.semaim_pixel_loss(jnp.ones((1, 4, 4)), x, patch_size=2, norm_pix=False,
                                                 blur_kernel_size=None), 0.0, atol=1e-7)
  # Blurring a constant image with zero padding darkens the border: the interior of a big enough image stays 1.
  big = jnp.ones((1, 6, 6, 1))
  blurred = A._gaussian_blur(big, 3, 1.0)  # pylint: disable=protected-access
  np.testing.assert_allclose(blurred[0, 2:4, 2:4, 0], 1.0, rtol=1e-6)
  assert float(blurred[0, 0, 0, 0]) < 0.6


@pytest.mark.parametrize("norm_pix,size,loss_type", [(True, 9, "l2"), (False, 3, "l1"), (True, None, "l2")])
def test_pixel_loss_matches_float64_reference_and_jit(norm_pix, size, loss_type):
  pred, images = _pixels(side=6, p=3, seed=1)
  fn = lambda a, x: A.semaim_pixel_loss(a, x, patch_size=3, norm_pix=norm_pix, blur_kernel_size=size,
                                        loss_type=loss_type)
  want = pixel_loss_reference(pred, images, 3, norm_pix, size, 1.0, loss_type)
  np.testing.assert_allclose(fn(pred, images), want, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(fn)(pred, images), want, rtol=1e-5)
  assert fn(jnp.asarray(pred, jnp.bfloat16), (images * 255).astype(np.uint8)).dtype == jnp.float32


def test_pixel_loss_gradient_reaches_pred_only():
  pred, images = (v.astype(np.float64) for v in _pixels(b=1, side=4, c=1, p=2, seed=2))
  with jax.enable_x64(True):
    gp, gx = jax.grad(lambda a, x: A.semaim_pixel_loss(a, x, patch_size=2, blur_kernel_size=3), argnums=(0, 1))(
        jnp.asarray(pred), jnp.asarray(images))
  np.testing.assert_allclose(gp, numeric_grad(lambda a: pixel_loss_reference(a, images, 2, True, 3), pred.copy()),
                             rtol=1e-6, atol=1e-9)
  np.testing.assert_array_equal(gx, 0.0)


def test_feature_loss_matches_float64_reference_and_gradients():
  rng = np.random.RandomState(3)
  pred, target = rng.randn(2, 3, 4), rng.randn(2, 3, 4)
  np.testing.assert_allclose(A.semaim_feature_loss(pred.astype(np.float32), target.astype(np.float32)),
                             feature_loss_reference(pred, target), rtol=1e-5)
  with jax.enable_x64(True):
    gp, gt = jax.grad(A.semaim_feature_loss, argnums=(0, 1))(jnp.asarray(pred), jnp.asarray(target))
  np.testing.assert_allclose(gp, numeric_grad(lambda a: feature_loss_reference(a, target), pred.copy()), rtol=1e-6,
                             atol=1e-9)
  np.testing.assert_array_equal(gt, 0.0)  # the teacher's features are targets


def test_pixel_loss_1_equals_8_devices(mesh8):
  pred, images = _pixels(b=8, side=4, c=1, p=2, seed=4)
  fn = lambda a, x, axis_name=None: A.semaim_pixel_loss(a, x, patch_size=2, blur_kernel_size=3, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, (pred, images), argnums=(0,))
  np.testing.assert_allclose(value, pixel_loss_reference(pred, images, 2, True, 3), rtol=1e-5)


def test_feature_loss_1_equals_8_devices(mesh8):
  rng = np.random.RandomState(5)
  p, t = rng.randn(8, 3, 4).astype(np.float32), rng.randn(8, 3, 4).astype(np.float32)
  fn = lambda a, b, axis_name=None: A.semaim_feature_loss(a, b, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, (p, t), argnums=(0,))
  np.testing.assert_allclose(value, feature_loss_reference(p, t), rtol=1e-5)


def test_semaim_bad_inputs():
  with pytest.raises(ValueError, match=r"tokens must have shape \[b, 1 \+ L, d\] with L >= 1.*got shape \(2, 1, 3\)"):
    A.semaim_similarity(jnp.zeros((2, 1, 3)))
  with pytest.raises(ValueError, match=r'reference must be "cls" or "gap"; got \'mean\''):
    A.semaim_similarity(jnp.zeros((2, 3, 3)), reference="mean")
  with pytest.raises(ValueError, match=r"similarity has L = 6 patches, not a square grid; pass grid_shape"):
    A.semaim_order(KEY, jnp.zeros((2, 6)))
  with pytest.raises(ValueError, match=r"grid_shape must be \(h, w\) with h \* w = L = 6.*got \(2, 2\)"):
    A.semaim_order(KEY, jnp.zeros((2, 6)), grid_shape=(2, 2))
  with pytest.raises(ValueError, match=r"order must have shape \[b, L\]; got shape \(6,\)"):
    A.semaim_attention_masks(jnp.zeros(6))
  pred, images = _pixels()
  with pytest.raises(ValueError, match=r"pred must have the shape of patchify\(images\).*\(2, 4, 8\); got pred of "
                                       r"shape \(2, 3, 8\)"):
    A.semaim_pixel_loss(pred[:, :3], images, patch_size=2)
  with pytest.raises(ValueError, match=r"blur_kernel_size must be an odd int >= 1 or None; got 4"):
    A.semaim_pixel_loss(pred, images, patch_size=2, blur_kernel_size=4)
  with pytest.raises(ValueError, match=r'loss_type must be "l2" or "l1"; got \'l3\''):
    A.semaim_pixel_loss(pred, images, patch_size=2, loss_type="l3")
  with pytest.raises(ValueError, match=r"pred and target must have the same shape; got \(2, 3, 4\) and \(2, 3, 5\)"):
    A.semaim_feature_loss(jnp.zeros((2, 3, 4)), jnp.zeros((2, 3, 5)))
