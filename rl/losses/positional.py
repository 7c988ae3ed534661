"""Positional disentanglement of dense features: Franca's RASA (Removal of Absolute Spatial Attributes).

A linear head learns to read each patch's absolute position from its features (`rasa_position_loss`); the
directions it uses are then projected out of the features (`rasa_remove_position`). Repeating the two steps,
each new head trained on the features with the previous heads' directions already removed, strips the features
of linearly decodable position while leaving the rest of the space untouched.
"""
from __future__ import annotations

from collections.abc import Sequence
import math

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.hypersphere import l2_normalize


def _check_weight(label: str, w, d: int) -> None:
  _checks.check_array(label, w, ndim=2, shape_doc=f"[r, {d}]")
  if w.shape[1] != d or not 1 <= w.shape[0] <= d:
    raise ValueError(f"{label} must have shape [r, {d}] with 1 <= r <= {d} (r position outputs over the feature "
                     f"size d = {d}); got shape {tuple(w.shape)}.")


def _as_weight_list(weights, d: int, name: str) -> list:
  """`weights` as a list of [r, d] arrays (one array, or a sequence of them), checked."""
  if hasattr(weights, "shape"):
    _check_weight(name, weights, d)
    return [weights]
  if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
    raise ValueError(f"{name} must be an [r, {d}] array or a list of them; got {type(weights).__name__}.")
  for k, w in enumerate(weights):
    _check_weight(f"{name}[{k}]", w, d)
  return list(weights)


def _orthonormal_rows(w: jax.Array) -> jax.Array:
  """Gram-Schmidt on the rows of w [r, d], in order, each row normalised first (as the released code)."""
  basis = []
  for row in w:
    v = l2_normalize(row)
    for u in basis:
      v = v - jnp.dot(v, u) * u
    basis.append(l2_normalize(v))
  return jnp.stack(basis)


