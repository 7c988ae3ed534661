"""ResNet backbones (He et al., 2016, https://arxiv.org/abs/1512.03385) without the final fc.

The layout follows torchvision's ResNet ("v1.5": in a Bottleneck the stride is on the 3x3 conv),
with the same explicit paddings and the same parameter counts: ResNet-18 has 11,176,512 and
ResNet-50 23,508,032 parameters with the ImageNet stem (torchvision's counts minus the fc).
Running BatchNorm statistics live in the 'batch_stats' collection and are not parameters.

`stem='cifar'` replaces the 7x7 stride-2 conv and max-pool by one 3x3 stride-1 conv, the
usual adaptation for 32x32 images (SimCLR, Chen et al., 2020, Appendix B.9;
https://arxiv.org/abs/2002.05709).

`shortcut_decay=alpha_min` scales the shortcut of the l-th residual block by a fixed weight that
decreases linearly with depth ("decayed identity shortcuts", Zhang et al., 2024, "Residual
Connections Harm Generative Representation Learning", https://arxiv.org/abs/2404.10947); see
`decayed_shortcut_weights`. The default (None) is the standard residual network.
"""

import functools
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rl.models.heads import batch_norm
from rl.models.heads import check_rank

# He (fan_out) initialisation of convolutions, as torchvision's ResNet.
_CONV_INIT = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')
_STEMS = ('cifar', 'imagenet')
_BLOCKS = ('basic', 'bottleneck')


def decayed_shortcut_weights(num_blocks: int, alpha_min: float) -> tuple[float, ...]:
  r"""Weights of the identity shortcuts of "decayed identity shortcuts", one per residual block.

  Block l (0-based) of L computes :math:`x_{l+1} = \alpha_l x_l + f_l(x_l)` with

  .. math::
      \alpha_l = 1 - \delta_\alpha l, \qquad \delta_\alpha = \frac{1 - \alpha_{\min}}{L - 1},

  so the weight decreases linearly from 1 at the first block to `alpha_min` at the last; the
  residual branch is not rescaled and no parameter is added. A single block keeps weight 1.
  The paper states :math:`\alpha_l = 1 - \delta_\alpha l` with the one hyper-parameter
  :math:`\alpha_{\min}`; pinning the first block at 1 and the last at :math:`\alpha_{\min}` is
  our reading of it.

  Args:
    num_blocks: L, the number of residual blocks (>= 1).
    alpha_min: weight of the deepest shortcut, in [0, 1]; 1 gives the standard residual network.

  Returns:
    L Python floats, non-increasing.

  Example:
    >>> decayed_shortcut_weights(5, 0.5)
    (1.0, 0.875, 0.75, 0.625, 0.5)

  Zhang et al., "Residual Connections Harm Generative Representation Learning", 2024,
  https://arxiv.org/abs/2404.10947.
  """
  if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
    raise ValueError(f'num_blocks must be a positive int, got {num_blocks!r}.')
  if not 0.0 <= alpha_min <= 1.0:
    raise ValueError(f'shortcut_decay (alpha_min) must be in [0, 1], got {alpha_min!r}.')
  if num_blocks == 1:
    return (1.0,)
  delta = (1.0 - alpha_min) / (num_blocks - 1)
  # The last weight is set exactly, free of rounding in 1 - delta * (L - 1).
  return tuple(1.0 - delta * l for l in range(num_blocks - 1)) + (float(alpha_min),)


def add_shortcut(y: jax.Array, shortcut: jax.Array, weight: float) -> jax.Array:
  """The residual sum `y + weight * shortcut` of a block (ResNet here, ViT in `rl.models.vit`).

  Example:
    >>> add_shortcut(jnp.ones(2), jnp.full(2, 2.0), 0.5).tolist(), add_shortcut(jnp.ones(2), jnp.ones(2), 1.0).tolist()
    ([2.0, 2.0], [2.0, 2.0])

  Args:
    y: the residual branch's output.
    shortcut: the shortcut (identity or projection), the shape of `y`.
    weight: a Python float, e.g. from `decayed_shortcut_weights`; 1.0 is the standard block.

  Returns:
    The sum, shaped like `y`.
  """
  # weight == 1 skips the multiply, so the standard network computes exactly what it did before.
  return y + shortcut if weight == 1.0 else y + weight * shortcut


