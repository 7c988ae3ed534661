"""Projection heads, linear classifiers and the BatchNorm shared by every model.

`MLPProjector` is the non-linear projection head g(.) of SimCLR (Chen et al., 2020,
https://arxiv.org/abs/2002.05709): Linear-BN-ReLU per hidden layer, then a Linear. With
`last_bn=True` it ends with a BatchNorm without affine parameters, as the projectors of
SimSiam (Chen & He, 2021, https://arxiv.org/abs/2011.10566) and Barlow Twins (Zbontar et al.,
2021, https://arxiv.org/abs/2103.03230) do.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# BatchNorm hyper-parameters of every model in rl.models: PyTorch's defaults (momentum 0.1 there
# is the weight of the new statistic, i.e. 0.9 here), which the reference implementations of
# SimCLR/BYOL/solo-learn use.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def batch_norm(*, train: bool, axis_name: str | None, dtype: Any = jnp.float32,
               name: str | None = None, **kwargs: Any) -> nn.BatchNorm:
  """Returns the BatchNorm used across rl.models.

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
