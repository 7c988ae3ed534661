"""Equivariant representations with a linear latent group action: the Neural Fourier Transform (NFT).

NFT learns an encoder Phi: x -> [m, a] (m copies of an a-dimensional representation space) and a decoder Psi
such that a group element acts on the latent LINEARLY, on the right: Phi(g x) = Phi(x) M(g). Then M(g)
block-diagonalises into the irreducible representations (the frequencies) of the group, a data-dependent
Fourier transform. Its variants differ in what is known of the action:

- U-NFT (unknown group): from a sequence x_0, x_1 = g x_0, x_2 = g^2 x_0, M is fitted to (Phi(x_0), Phi(x_1)) by
  least squares (`nft_transition`) and the prediction Psi(Phi(x_1) M) must reproduce x_2;
- g-NFT (known group, unknown action): M(g) is a fixed representation of the known group, e.g. the block-diagonal
  rotations of SO(2) (`nft_so2_representation`), and Psi(Phi(x) M(g)) must reproduce g x.

Both are trained by the prediction error in data space (`nft_loss`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops


def nft_transition(latent0: jax.Array, latent1: jax.Array) -> jax.Array:
  r"""U-NFT's latent transition: the least-squares linear map from one latent to the next, per sequence.

  For each sequence b, with :math:`H_0, H_1 \in \mathbb{R}^{m \times a}` the latents of x_0 and x_1 = g x_0:

  .. math::
      M^* = \arg\min_M \lVert H_0 M - H_1 \rVert_F^2 = (H_0^\top H_0)^{-1} H_0^\top H_1 \in \mathbb{R}^{a \times a},

  and the next latent is predicted as :math:`\hat H_2 = H_1 M^*` (`latent1 @ M`). The solve is differentiable:
  the encoder is trained through M* (the released code does not stop its gradient). It needs m >= a (a full-rank
  :math:`H_0^\top H_0`), which the encoder's shape guarantees in the released configs (m = 20 or more, a = 10).

  Source: `LitMSPAE.estimate_M` and `LitMSPAE.forward` in image_experiments/src/model/mspae.py of
  github.com/masomatics/NFTPublic (the authors' code; `torch.linalg.solve(H0^T H0, H0^T H1)`). Our stored copies
  of the paper gave only its abstract and introduction.

  Args:
    latent0: [b, m, a] latents Phi(x_0).
    latent1: [b, m, a] latents Phi(x_1).

  Returns:
    [b, a, a] the transition matrices (float32 for float32/bfloat16 input).

  Example:
    >>> h0 = jnp.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    >>> rot = jnp.array([[0.0, 1.0], [-1.0, 0.0]])  # a quarter turn, acting on the right
    >>> bool(jnp.allclose(nft_transition(h0, h0 @ rot), rot, atol=1e-5))
    True

  Koyama, Fukumizu, Hayashi & Miyato, "Neural Fourier Transform: A General Approach to Equivariant
  Representation Learning", ICLR 2024, https://arxiv.org/abs/2305.18484.
  """
  _checks.check_array("latent0", latent0, ndim=3, shape_doc="[b, m, a]")
  _checks.check_array("latent1", latent1, ndim=3, shape_doc="[b, m, a]")
  _checks.check_same_shape(latent0=latent0, latent1=latent1)
  _, m, a = latent0.shape
  if m < a:
    raise ValueError(f"latent0 must have shape [b, m, a] with m >= a (H0^T H0 is singular otherwise); got shape "
                     f"{tuple(latent0.shape)}.")
  h0, h1 = _ops.to_float32(latent0, latent1)
  gram = jnp.einsum("bma,bmc->bac", h0, h0)
  cross = jnp.einsum("bma,bmc->bac", h0, h1)
  return jnp.linalg.solve(gram, cross)


def nft_so2_representation(angles: jax.Array, *, num_frequencies: int = 8,
                           include_identity: bool = True) -> jax.Array:
  r"""g-NFT's latent action of SO(2): block-diagonal rotations at frequencies 0, 1, ..., F.

  For a rotation by :math:`\theta`, the representation is

  .. math::
      D(\theta) = \operatorname{diag}\big(1,\ R(\theta),\ R(2\theta),\ \dots,\ R(F\theta)\big), \qquad
      R(\phi) = \begin{pmatrix} \cos\phi & -\sin\phi \\ \sin\phi & \cos\phi \end{pmatrix},

  of size a = 1 + 2F (2F without the frequency-0 block), acting on the right of a latent [m, a]:
  :math:`\Phi(g x) \approx \Phi(x) D(\theta)` (`latent @ D`, as the released code's
  `einsum('b h a_in, b a_in a_out -> b h a_out')`). The decoder then reads Phi(x) D(theta) (`nft_loss`).
  D(-theta) inverts it, so a view x_i = g_i x can be brought to a common frame with Phi(x_i) D(-theta_i).

  Source: `SO2.rep` (`get_regular_rotation(freq * theta)`, a 1 x 1 one at frequency 0), `ActionList` and
  `LitEquivariantAE.trans` in image_experiments/src/model/{action,eae}.py of github.com/masomatics/NFTPublic;
  defaults from its config/model/action_list/so2.yaml (num_basis 8, include_identity True).

  Args:
    angles: [b] rotation angles theta (radians).
    num_frequencies: F >= 1, the highest frequency (8).
    include_identity: include the frequency-0 block (True).

  Returns:
    [b, a, a] the representation matrices (float32 for float32/bfloat16 angles).

  Example:
    >>> d = nft_so2_representation(jnp.array([jnp.pi / 2]), num_frequencies=1)
    >>> (jnp.round(d[0], 4) + 0.0).tolist()  # + 0.0 turns -0.0 into 0.0
    [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]

  Koyama et al., "Neural Fourier Transform: A General Approach to Equivariant Representation Learning",
  ICLR 2024, https://arxiv.org/abs/2305.18484.
  """
  _checks.check_array("angles", angles, ndim=1, shape_doc="[b]")
  if isinstance(num_frequencies, bool) or not isinstance(num_frequencies, int) or num_frequencies < 1:
    raise ValueError(f"num_frequencies must be an int >= 1; got {num_frequencies!r}.")
  theta = _ops.to_float32(angles)
  b = theta.shape[0]
  blocks = []
  if include_identity:
    blocks.append(jnp.ones((b, 1, 1), theta.dtype))
  for f in range(1, num_frequencies + 1):
    c, s = jnp.cos(f * theta), jnp.sin(f * theta)
    blocks.append(jnp.stack([jnp.stack([c, -s], -1), jnp.stack([s, c], -1)], -2))
  a = sum(blk.shape[-1] for blk in blocks)
  out = jnp.zeros((b, a, a), theta.dtype)
  start = 0
  for blk in blocks:
    n = blk.shape[-1]
    out = out.at[:, start:start + n, start:start + n].set(blk)
    start += n
  return out


def nft_loss(prediction: jax.Array, target: jax.Array, *, latent_prediction: jax.Array | None = None,
             latent_target: jax.Array | None = None, alignment_weight: float = 1.0, return_terms: bool = False,
             axis_name: str | None = None) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
  r"""NFT's training loss: the decoded latent prediction must reproduce the transformed input.

  With the prediction :math:`\hat x = \Psi(\hat z)` of the target x' (U-NFT: x' = x_2 and
  :math:`\hat z = \Phi(x_1) M^*`; g-NFT: x' = g x and :math:`\hat z = \Phi(x) D(g)`), and optionally the
  latent alignment term of the released code:

  .. math::
      L = \operatorname{mean}\big[(\hat x - x')^2\big]
          + \lambda \operatorname{mean}\big[(\hat z - \Phi(x'))^2\big] ,

  each mean over every element of the global batch (`F.mse_loss`). The alignment term is used only when both
  latents are passed (the code's `alignl2` option, off in its default config; λ = `equiv_coef` = 1).

  Source: `LitMSPAE.loss` (U-NFT) and `LitEquivariantAE.train_loss` (g-NFT: the `pred` and `alignl2` terms) in
  image_experiments/src/model/{mspae,eae}.py of github.com/masomatics/NFTPublic. Our stored copies of the paper
  gave only its abstract and introduction.

  Args:
    prediction: [b, ...] the decoded prediction Psi(z_hat).
    target: [b, ...] the transformed input x', shape of `prediction`.
    latent_prediction: optional [b, m, a] the predicted latent z_hat.
    latent_target: optional [b, m, a] the latent of the target, Phi(x'); required with `latent_prediction`.
    alignment_weight: λ >= 0 of the alignment term (1.0).
    return_terms: also return {"prediction": ..., "alignment": ...} (alignment 0 without latents).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard and the means run over every device.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input); with `return_terms`, `(loss, terms)`.

  Example:
    >>> float(nft_loss(jnp.ones((2, 3)), jnp.zeros((2, 3))))
    1.0

  Koyama et al., "Neural Fourier Transform: A General Approach to Equivariant Representation Learning",
  ICLR 2024, https://arxiv.org/abs/2305.18484.
  """
  _checks.check_array("prediction", prediction, shape_doc="[b, ...]")
  _checks.check_array("target", target, shape_doc="[b, ...]")
  if prediction.ndim < 1:
    raise ValueError(f"prediction must have shape [b, ...]; got shape {tuple(prediction.shape)}.")
  _checks.check_same_shape(prediction=prediction, target=target)
  _checks.check_in_range("alignment_weight", alignment_weight, 0.0, float("inf"))
  if (latent_prediction is None) != (latent_target is None):
    raise ValueError("latent_prediction and latent_target must be given together (both [b, m, a]) or not at all; "
                     f"got latent_prediction={'None' if latent_prediction is None else 'an array'} and "
                     f"latent_target={'None' if latent_target is None else 'an array'}.")
  pred, tgt = _ops.to_float32(prediction, target)
  pred_loss = _collectives.global_mean(jnp.sum(jnp.square(pred - tgt)), pred.size, axis_name)
  align = jnp.zeros((), pred.dtype)
  if latent_prediction is not None:
    _checks.check_array("latent_prediction", latent_prediction, ndim=3, shape_doc="[b, m, a]")
    _checks.check_array("latent_target", latent_target, ndim=3, shape_doc="[b, m, a]")
    _checks.check_same_shape(latent_prediction=latent_prediction, latent_target=latent_target)
    if latent_prediction.shape[0] != pred.shape[0]:
      raise ValueError(f"latent_prediction must have shape [b, m, a] with b = {pred.shape[0]} (the batch of "
                       f"prediction); got shape {tuple(latent_prediction.shape)}.")
    zp, zt = _ops.to_float32(latent_prediction, latent_target)
    align = _collectives.global_mean(jnp.sum(jnp.square(zp - zt)), zp.size, axis_name)
  loss = pred_loss + alignment_weight * align
  return (loss, {"prediction": pred_loss, "alignment": align}) if return_terms else loss


__all__ = ["nft_transition", "nft_so2_representation", "nft_loss"]
