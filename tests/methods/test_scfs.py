"""SCFS as a `Method`: DINO's loss plus, per layer, `rl.losses.scfs_loss` of the layer heads on the student's crops
and on the teacher's searched feature maps (recomputed here from the encoder's maps in float64 NumPy); the teacher
gets no gradient, the layer heads do; the centres move; bad settings are named; 1 device == 8 devices."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import scfs as scfs_config
from rl import losses
from rl import methods
from rl.methods import multicrop
from rl.methods import scfs
from tests.methods import devices

B = 16


def _setup():
  config = scfs_config.get_config("smoke")  # 2 global views of 40, 4 local of 20; layers bn0, bn1
  method = methods.get_method(config)
  rng = np.random.RandomState(0)
  x = rng.randn(B, 40).astype(np.float32)
  views = (x, x + 0.3 * rng.randn(B, 40).astype(np.float32)) + tuple(
      rng.randn(B, 20).astype(np.float32) for _ in range(4))
  params, state = method.init(jax.random.key(0), x[:2])
  # A teacher that differs from the student and non-zero centres, so that all of them matter.
  state = {**state, "teacher": jax.tree.map(lambda t: t * 0.9 + 0.01, state["teacher"]),
           "layer_centers": {k: jnp.linspace(-0.1, 0.1, 16) for k in state["layer_centers"]}, "step": jnp.int32(4)}
  return config, method, params, state, views


def _maps(config, variables, views, layer):
  """The encoder's map `layer` on each same-shape group of views, after a ReLU, as float64 NumPy."""
  encoder = scfs.base.get_model(config, config.model.encoder, axis_name=None, **config.model.encoder_kwargs.to_dict())
  out = []
  for group in multicrop.shape_groups(views):
    x = jnp.concatenate([views[i] for i in group])
    _, inter = encoder.apply({"params": variables["params"]["encoder"],
                              "batch_stats": variables["batch_stats"]["encoder"]}, x, train=True,
                             mutable=["batch_stats", "intermediates"],
                             capture_intermediates=lambda m, n: n == "__call__" and m.name == layer)
    out.append(np.maximum(np.asarray(inter["intermediates"][layer]["__call__"][0], np.float64), 0.0))
  return out


def _head(p, feature_map):
  """LayerHead in float64: mean pooling, Dense-GELU-Dense, L2 normalisation."""
  h = feature_map.mean(axis=tuple(range(1, feature_map.ndim - 1)))
  h = h @ np.asarray(p["dense0"]["kernel"], np.float64) + np.asarray(p["dense0"]["bias"], np.float64)
  h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))  # flax's gelu (tanh approximation)
  z = h @ np.asarray(p["out"]["kernel"], np.float64) + np.asarray(p["out"]["bias"], np.float64)
  return z / np.linalg.norm(z, axis=1, keepdims=True)


def _search(f, queries):
  """The feature search in float64: each position of f [b, l, c] weighted by its cosine to each query [n b, c]."""
  b = f.shape[0]
  q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  fn = f / np.linalg.norm(f, axis=-1, keepdims=True).clip(1e-12)
  n = q.shape[0] // b
  w = np.einsum("ilc,kic->kil", fn, q.reshape(n, b, -1))
  return (w[..., None] * f[None]).reshape(n * b, *f.shape[1:])


def test_loss_is_dino_plus_the_scfs_term_of_each_layer():
  config, method, params, state, views = _setup()
  value, (new_state, aux) = method.loss(params, state, {"views": views}, jax.random.key(1))
  student_vars = {"params": params, "batch_stats": state["batch_stats"]}
  net = multicrop.Network(config, lambda c, a: scfs.base.get_model(c, "dino_head", axis_name=a,
                                                                  **c.dino.head_kwargs.to_dict())).module(None)
  (_, student), _ = net.apply(student_vars, views, train=True, mutable=["batch_stats"])
  (_, teacher), _ = net.apply(state["teacher"], views[:2], train=True, mutable=["batch_stats"])
  tau = 0.04 + (0.07 - 0.04) * 4 / 4  # DINO's warm-up of the smoke config (4 steps), at step 4
  expected = losses.dino(student, teacher, state["center"], student_temp=0.1, teacher_temp=tau)
  np.testing.assert_allclose(aux["metrics"]["dino"], expected, rtol=1e-5)
  total = float(expected)
  for layer in ("bn0", "bn1"):
    s_global, s_local = _maps(config, student_vars, views, layer)
    (t_global,) = _maps(config, state["teacher"], views[:2], layer)
    sp, tp = params["layer_heads"][layer], state["teacher"]["params"]["layer_heads"][layer]
    searched = _search(t_global[:B], s_local.mean(axis=1))
    want = losses.scfs_loss(jnp.asarray(_head(sp, s_global), jnp.float32), jnp.asarray(_head(tp, t_global), jnp.float32),
                            state["layer_centers"][layer], jnp.asarray(_head(sp, s_local), jnp.float32),
                            jnp.asarray(_head(tp, searched), jnp.float32), student_temp=0.1, teacher_temp=0.04)
    np.testing.assert_allclose(aux["metrics"][f"scfs_{layer}"], want, rtol=2e-4)
    np.testing.assert_allclose(new_state["layer_centers"][layer],
                               0.9 * state["layer_centers"][layer] + 0.1 * _head(tp, t_global).mean(0), rtol=1e-4,
                               atol=1e-6)
    total += float(want)
  np.testing.assert_allclose(value, total, rtol=2e-4)


def test_the_teacher_gets_no_gradient_and_the_layer_heads_do():
  _, method, params, state, views = _setup()

  def f(p, teacher):
    return method.loss(p, {**state, "teacher": teacher}, {"views": views}, jax.random.key(1))[0]

  g_params, g_teacher = jax.grad(f, argnums=(0, 1))(params, state["teacher"])
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(g_teacher))
  for layer in ("bn0", "bn1"):
    assert float(jnp.abs(g_params["layer_heads"][layer]["out"]["kernel"]).max()) > 0
  _, fresh = method.init(jax.random.key(0), views[0][:2])  # the teacher starts as the student, heads included
  jax.tree.map(np.testing.assert_array_equal, fresh["teacher"]["params"], params)


def test_bad_settings_are_named():
  config, method, params, state, views = _setup()
  with pytest.raises(ValueError, match="SCFS needs local crops"):
    method.loss(params, state, {"views": views[:2]}, jax.random.key(1))
  config = scfs_config.get_config("smoke")
  config.scfs.layers = ("bn7",)
  with pytest.raises(ValueError, match=r"the encoder 'conv1d' has no submodule named \['bn7'\]"):
    methods.get_method(config).init(jax.random.key(0), views[0][:2])
  config = scfs_config.get_config("smoke")
  config.dino.num_global_crops = 3
  with pytest.raises(ValueError, match="needs exactly 2 global crops; got 3"):
    methods.get_method(config)


def test_8_devices_equal_1_device(mesh8):
  _, method, params, state, views = _setup()
  one, eight = devices.loss_on_1_and_8_devices(method, params, state, {"views": views}, mesh8)
  devices.assert_1_and_8_devices_equal(one, eight)
