"""PixPro's Pixel Propagation Module (PPM), the dense head of pixel-to-propagation consistency.

Xie et al., "Propagate Yourself: Exploring Pixel-Level Consistency for Unsupervised Visual
Representation Learning" (PixPro), CVPR 2021, https://arxiv.org/abs/2011.10043 (eqs. 3-4). The
loss that consumes its output is `rl.losses.dense.pixpro`.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rl import losses
from rl.models.heads import batch_norm
from rl.models.heads import check_rank


def propagation_weights(x: jax.Array, *, gamma: float = 2.0) -> jax.Array:
  r"""PixPro's propagation weights between the pixels of each image.

  .. math::
      s(x_i, x_j) = \max(\cos(x_i, x_j), 0)^{\gamma}.

  For gamma < 1, 1e-6 is added before the power (as the official code does) so that the
  gradient stays finite at zero similarity.

  Args:
    x: [b, h, w, d] pixel features.
    gamma: the sharpness exponent gamma > 0 (PixPro: 2).

  Returns:
    [b, h * w, h * w] weights (row-major pixels), in float32 or wider; row i weighs the pixels
    that propagate into pixel i (the pixel itself included, with weight 1).

  Example:
    >>> x = jnp.array([[[[1.0, 0.0], [1.0, 1.0]]]])  # 1 x 2 pixels
    >>> propagation_weights(x, gamma=2.0)[0].round(3).tolist()
    [[1.0, 0.5], [0.5, 1.0]]
  """
  check_rank(x, name='x', ranks=(4,), layout='[b, h, w, d]')
  if isinstance(gamma, (int, float)) and not gamma > 0:
    raise ValueError(f'gamma must be > 0; got {gamma}.')
  b, h, w, d = x.shape
  u = losses.l2_normalize(x.astype(jnp.promote_types(x.dtype, jnp.float32)).reshape(b, h * w, d))
  s = jnp.maximum(jnp.einsum('bid,bjd->bij', u, u), 0.0)
  if isinstance(gamma, (int, float)) and gamma < 1:
    s = s + 1e-6
  return s ** gamma


class PixelPropagation(nn.Module):
  """PixPro's Pixel Propagation Module: y_i = sum_j s(x_i, x_j) g(x_j).

  The weights s are `propagation_weights` (max(cos, 0) ** gamma over all pixels of the same
  image, the pixel itself included). The transform g has `num_layers` 1x1 convolutions (Dense
  layers on the channel axis) with BatchNorm and ReLU between two successive layers: 0 layers is
  the identity, 1 layer (the paper's best and default) a single linear layer with bias, 2 layers
  conv-BN-ReLU-conv as the official `MLP2d`. As in the official `featprop`, g(x_j) is
  L2-normalised over channels before propagation when `normalize_values` (the paper's eq. 3 does
  not show it); the output y is not normalised (the loss normalises it).

  Attributes:
    gamma: the exponent of the similarity (PixPro: 2).
    num_layers: layers of the transform g (PixPro: 1).
    hidden_dim: width of the hidden layers of g when num_layers >= 2 (None: the input width d,
      as the official code's 256 -> 256 -> 256).
    normalize_values: L2-normalise g(x_j) before propagating (the official code does).
    axis_name: mapped axis for cross-device BatchNorm statistics, or None.
    dtype: computation dtype of g (parameters stay float32); the propagation runs in float32.

  Example:
    >>> ppm = PixelPropagation()
    >>> x = jnp.ones((2, 3, 3, 8))
    >>> variables = ppm.init(jax.random.key(0), x, train=False)
    >>> ppm.apply(variables, x, train=False).shape
    (2, 3, 3, 8)
  """
  gamma: float = 2.0
  num_layers: int = 1
  hidden_dim: int | None = None
  normalize_values: bool = True
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    """Propagates pixel features within each image.

    Args:
      x: [b, h, w, d] pixel features (the projector output of the regular encoder).
      train: batch statistics (True) or running averages (False) in g's BatchNorm layers.

    Returns:
      [b, h, w, d] propagated features y (float32, or wider for wider input).
    """
    check_rank(x, name='x', ranks=(4,), layout='[b, h, w, d]')
    if self.num_layers < 0:
      raise ValueError(f'num_layers must be >= 0; got {self.num_layers}.')
    b, h, w, d = x.shape
    value = x
    hidden = self.hidden_dim or d
    for i in range(self.num_layers - 1):
      value = nn.Dense(hidden, dtype=self.dtype, name=f'dense{i}')(value)
      value = batch_norm(train=train, axis_name=self.axis_name, dtype=self.dtype, name=f'bn{i}')(value)
      value = nn.relu(value)
    if self.num_layers >= 1:
      value = nn.Dense(d, dtype=self.dtype, name=f'dense{self.num_layers - 1}')(value)
    value = value.astype(jnp.promote_types(value.dtype, jnp.float32)).reshape(b, h * w, d)
    if self.normalize_values:
      value = losses.l2_normalize(value)
    weights = propagation_weights(x, gamma=self.gamma)
    return jnp.einsum('bij,bjd->bid', weights, value).reshape(b, h, w, d)
