"""Projection heads, linear classifiers and the BatchNorm shared by every model.

`MLPProjector` is the non-linear projection head g(.) of SimCLR (Chen et al., 2020,
https://arxiv.org/abs/2002.05709): Linear-BN-ReLU per hidden layer, then a Linear. With
`last_bn=True` it ends with a BatchNorm without affine parameters, as the projectors of
SimSiam (Chen & He, 2021, https://arxiv.org/abs/2011.10566) and Barlow Twins (Zbontar et al.,
2021, https://arxiv.org/abs/2103.03230) do.

`Predictor` is BYOL's / SimSiam's prediction MLP (an `MLPProjector` with BYOL's sizes),
`Prototypes` (+ `normalize_prototypes`) is SwAV's prototype layer and `DINOHead` is DINO's
projection head with its weight-normalised last layer (`WeightNormDense`).
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rl import losses

# BatchNorm hyper-parameters of every model in rl.models: PyTorch's defaults (momentum 0.1 there
# is the weight of the new statistic, i.e. 0.9 here), which the reference implementations of
# SimCLR/BYOL/solo-learn use.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def batch_norm(*, train: bool, axis_name: str | None, dtype: Any = jnp.float32,
               name: str | None = None, **kwargs: Any) -> nn.BatchNorm:
  """Returns the BatchNorm used across rl.models.

  Example:
    >>> bn = batch_norm(train=True, axis_name=None)
    >>> x = jnp.array([[1.0], [3.0]])
    >>> y, updates = bn.apply(bn.init(jax.random.key(0), x), x, mutable=['batch_stats'])
    >>> np.round(np.asarray(y), 3)  # standardised with the batch mean 2 and variance 1
    array([[-1.],
           [ 1.]], dtype=float32)

  Args:
    train: if True, normalise with the batch statistics and update the running averages in the
      'batch_stats' collection; if False, use the running averages.
    axis_name: None for per-device statistics; a mapped axis name (inside `jax.shard_map` or
      `jax.pmap`) to average the batch statistics over all devices ("sync BN").
    dtype: computation dtype; statistics are still reduced in float32.
    name: submodule name.
    **kwargs: forwarded to `nn.BatchNorm` (e.g. `use_scale`, `use_bias`, `scale_init`).

  Returns:
    An unbound `nn.BatchNorm` module.
  """
  return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                      axis_name=axis_name, dtype=dtype, name=name, **kwargs)


def check_rank(x: jax.Array, *, name: str, ranks: Sequence[int], layout: str) -> None:
  """Raises ValueError unless `x.ndim` is one of `ranks`.

  Args:
    x: the array to check.
    name: the argument name used in the error message.
    ranks: allowed numbers of dimensions.
    layout: the expected layout, e.g. '[b, d]', used in the error message.

  Example:
    >>> check_rank(jnp.ones((2, 3)), name='z', ranks=(2,), layout='[b, d]')
    >>> check_rank(jnp.ones(3), name='z', ranks=(2,), layout='[b, d]')
    Traceback (most recent call last):
      ...
    ValueError: z must have shape [b, d] (rank 2), got shape (3,).
  """
  if x.ndim not in ranks:
    raise ValueError(f'{name} must have shape {layout} (rank {" or ".join(map(str, ranks))}), '
                     f'got shape {tuple(x.shape)}.')


class MLPProjector(nn.Module):
  """SimCLR-style MLP projection head.

  `(Linear -> BN -> ReLU) * len(hidden_dims) -> Linear [-> BN without affine]`.

  The hidden Linear layers have no bias when followed by BN, because BN's mean subtraction
  cancels it; the same holds for the last Linear when `last_bn=True` (as in SimSiam's code).

  Attributes:
    hidden_dims: widths of the hidden layers; `()` gives a single Linear layer.
    out_dim: output dimension.
    use_bn: BatchNorm after each hidden Linear layer.
    last_bn: a BatchNorm without scale and bias after the output layer (SimSiam, Barlow Twins).
    axis_name: mapped axis for cross-device BatchNorm statistics, or None.
    dtype: computation dtype (parameters stay float32).

  Example:
    >>> head = MLPProjector(hidden_dims=(512,), out_dim=128)
    >>> variables = head.init(jax.random.key(0), jnp.ones((4, 32)), train=False)
    >>> z, updates = head.apply(variables, jnp.ones((4, 32)), train=True, mutable=['batch_stats'])
  """
  hidden_dims: Sequence[int] = (2048,)
  out_dim: int = 128
  use_bn: bool = True
  last_bn: bool = False
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Projects features.

    Args:
      x: features, [b, d].
      train: batch statistics (True) or running averages (False) in BatchNorm.

    Returns:
      Projections, [b, out_dim], in `dtype`.
    """
    check_rank(x, name='x', ranks=(2,), layout='[b, d]')
    for i, width in enumerate(self.hidden_dims):
      x = nn.Dense(width, use_bias=not self.use_bn, dtype=self.dtype, name=f'dense{i}')(x)
      if self.use_bn:
        x = batch_norm(train=train, axis_name=self.axis_name, dtype=self.dtype, name=f'bn{i}')(x)
      x = nn.relu(x)
    x = nn.Dense(self.out_dim, use_bias=not self.last_bn, dtype=self.dtype, name='out')(x)
    if self.last_bn:
      x = batch_norm(train=train, axis_name=self.axis_name, dtype=self.dtype, use_scale=False,
                     use_bias=False, name='out_bn')(x)
    return x


class LinearClassifier(nn.Module):
  """A single Linear layer, for linear evaluation of frozen features.

  Attributes:
    num_classes: number of output logits.
    dtype: computation dtype (parameters stay float32).
  """
  num_classes: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Computes logits.

    Args:
      x: features, [b, d].
      train: unused (no BatchNorm or dropout); kept for the uniform model signature.

    Returns:
      Logits, [b, num_classes].
    """
    del train
    check_rank(x, name='x', ranks=(2,), layout='[b, d]')
    return nn.Dense(self.num_classes, dtype=self.dtype, name='fc')(x)


# --------------------------------------------------------------------------- BYOL/SimSiam predictor


class Predictor(MLPProjector):
  """BYOL / SimSiam prediction MLP q(.), with BYOL's defaults.

  The same network as `MLPProjector` (Linear -> BN -> ReLU per hidden layer, then a Linear with
  bias and no output BN); only the defaults differ:

  * BYOL (Grill et al., 2020, https://arxiv.org/abs/2006.07733): Linear 4096 -> BN -> ReLU ->
    Linear 256, i.e. the defaults `hidden_dims=(4096,), out_dim=256`.
  * SimSiam (Chen & He, 2021, https://arxiv.org/abs/2011.10566): the bottleneck
    2048 -> 512 -> 2048 with BN + ReLU on the hidden layer and no BN on the output, i.e.
    `Predictor(hidden_dims=(512,), out_dim=2048)`.

  The hidden Linear has no bias because BN follows it (the BN's mean subtraction cancels it).

  Attributes:
    hidden_dims: widths of the hidden layers.
    out_dim: output dimension (the projector's output dimension).
    use_bn: BatchNorm after each hidden Linear layer.
    last_bn: must stay False for BYOL and SimSiam; kept from `MLPProjector`.
    axis_name: mapped axis for cross-device BatchNorm statistics, or None.
    dtype: computation dtype (parameters stay float32).

  Example:
    >>> predictor = Predictor(hidden_dims=(16,), out_dim=8)  # SimSiam shape, tiny.
    >>> variables = predictor.init(jax.random.key(0), jnp.ones((4, 8)), train=False)
    >>> p, _ = predictor.apply(variables, jnp.ones((4, 8)), train=True, mutable=['batch_stats'])
    >>> p.shape
    (4, 8)
  """
  hidden_dims: Sequence[int] = (4096,)
  out_dim: int = 256
  use_bn: bool = True
  last_bn: bool = False


def _l2_normalize(x: jax.Array, axis: int) -> jax.Array:
  """`rl.losses.l2_normalize` in float32 at least (all-zero slices map to zero with finite gradients)."""
  return losses.l2_normalize(x.astype(jnp.promote_types(x.dtype, jnp.float32)), axis=axis)


def _torch_linear_init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
  """PyTorch's default `nn.Linear` weight init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), kernel [in, out]."""
  return nn.initializers.variance_scaling(1 / 3, 'fan_in', 'uniform')(key, shape, dtype)


def _check_positive(value: int, *, name: str, owner: str) -> None:
  if value < 1:
    raise ValueError(f'{owner}.{name} must be a positive integer, got {value}.')


# --------------------------------------------------------------------------- SwAV prototypes


class Prototypes(nn.Module):
  """SwAV's prototype layer: scores of L2-normalised features against K unit-norm prototypes.

  `scores = normalize(x) @ normalize_columns(C)`, with `C` a bias-free kernel [d, K]; with both
  normalisations each score is the cosine similarity between a feature and a prototype
  (Caron et al., 2020, https://arxiv.org/abs/2006.09882).

  Deviation from the official code: SwAV keeps C unnormalised in the forward pass and instead
  re-normalises its columns in place after every optimizer step. With `normalize=True` we
  normalise in the forward pass, so the layer is always a cosine similarity and no extra step is
  needed; the gradient then flows through the normalisation (it is projected onto the tangent of
  the unit sphere and scaled by 1/||c_k||), which differs from SwAV's update. To reproduce SwAV
  exactly, use `normalize=False` and apply `normalize_prototypes` to the layer's parameters after
  each optimizer step (and once after init). Freezing the prototypes for the first iterations,
  as SwAV does, is the method's job.

  The kernel is initialised as PyTorch's default `nn.Linear` (U(+-1/sqrt(d))), as in SwAV.

  Attributes:
    num_prototypes: K, the number of prototypes (SwAV: 3000 on ImageNet).
    normalize: L2-normalise the prototype columns in the forward pass.
    normalize_input: L2-normalise each feature row first (SwAV's `l2norm`, on by default).
    dtype: computation dtype of the matmul (parameters stay float32; norms are float32).

  Example:
    >>> layer = Prototypes(num_prototypes=10)
    >>> variables = layer.init(jax.random.key(0), jnp.ones((4, 8)), train=False)
    >>> variables['params']['kernel'].shape
    (8, 10)
    >>> scores = layer.apply(variables, jnp.ones((4, 8)), train=True)
    >>> bool(jnp.all(jnp.abs(scores) <= 1 + 1e-6))
    True
  """
  num_prototypes: int
  normalize: bool = True
  normalize_input: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Scores features against the prototypes.

    Args:
      x: features, [b, d].
      train: unused (no BatchNorm or dropout); kept for the uniform model signature.

    Returns:
      Scores, [b, num_prototypes], in `dtype`; cosine similarities when both normalisations
      are on.
    """
    del train
    _check_positive(self.num_prototypes, name='num_prototypes', owner='Prototypes')
    check_rank(x, name='x', ranks=(2,), layout='[b, d]')
    kernel = self.param('kernel', _torch_linear_init, (x.shape[-1], self.num_prototypes))
    if self.normalize_input:
      x = _l2_normalize(x, axis=-1)
    if self.normalize:
      kernel = _l2_normalize(kernel, axis=0)
    return jnp.dot(x.astype(self.dtype), kernel.astype(self.dtype))


def normalize_prototypes(params: Any) -> Any:
  """Returns the prototypes with unit-norm columns: SwAV's normalisation after each step.

  SwAV (https://arxiv.org/abs/2006.09882) re-normalises the prototype matrix after every
  optimizer step (`w = normalize(w, dim=1)` on the PyTorch [K, d] weight, i.e. each prototype).
  Use this with `Prototypes(normalize=False)`; it is pure, so in a jitted step write e.g.
  `params = {**params, 'prototypes': normalize_prototypes(params['prototypes'])}`.

  Args:
    params: a `Prototypes` layer's parameters (a mapping with a 'kernel' [d, K]), or the kernel
      array [d, K] itself.

  Returns:
    The same structure, with every column of the kernel of unit L2 norm (all-zero columns stay
    zero) and the kernel's dtype kept.

  Raises:
    ValueError: if `params` is neither a rank-2 array nor a mapping with a rank-2 'kernel'.

  Example:
    >>> params = {'kernel': jnp.array([[3.0, 0.0], [4.0, 2.0]])}
    >>> normalize_prototypes(params)['kernel']
    Array([[0.6, 0. ],
           [0.8, 1. ]], dtype=float32)
  """
  def normalized(kernel: Any, name: str) -> jax.Array:
    if not hasattr(kernel, 'ndim') or kernel.ndim != 2:
      shape = tuple(kernel.shape) if hasattr(kernel, 'shape') else type(kernel).__name__
      raise ValueError(f'{name} must be the prototype kernel with shape [d, K] (rank 2), '
                       f'got {shape}.')
    return _l2_normalize(kernel, axis=0).astype(kernel.dtype)

  if hasattr(params, 'ndim'):
    return normalized(params, 'params')
  if not hasattr(params, 'keys') or 'kernel' not in params:
    raise ValueError("params must be a Prototypes layer's parameters (a mapping with a 'kernel') "
                     f'or the kernel array; got {type(params).__name__}'
                     f'{" with keys " + str(sorted(params.keys())) if hasattr(params, "keys") else ""}.')
  kernel = normalized(params['kernel'], "params['kernel']")
  if hasattr(params, 'copy') and not isinstance(params, dict):  # FrozenDict.
    return params.copy({'kernel': kernel})
  return {**params, 'kernel': kernel}


# --------------------------------------------------------------------------- DINO head


def _dino_trunc_normal(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
  """DINO's `trunc_normal_(w, std=.02)`: N(0, 0.02^2) truncated to [-2, 2].

  DINO's bounds are absolute (a=-2, b=2), i.e. +-100 standard deviations, so the truncation never
  binds and this is exactly N(0, 0.02^2). We sample the normal directly: an inverse-CDF truncated
  sampler (`jax.random.truncated_normal`) with +-100 sigma bounds rounds rare float32 samples to
  the bounds themselves.
  """
  return 0.02 * jax.random.normal(key, shape, dtype)


class WeightNormDense(nn.Module):
  """A bias-free Linear layer with weight normalisation, `w_k = g_k * v_k / ||v_k||`.

  One direction `v_k` (a column of the kernel [d, out]) and one gain `g_k` per output unit, as
  `torch.nn.utils.weight_norm(nn.Linear(d, out, bias=False))` (Salimans & Kingma, 2016,
  https://arxiv.org/abs/1602.07868). With `use_scale=False` the gain is fixed to 1 and not a
  parameter. `v` is initialised as PyTorch's default `nn.Linear`, `g` to ones (as DINO does).
  Params: 'kernel' (v, [d, out]) and, with `use_scale`, 'scale' (g, [out]).

  Attributes:
    features: number of output units.
    use_scale: learn the gains g; if False they are fixed to 1.
    dtype: computation dtype of the matmul (parameters stay float32; norms are float32).
  """
  features: int
  use_scale: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Applies the layer to x, [..., d]; returns [..., features]."""
    kernel = self.param('kernel', _torch_linear_init, (x.shape[-1], self.features))
    kernel = _l2_normalize(kernel, axis=0)
    if self.use_scale:
      kernel = kernel * self.param('scale', nn.initializers.ones, (self.features,))
    return jnp.dot(x.astype(self.dtype), kernel.astype(self.dtype))


class DINOHead(nn.Module):
  """DINO's projection head: an MLP to a bottleneck, L2 normalisation, a weight-normalised Linear.

  `x -> (Linear [-> BN] -> GELU) * (num_layers - 1) -> Linear(bottleneck_dim) -> normalize
  -> WeightNormDense(out_dim)` (Caron et al., 2021, https://arxiv.org/abs/2104.14294, after the
  official `DINOHead` in facebookresearch/dino's vision_transformer.py). With
  `num_layers=1` the MLP is the single Linear to the bottleneck.

  Details kept from the official code: GELU is the exact (erf) one, as `torch.nn.GELU`; the MLP
  kernels are drawn from DINO's truncated normal with std 0.02 (see `_dino_trunc_normal`) and
  the biases are zero; the last layer has no bias, its directions are initialised as PyTorch's
  default Linear and its gains to 1. With `norm_last_layer=True` the gains are fixed to 1 (no
  'scale' parameter), so every logit is a cosine similarity in [-1, 1]; with False they are
  learnt. Deviation: with `use_bn=True` the Linear layers followed by BN have no bias (the BN
  cancels it; DINO keeps a redundant one). Freezing the last layer during the first epoch
  (`freeze_last_layer`) is the method's job.

  Attributes:
    out_dim: K, the number of output logits (DINO: 65536).
    hidden_dim: width of the hidden layers.
    bottleneck_dim: width of the L2-normalised bottleneck.
    num_layers: number of Linear layers in the MLP, bottleneck included (>= 1).
    use_bn: BatchNorm after each hidden Linear layer (DINO uses it only for ResNets).
    norm_last_layer: fix the weight-norm gains of the last layer to 1.
    axis_name: mapped axis for cross-device BatchNorm statistics, or None.
    dtype: computation dtype (parameters stay float32; norms are float32).

  Example:
    >>> head = DINOHead(out_dim=32, hidden_dim=16, bottleneck_dim=8)
    >>> variables = head.init(jax.random.key(0), jnp.ones((4, 12)), train=False)
    >>> sorted(variables['params'])
    ['bottleneck', 'dense0', 'dense1', 'last_layer']
    >>> logits = head.apply(variables, jnp.ones((4, 12)), train=True)
    >>> logits.shape
    (4, 32)
  """
  out_dim: int = 65536
  hidden_dim: int = 2048
  bottleneck_dim: int = 256
  num_layers: int = 3
  use_bn: bool = False
  norm_last_layer: bool = True
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Computes DINO logits (before the temperature softmax).

    Args:
      x: features, [b, d].
      train: batch statistics (True) or running averages (False) in BatchNorm; unused when
        `use_bn=False`.

    Returns:
      Logits, [b, out_dim], in `dtype`.
    """
    for name in ('out_dim', 'hidden_dim', 'bottleneck_dim', 'num_layers'):
      _check_positive(getattr(self, name), name=name, owner='DINOHead')
    check_rank(x, name='x', ranks=(2,), layout='[b, d]')
    def dense(width: int, name: str, bias: bool = True) -> nn.Dense:
      return nn.Dense(width, use_bias=bias, dtype=self.dtype, kernel_init=_dino_trunc_normal,
                      bias_init=nn.initializers.zeros, name=name)

    for i in range(self.num_layers - 1):
      x = dense(self.hidden_dim, f'dense{i}', bias=not self.use_bn)(x)
      if self.use_bn:
        x = batch_norm(train=train, axis_name=self.axis_name, dtype=self.dtype, name=f'bn{i}')(x)
      x = nn.gelu(x, approximate=False)
    x = dense(self.bottleneck_dim, 'bottleneck')(x)
    x = _l2_normalize(x, axis=-1)
    return WeightNormDense(self.out_dim, use_scale=not self.norm_last_layer, dtype=self.dtype,
                           name='last_layer')(x)