def _conv(features: int, kernel: int, stride: int, dtype: Any, name: str) -> nn.Conv:
  # Explicit symmetric padding (kernel // 2), as PyTorch: 'SAME' would pad stride-2 convs on
  # even inputs asymmetrically and make ported weights compute something else.
  pad = kernel // 2
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((pad, pad), (pad, pad)), use_bias=False, kernel_init=_CONV_INIT,
                 dtype=dtype, name=name)


class BasicBlock(nn.Module):
  """Two 3x3 convs with an identity (or 1x1 projection) shortcut; expansion 1.

  Attributes:
    features: channels of the convs (and of the output).
    stride: stride of the first conv and of the shortcut.
    zero_init_residual: initialise the last BN scale to zero, so the block starts as identity.
    shortcut_weight: fixed factor on the shortcut (identity or projection) before the sum; 1 is
      the standard block (see `decayed_shortcut_weights`).
    axis_name: mapped axis for cross-device BatchNorm statistics, or None.
    dtype: computation dtype.
  """
  features: int
  stride: int = 1
  zero_init_residual: bool = False
  shortcut_weight: float = 1.0
  axis_name: str | None = None
  dtype: Any = jnp.float32
  expansion = 1

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Applies the block to x [b, h, w, c]; returns [b, h / stride, w / stride, features]."""
    bn = functools.partial(batch_norm, train=train, axis_name=self.axis_name, dtype=self.dtype)
    last_init = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
    y = _conv(self.features, 3, self.stride, self.dtype, 'conv1')(x)
    y = nn.relu(bn(name='bn1')(y))
    y = _conv(self.features, 3, 1, self.dtype, 'conv2')(y)
    y = bn(name='bn2', scale_init=last_init)(y)
    shortcut = _shortcut(x, self.features, self.stride, bn, self.dtype)
    return nn.relu(add_shortcut(y, shortcut, self.shortcut_weight))


class Bottleneck(nn.Module):
  """1x1 reduce, 3x3 (strided), 1x1 expand (x4) convs with a shortcut; expansion 4.

  Attributes:
    features: channels of the inner convs; the output has `4 * features`.
    stride: stride of the 3x3 conv and of the shortcut (torchvision's "v1.5").
    zero_init_residual: initialise the last BN scale to zero, so the block starts as identity.
    shortcut_weight: fixed factor on the shortcut (identity or projection) before the sum; 1 is
      the standard block (see `decayed_shortcut_weights`).
    axis_name: mapped axis for cross-device BatchNorm statistics, or None.
    dtype: computation dtype.
  """
  features: int
  stride: int = 1
  zero_init_residual: bool = False
  shortcut_weight: float = 1.0
  axis_name: str | None = None
  dtype: Any = jnp.float32
  expansion = 4

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Applies the block to x [b, h, w, c]; returns [b, h / stride, w / stride, 4 * features]."""
    bn = functools.partial(batch_norm, train=train, axis_name=self.axis_name, dtype=self.dtype)
    last_init = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
    out = self.features * self.expansion
    y = _conv(self.features, 1, 1, self.dtype, 'conv1')(x)
    y = nn.relu(bn(name='bn1')(y))
    y = _conv(self.features, 3, self.stride, self.dtype, 'conv2')(y)
    y = nn.relu(bn(name='bn2')(y))
    y = _conv(out, 1, 1, self.dtype, 'conv3')(y)
    y = bn(name='bn3', scale_init=last_init)(y)
    shortcut = _shortcut(x, out, self.stride, bn, self.dtype)
    return nn.relu(add_shortcut(y, shortcut, self.shortcut_weight))


def _shortcut(x: jax.Array, features: int, stride: int, bn: Callable[..., nn.Module],
              dtype: Any) -> jax.Array:
  """Identity, or a strided 1x1 conv + BN when the shape changes (torchvision's downsample)."""
  if stride == 1 and x.shape[-1] == features:
    return x
  x = _conv(features, 1, stride, dtype, 'downsample_conv')(x)
  return bn(name='downsample_bn')(x)


class ResNet(nn.Module):
  """ResNet backbone returning globally average-pooled features [b, feature_dim].

  Attributes:
    stage_sizes: number of blocks in each of the stages.
    block: 'basic' (ResNet-18/34) or 'bottleneck' (ResNet-50/101/152).
    stem: 'imagenet' (7x7 stride-2 conv + 3x3 stride-2 max-pool) or 'cifar' (3x3 stride-1
      conv, no max-pool) for small images.
    width: channels of the first stage; stage i has `width * 2**i` (times the block expansion).
    zero_init_residual: initialise the last BN scale of each residual block to zero (Goyal et
      al., 2017, https://arxiv.org/abs/1706.02677). Default False, as torchvision and solo-learn.
    shortcut_decay: None for standard residual blocks; a float alpha_min in [0, 1] to scale the
      shortcut of block l (counted over all stages) by `decayed_shortcut_weights(L, alpha_min)[l]`
      (Zhang et al., 2024, https://arxiv.org/abs/2404.10947). Adds no parameters.
    axis_name: mapped axis for cross-device ("sync") BatchNorm statistics, or None.
    dtype: computation dtype for mixed precision, e.g. jnp.bfloat16; parameters stay float32
      and BatchNorm statistics are reduced in float32.
  """
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  block: str = 'basic'
  stem: str = 'imagenet'
  width: int = 64
  zero_init_residual: bool = False
  shortcut_decay: float | None = None
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @property
  def feature_dim(self) -> int:
    """Dimension of the returned features: 512 for ResNet-18, 2048 for ResNet-50."""
    expansion = 4 if self.block == 'bottleneck' else 1
    return self.width * 2 ** (len(self.stage_sizes) - 1) * expansion

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Encodes images.

    Args:
      x: images, [b, h, w, c] (NHWC).
      train: batch statistics (True) or running averages (False) in BatchNorm.

    Returns:
      Pooled features, [b, feature_dim], in `dtype`.
    """
    check_rank(x, name='x', ranks=(4,), layout='[b, h, w, c]')
    if self.stem not in _STEMS:
      raise ValueError(f'stem must be one of {_STEMS}, got {self.stem!r}.')
    if self.block not in _BLOCKS:
      raise ValueError(f'block must be one of {_BLOCKS}, got {self.block!r}.')
    block_cls = BasicBlock if self.block == 'basic' else Bottleneck
    x = x.astype(self.dtype)
    if self.stem == 'imagenet':
      x = _conv(self.width, 7, 2, self.dtype, 'stem_conv')(x)
    else:
      x = _conv(self.width, 3, 1, self.dtype, 'stem_conv')(x)
    x = batch_norm(train=train, axis_name=self.axis_name, dtype=self.dtype, name='stem_bn')(x)
    x = nn.relu(x)
    if self.stem == 'imagenet':
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    total = sum(self.stage_sizes)
    weights = ((1.0,) * total if self.shortcut_decay is None or total == 0
               else decayed_shortcut_weights(total, self.shortcut_decay))
    index = 0
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        x = block_cls(self.width * 2**i, stride=2 if i > 0 and j == 0 else 1,
                      zero_init_residual=self.zero_init_residual,
                      shortcut_weight=weights[index], axis_name=self.axis_name,
                      dtype=self.dtype, name=f'stage{i + 1}_block{j + 1}')(x, train=train)
        index += 1
    return jnp.mean(x, axis=(1, 2))


class ResNet18(ResNet):
  """ResNet-18: BasicBlocks [2, 2, 2, 2], 512-d features, 11,176,512 parameters."""
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  block: str = 'basic'


class ResNet50(ResNet):
  """ResNet-50: Bottlenecks [3, 4, 6, 3], 2048-d features, 23,508,032 parameters."""
  stage_sizes: Sequence[int] = (3, 4, 6, 3)
  block: str = 'bottleneck'
