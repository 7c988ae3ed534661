"""rl.models.distill: FeatureRegressor (DreamTeacher) and CrossAttentionSearchHead (MOKD T-Head)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.losses import distillation as losses
from rl.models.distill import CrossAttentionSearchHead
from rl.models.distill import FeatureRegressor


def _feats(seed=0, b=2):
  k1, k2 = jax.random.split(jax.random.key(seed))
  return [jax.random.normal(k1, (b, 8, 8, 4)), jax.random.normal(k2, (b, 4, 4, 6))]


def test_feature_regressor_shapes_params_jit():
  reg = FeatureRegressor(out_channels=(3, 5))
  feats = _feats()
  variables = reg.init(jax.random.key(0), feats)
  shapes = jax.tree.map(jnp.shape, variables['params'])
  assert shapes == {'level0': {'kernel': (1, 1, 4, 3), 'bias': (3,)},
                    'level1': {'kernel': (1, 1, 6, 5), 'bias': (5,)}}
  out = reg.apply(variables, feats)
  assert [o.shape for o in out] == [(2, 8, 8, 3), (2, 4, 4, 5)]
  # A 1x1 convolution is the same matrix at every position.
  p = variables['params']['level1']
  want = np.einsum('bhwc,cd->bhwd', np.asarray(feats[1]), np.asarray(p['kernel'][0, 0])) + np.asarray(p['bias'])
  np.testing.assert_allclose(out[1], want, rtol=1e-5, atol=1e-6)
  jitted = jax.jit(lambda v, f: reg.apply(v, f))(variables, feats)
  for a, b in zip(jitted, out):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_feature_regressor_trains_with_feature_regression():
  reg = FeatureRegressor(out_channels=(3, 5))
  feats = _feats(seed=1)
  k = jax.random.split(jax.random.key(2))
  teacher = [jax.random.normal(k[0], (2, 8, 8, 3)), jax.random.normal(k[1], (2, 4, 4, 5))]
  variables = reg.init(jax.random.key(0), feats)
  loss = lambda v: losses.feature_regression(reg.apply(v, feats), teacher)
  value, grads = jax.jit(jax.value_and_grad(loss))(variables)
  assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  stepped = jax.tree.map(lambda p, g: p - 0.1 * g, variables, grads)
  assert loss(stepped) < value


def test_feature_regressor_bad_inputs():
  reg = FeatureRegressor(out_channels=(3, 5))
  with pytest.raises(ValueError, match=r'one map per level \(2 levels.*got 1 maps'):
    reg.init(jax.random.key(0), _feats()[:1])
  with pytest.raises(ValueError, match=r'feats\[0\] must have shape \[b, h, w, c\]'):
    reg.init(jax.random.key(0), [jnp.ones((2, 4)), jnp.ones((2, 4, 4, 6))])


def test_search_head_shapes_tokens_and_maps_jit():
  head = CrossAttentionSearchHead(out_dim=16, embed_dim=8, depth=2, num_heads=2)
  tokens = jax.random.normal(jax.random.key(0), (3, 5, 8))
  query = jax.random.normal(jax.random.key(1), (3, 8))
  variables = head.init(jax.random.key(2), tokens)  # the same parameters serve with and without a query
  logits, pooled = head.apply(variables, tokens)
  assert logits.shape == (3, 16) and pooled.shape == (3, 8)
  np.testing.assert_allclose(pooled, tokens.mean(axis=1), rtol=1e-6)
  searched, _ = head.apply(variables, tokens, query=query)
  assert searched.shape == (3, 16)
  assert np.max(np.abs(searched - logits)) > 1e-3  # the query re-weights the tokens
  jitted = jax.jit(lambda v, x, q: head.apply(v, x, query=q))(variables, tokens, query)
  np.testing.assert_allclose(jitted[0], searched, rtol=1e-5, atol=1e-6)
  # A CNN feature map [b, h, w, c] is flattened and projected to embed_dim by a 1x1 layer.
  fmap = jax.random.normal(jax.random.key(3), (3, 2, 2, 6))
  v_map = head.init(jax.random.key(2), fmap)
  assert v_map['params']['patch_embed']['kernel'].shape == (6, 8)
  assert v_map['params']['pos_embed'].shape == (1, 4, 8)
  out, pooled = head.apply(v_map, fmap, query=query)
  assert out.shape == (3, 16) and pooled.shape == (3, 8)


def test_search_head_weight_norm_and_permutation_equivariance():
  head = CrossAttentionSearchHead(out_dim=7, embed_dim=8, depth=1, num_heads=2)
  tokens = jax.random.normal(jax.random.key(0), (2, 6, 8))
  query = jax.random.normal(jax.random.key(1), (2, 8))
  variables = jax.jit(head.init)(jax.random.key(2), tokens)
  params = variables['params']
  apply = jax.jit(lambda v, x: head.apply(v, x, query=query)[0])  # one compilation (op by op: seconds per op)
  base = apply(variables, tokens)
  # Weight normalisation: the direction v is normalised per output unit, so rescaling v changes nothing.
  scaled = dict(params, last_v=3.0 * params['last_v'])
  np.testing.assert_allclose(apply({'params': scaled}, tokens), base, rtol=1e-5, atol=1e-6)
  # Without positional embedding, attention and mean pooling do not depend on the order of the tokens.
  flat = dict(params, pos_embed=jnp.zeros_like(params['pos_embed']))
  perm = jnp.array([3, 0, 5, 1, 4, 2])
  a = apply({'params': flat}, tokens)
  b = apply({'params': flat}, tokens[:, perm])
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_search_head_feeds_mokd_cross_distillation():
  head = CrossAttentionSearchHead(out_dim=6, embed_dim=8, depth=1, num_heads=2)
  tokens = jax.random.normal(jax.random.key(0), (4, 5, 8))
  variables = jax.jit(head.init)(jax.random.key(1), tokens)
  student_query = jax.random.normal(jax.random.key(2), (4, 8))
  peer_search, _ = jax.jit(lambda v: head.apply(v, tokens, query=student_query))(variables)
  student_search = jax.random.normal(jax.random.key(3), (4, 6))
  mlp_s, mlp_t = jax.random.normal(jax.random.key(4), (12, 6)), jax.random.normal(jax.random.key(5), (8, 6))

  def loss(s):
    return losses.mokd_cross_distillation(mlp_s, mlp_t, jnp.zeros(6), s, peer_search)
  value, grad = jax.value_and_grad(loss)(student_search)
  assert np.isfinite(value) and grad.shape == (4, 6) and np.any(grad != 0)


def test_search_head_bad_inputs():
  head = CrossAttentionSearchHead(out_dim=6, embed_dim=8, depth=1, num_heads=2)
  with pytest.raises(ValueError, match=r'x must have shape \[b, n, 8\] \(embed_dim\).*got shape \(2, 5, 4\)'):
    head.init(jax.random.key(0), jnp.ones((2, 5, 4)))
  with pytest.raises(ValueError, match=r'query must have shape \[2, 8\].*got shape \(2, 4\)'):
    head.init(jax.random.key(0), jnp.ones((2, 5, 8)), query=jnp.ones((2, 4)))
  with pytest.raises(ValueError, match=r'x must have shape \[b, n, embed_dim\] or \[b, h, w, c\]'):
    head.init(jax.random.key(0), jnp.ones((2, 8)))