def rasa_remove_position(features: jax.Array, weights: jax.Array | Sequence[jax.Array], *,
                         return_positional: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
  r"""Projects the position directions of RASA heads out of dense features, one head after the other.

  For a head with weight :math:`W = [w_r; w_c]` ([2, d]: row and column outputs), Gram-Schmidt gives the
  orthonormal basis :math:`u_r = w_r / \|w_r\|`, :math:`u_c \propto w_c / \|w_c\| - \langle\cdot, u_r\rangle u_r`
  of the plane it reads, and each feature loses its component in that plane:

  .. math::
      Z^{(t)} = Z^{(t-1)} - \langle Z^{(t-1)}, u_r \rangle\, u_r - \langle Z^{(t-1)}, u_c \rangle\, u_c ,

  applied for the heads t = 1, ..., T in order (each in the basis of its own weight), so that head t reads zero
  on its output, :math:`Z^{(t)} W_t^\top = 0`. This is the released code's sequential projection, not one
  projection onto the orthogonal complement of all planes: when a later head's plane is not orthogonal to an
  earlier one, removing it can bring back part of the earlier directions (RASA trains each head on features
  already free of the earlier planes, so the gradient never moves a head within them). A [1, d] weight removes
  one direction (the code's 1-D case); more rows are orthonormalised the same way, in order.

  Source: `RASAHead.decompose_pos_2D` / `decompose_pos_1D` and `RASAHead.forward` (rasa/src/rasa_head.py of
  github.com/valeoai/Franca) and the update rule in its rasa/README.md. The Franca paper's own equation for this
  step was not in our stored copies (they gave its abstract and introduction only).

  Args:
    features: [..., d] dense features (e.g. [b, n, d] patch tokens).
    weights: one [r, d] head weight (torch layout: [outputs, features]) or a sequence of them, applied in order.
    return_positional: also return the part removed by the LAST head (the code's `return_pos_info`).

  Returns:
    The features without the positional directions, [..., d] (float32 for float32/bfloat16 input), or
    `(debiased, positional)` with `return_positional`.

  Example:
    >>> z = jnp.array([[3.0, 4.0, 5.0]])
    >>> rasa_remove_position(z, jnp.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]])).tolist()  # x-y plane removed
    [[0.0, 0.0, 5.0]]

  Venkataramanan, Pariza et al., "Franca: Nested Matryoshka Clustering for Scalable Visual Representation
  Learning", 2025, https://arxiv.org/abs/2507.14137 (RASA, the positional disentanglement).
  """
  _checks.check_array("features", features, shape_doc="[..., d]")
  if features.ndim < 1:
    raise ValueError(f"features must have shape [..., d]; got shape {tuple(features.shape)}.")
  d = features.shape[-1]
  weights = _as_weight_list(weights, d, "weights")
  x = _ops.to_float32(features)
  positional = jnp.zeros_like(x)
  for w in weights:
    u = _orthonormal_rows(_ops.to_float32(w))  # [r, d]
    positional = (x @ u.T) @ u
    x = x - positional
  return (x, positional) if return_positional else x


def _grid_targets(n: int, grid_shape, r: int) -> jax.Array:
  """[n, r] normalised coordinates in row-major patch order: (row / (h - 1), col / (w - 1)), or i / (n - 1)."""
  if grid_shape is None:
    side = int(round(n ** 0.5))
    if side * side != n:
      raise ValueError(f"patch_features has n = {n} patches, not a square grid; pass grid_shape=(h, w) with "
                       f"h * w = {n}.")
    grid_shape = (side, side) if r == 2 else (n,)
  grid_shape = tuple(int(g) for g in grid_shape)
  if len(grid_shape) != r or any(g < 2 for g in grid_shape):
    raise ValueError(f"grid_shape must have {r} entries >= 2 (one per output of weight, [{r}, d]); got "
                     f"{grid_shape}.")
  if math.prod(grid_shape) != n:
    raise ValueError(f"grid_shape={grid_shape} must hold the n = {n} patches of patch_features (its product is "
                     f"{math.prod(grid_shape)}).")
  axes = [jnp.arange(g, dtype=jnp.float32) / (g - 1) for g in grid_shape]
  mesh = jnp.meshgrid(*axes, indexing="ij")
  return jnp.stack([m.reshape(-1) for m in mesh], axis=-1)


def rasa_position_loss(patch_features: jax.Array, weight: jax.Array, *, grid_shape: Sequence[int] | None = None,
                       pre_weights: Sequence[jax.Array] = (), activation: str | None = "sigmoid",
                       axis_name: str | None = None) -> jax.Array:
  r"""RASA's training objective: a linear head regresses each patch's normalised grid position.

  Patch p of an h x w grid (row-major) sits at :math:`t_p = (\tfrac{i_p}{h-1}, \tfrac{j_p}{w-1}) \in [0, 1]^2`.
  The features first lose the directions of the earlier, frozen heads (`rasa_remove_position` with
  `pre_weights`, no gradient to them), then the head :math:`W` [2, d] predicts the position through a sigmoid:

  .. math::
      \hat t_{bp} = \sigma\big(W \tilde z_{bp}\big), \qquad
      L = \frac{1}{2 B n} \sum_{b, p} \big\lVert \hat t_{bp} - t_p \big\rVert^2 ,

  the mean running over the GLOBAL batch (`psum` under `axis_name`). RASA alternates: train a head with this
  loss on the frozen backbone's patch tokens, append it to `pre_weights`, train the next one (9 rounds in the
  released DINO config, 22 in the other); at inference `rasa_remove_position(tokens, [W_1, ..., W_T])` gives the
  debiased features.

  Source: `RASA.training_step` (rasa/src/rasa.py of github.com/valeoai/Franca: `F.mse_loss` of the sigmoid
  output against the ij-meshgrid targets, the backbone and earlier heads frozen). Our stored copies of the
  Franca paper gave only its abstract and introduction, so its equation could not be compared.

  Caller's duties: the backbone is frozen in RASA: pass `jax.lax.stop_gradient(tokens)` to train the head
  only (this function differentiates through the features otherwise). Keep the list of trained heads.

  Args:
    patch_features: [b, n, d] patch tokens (no class or register tokens), n = h * w in row-major order.
    weight: [2, d] head being trained (torch layout [outputs, features]; [1, d] with a 1-D `grid_shape`).
    grid_shape: (h, w) of the patch grid (default: square, h = w = sqrt(n)); (n,) for 1-D positions.
    pre_weights: the earlier heads' [r, d] weights, removed first and held constant.
    activation: "sigmoid" (default, the released configs), "tanh" or None (identity), on the head's output.
    axis_name: None when `patch_features` is the whole batch; the mapped axis inside `jax.shard_map` or
      `jax.pmap`, where it is this device's shard and the mean runs over every device.

  Returns:
    The scalar mean squared error (float32 for float32/bfloat16 input).

  Example:
    >>> tokens = jnp.zeros((1, 4, 3))  # a 2 x 2 grid of featureless patches: sigmoid(0) = 0.5 everywhere
    >>> float(rasa_position_loss(tokens, jnp.zeros((2, 3))))  # every coordinate is 0 or 1: error 0.25
    0.25

  Venkataramanan, Pariza et al., "Franca: Nested Matryoshka Clustering for Scalable Visual Representation
  Learning", 2025, https://arxiv.org/abs/2507.14137 (RASA, the positional disentanglement).
  """
  _checks.check_array("patch_features", patch_features, ndim=3, shape_doc="[b, n, d]")
  b, n, d = patch_features.shape
  _check_weight("weight", weight, d)
  pre_weights = _as_weight_list(pre_weights, d, "pre_weights")
  if activation not in ("sigmoid", "tanh", None):
    raise ValueError(f'activation must be "sigmoid", "tanh" or None; got {activation!r}.')
  r = weight.shape[0]
  targets = _grid_targets(n, grid_shape, r)  # [n, r]
  x = _ops.to_float32(patch_features)
  if pre_weights:
    x = rasa_remove_position(x, [jax.lax.stop_gradient(w) for w in pre_weights])
  out = x @ _ops.to_float32(weight).T  # [b, n, r]
  if activation == "sigmoid":
    out = jax.nn.sigmoid(out)
  elif activation == "tanh":
    out = jnp.tanh(out)
  return _collectives.global_mean(jnp.sum(jnp.square(out - targets)), b * n * r, axis_name)


__all__ = ["rasa_remove_position", "rasa_position_loss"]
