"""Medical image-volume pre-training: the masked slice-embedding task of the joint image-volume method.

Nguyen et al.'s joint image-volume pre-training embeds every slice of a 3-D volume with a 2-D encoder (trained
first with 2-D SwAV / DeepCluster-v2: `rl.losses.swav`), then trains a transformer over the slice embeddings of a
volume to restore the embeddings of randomly masked slices before the 3-D clustering stage (SwAV or
DeepCluster-v2 on the volume embeddings, again `rl.losses.swav`). The three pieces specific to the method:

- `volume_slice_mask`: which slices of a volume are masked (a fixed share, chosen uniformly at random);
- `volume_mask_tokens`: the transformer's input, each masked slice embedding replaced by a learned mask token;
- `volume_masked_embedding_loss`: the mean squared error between the slice embeddings and the transformer's
  output, for both augmented views of a volume, divided by the number of masked slices.

The paper's method section was not in our stored copies, so everything here follows the authors' released code
(github.com/duyhominhnguyen/Self-supervised-Image-Volume-Intra-Inter-Contrastive: `mask_swav_3D.py`,
`utils/dataset.py` `MaskGenerator`, `utils/models.py` `EncoderModel.forward`); each docstring names what it
transcribes.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops



def volume_slice_mask(key: jax.Array, num_slices: int, *, mask_ratio: float = 0.1) -> jax.Array:
  r"""Which slices of a volume to mask: ceil(num_slices * mask_ratio) of them, uniformly at random.

  .. math::
      M = \operatorname{top}_k(\epsilon), \quad \epsilon \sim \mathcal{N}(0, I_S), \quad
      k = \lceil S \cdot r \rceil,

  a boolean vector of length S with True at the k slices whose Gaussian score is largest (a uniformly random
  k-subset). Call it once per volume (e.g. `jax.vmap` over split keys) as the code's data loader does.

  Source: after the authors' code, `MaskGenerator.__call__` (Self-supervised-Image-Volume-Intra-Inter-Contrastive,
  utils/dataset.py: `torch.randn((n_frames, 1)).topk(k=ceil(n_frames * mask_ratio))`, scattered into a bitmask).

  Args:
    key: a `jax.random` key.
    num_slices: S, the number of slices of the volume (static).
    mask_ratio: r in (0, 1], the share of masked slices (the code's default 0.1).

  Returns:
    A boolean [num_slices] mask, True at the masked slices.

  Example:
    >>> m = volume_slice_mask(jax.random.PRNGKey(0), 64)
    >>> m.shape, int(m.sum())  # ceil(64 * 0.1) = 7 masked slices
    ((64,), 7)

  Nguyen et al., "Joint Self-Supervised Image-Volume Representation Learning with Intra-Inter Contrastive Clustering",
  AAAI 2023, https://arxiv.org/abs/2212.01893; code
  github.com/duyhominhnguyen/Self-supervised-Image-Volume-Intra-Inter-Contrastive.
  """
  if not isinstance(num_slices, int) or num_slices < 1:
    raise ValueError(f"num_slices must be a positive int (static); got {num_slices!r}.")
  _checks.check_in_range("mask_ratio", mask_ratio, 0.0, 1.0, low_inclusive=False)
  k = int(math.ceil(num_slices * mask_ratio))
  scores = jax.random.normal(key, (num_slices,))
  _, chosen = jax.lax.top_k(scores, k)
  return jnp.zeros((num_slices,), bool).at[chosen].set(True)


def volume_mask_tokens(slice_embeddings: jax.Array, mask: jax.Array, mask_token: jax.Array) -> jax.Array:
  r"""The masked transformer's input: each masked slice embedding replaced by the learned mask token.

  .. math::
      \tilde x_{bs} = (1 - M_{bs})\, x_{bs} + M_{bs}\, t,

  with :math:`x_{bs}` the embedding of slice s of volume b, :math:`M_{bs}` the mask and t the mask token (a
  learned [d] parameter: its gradient is the sum of the output gradient over the masked slices).

  Source: after the authors' code, `EncoderModel.forward` (Self-supervised-Image-Volume-Intra-Inter-Contrastive,
  utils/models.py: `mask_embed = (~mask) * src + mask * mask_tokens`).

  Args:
    slice_embeddings: [b, s, d] the 2-D encoder's embeddings of the s slices of b volumes.
    mask: boolean [b, s] (one mask per volume) or [s] (one for all), True at the masked slices
      (`volume_slice_mask`).
    mask_token: [d] the learned mask token.

  Returns:
    The [b, s, d] input of the slice transformer (the promoted dtype of the embeddings and the token).

  Example:
    >>> x = jnp.ones((1, 3, 2))
    >>> volume_mask_tokens(x, jnp.array([False, True, False]), jnp.zeros(2))[0].tolist()
    [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]

  Nguyen et al., "Joint Self-Supervised Image-Volume Representation Learning with Intra-Inter Contrastive Clustering",
  AAAI 2023, https://arxiv.org/abs/2212.01893; code
  github.com/duyhominhnguyen/Self-supervised-Image-Volume-Intra-Inter-Contrastive.
  """
  _checks.check_array("slice_embeddings", slice_embeddings, ndim=3, shape_doc="[b, s, d]")
  b, s, d = slice_embeddings.shape
  if not hasattr(mask, "shape") or tuple(mask.shape) not in ((b, s), (s,)):
    raise ValueError(f"mask must have shape [{b}, {s}] or [{s}] (one entry per slice of slice_embeddings, "
                     f"[b, s, d]); got {tuple(getattr(mask, 'shape', ())) or type(mask).__name__}.")
  if mask.dtype != jnp.bool_:
    raise ValueError(f"mask must be a boolean array; got dtype {mask.dtype}.")
  _checks.check_array("mask_token", mask_token, ndim=1, shape_doc=f"[{d}]")
  if mask_token.shape != (d,):
    raise ValueError(f"mask_token must have shape [{d}] (the embedding size of slice_embeddings, [b, s, d]); "
                     f"got shape {tuple(mask_token.shape)}.")
  m = jnp.broadcast_to(mask, (b, s))[..., None]
  return jnp.where(m, mask_token, slice_embeddings)


def volume_masked_embedding_loss(
    slices1: jax.Array, predicted1: jax.Array, slices2: jax.Array, predicted2: jax.Array, *,
    mask_ratio: float = 0.1, return_terms: bool = False,
    axis_name: str | None = None) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
  r"""The masked slice-embedding loss of the joint image-volume method, over two augmented views of each volume.

  With :math:`x^v_{bsj}` the slice embeddings of view v (volume b, slice s, dimension j; B volumes, S slices,
  D dimensions), :math:`\hat x^v` the transformer's output for the masked input, and
  :math:`k = \lfloor S r \rfloor` in the denominator (the code's `int(n_frames * mask_ratio)`),

  .. math::
      L = \frac{1}{k}\Big( \frac{1}{BSD} \sum_{b,s,j} (x^1_{bsj} - \hat x^1_{bsj})^2
          + \frac{1}{BSD} \sum_{b,s,j} (x^2_{bsj} - \hat x^2_{bsj})^2 \Big).

  As in the code, the error runs over ALL slices (masked and visible): the transformer must restore the masked
  embeddings and reproduce the visible ones; the division by k only rescales. The target is the same slice
  embedding that went into the transformer, not detached: the code trains only the transformer (its optimiser
  holds the transformer's parameters; the 2-D encoder is in eval mode), so pass `lax.stop_gradient` slices to
  reproduce it. The code's mask holds ceil(S r) slices (`volume_slice_mask`) while it divides by floor(S r).

  Source: after the authors' code, `train` of mask_swav_3D.py (Self-supervised-Image-Volume-Intra-Inter-
  Contrastive: `criterion = nn.MSELoss()`, `loss = (criterion(x[:bs], model(x[:bs], mask)) + criterion(x[bs:],
  model(x[bs:], mask))) / n_mask_tokens`); the default mask_ratio 0.1 is its `--mask_ratio`.

  Args:
    slices1: [b, s, d] slice embeddings of the first view (the target).
    predicted1: [b, s, d] the transformer's output for the masked first view (`volume_mask_tokens`).
    slices2: [b, s, d] slice embeddings of the second view.
    predicted2: [b, s, d] the transformer's output for the masked second view.
    mask_ratio: r, the share of masked slices; floor(s r) must be >= 1.
    return_terms: also return the two views' (unscaled) mean squared errors.
    axis_name: None when the arrays are the whole batch; the mapped axis inside `jax.shard_map` or `jax.pmap`,
      where the arrays are this device's volumes and the means run over every device.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input), or `(loss, {"view1", "view2"})` with `return_terms`.

  Example:
    >>> x = jnp.zeros((2, 10, 4))
    >>> loss, terms = volume_masked_embedding_loss(x, x + 1.0, x, x, return_terms=True)
    >>> float(loss), {k: float(v) for k, v in terms.items()}  # (1 + 0) / floor(10 * 0.1)
    (1.0, {'view1': 1.0, 'view2': 0.0})

  Nguyen et al., "Joint Self-Supervised Image-Volume Representation Learning with Intra-Inter Contrastive Clustering",
  AAAI 2023, https://arxiv.org/abs/2212.01893; code
  github.com/duyhominhnguyen/Self-supervised-Image-Volume-Intra-Inter-Contrastive.
  """
  for name, x in (("slices1", slices1), ("predicted1", predicted1), ("slices2", slices2),
                  ("predicted2", predicted2)):
    _checks.check_array(name, x, ndim=3, shape_doc="[b, s, d]")
  _checks.check_same_shape(slices1=slices1, predicted1=predicted1, slices2=slices2, predicted2=predicted2)
  _checks.check_in_range("mask_ratio", mask_ratio, 0.0, 1.0, low_inclusive=False)
  b, s, d = slices1.shape
  k = int(s * mask_ratio)
  if k < 1:
    raise ValueError(f"mask_ratio * s must be >= 1 (the code divides by int(s * mask_ratio)); got s = {s} and "
                     f"mask_ratio = {mask_ratio}.")
  x1, p1, x2, p2 = _ops.to_float32(slices1, predicted1, slices2, predicted2)
  view1 = _collectives.global_mean(jnp.sum((x1 - p1) ** 2), b * s * d, axis_name)
  view2 = _collectives.global_mean(jnp.sum((x2 - p2) ** 2), b * s * d, axis_name)
  loss = (view1 + view2) / k
  if return_terms:
    return loss, {"view1": view1, "view2": view2}
  return loss

