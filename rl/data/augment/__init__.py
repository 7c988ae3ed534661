"""On-device augmentation: pure JAX views of a batch, run inside the jitted (and shard_mapped) training step.

A recipe is a frozen dataclass (`ImageRecipe` for images, `SignalRecipe` for 1-D signals) holding every
parameter, probabilities included; it is hashable, so it can be a static jit argument or a closed-over
constant. Randomness is per example: each example's key is `fold_in(key, its global index)`.

Example:
  recipes = (get_recipe('byol_view1'), get_recipe('byol_view2'))
  v1, v2 = make_views(jax.random.fold_in(key, step), images_uint8, recipes, out_size=32)
  x_eval = eval_view(images_uint8, recipes[0], out_size=32)
"""
from __future__ import annotations

import dataclasses
from typing import Sequence, Union

import jax
import jax.numpy as jnp

from rl.data.augment import image
from rl.data.augment import signal
from rl.data.augment.image import BYOL_VIEW1, BYOL_VIEW2, SIMCLR, ImageRecipe
from rl.data.augment.signal import MNIST1D, SignalRecipe

Recipe = Union[ImageRecipe, SignalRecipe]

# Multi-crop's small local views (Caron et al. 2020, https://arxiv.org/abs/2006.09882): SwAV's local crops cover
# 5-14% of the image area (its global crops 14-100%); the signal analogue crops 25-60% of the signal's length
# (about the side fraction of DINO's (0.05, 0.4) area range) and is resampled to the view's length.
SIMCLR_LOCAL = dataclasses.replace(SIMCLR, crop_scale=(0.05, 0.14))
SIMCLR_GLOBAL = dataclasses.replace(SIMCLR, crop_scale=(0.14, 1.0))
MNIST1D_LOCAL = dataclasses.replace(MNIST1D, crop_p=1.0, crop_fraction_range=(0.25, 0.6))

# 'none' is the image identity (resize + normalise); signals have their own identity, 'none_signal'.
_RECIPES: dict[str, Recipe] = {
    "simclr": SIMCLR,
    "simclr_global": SIMCLR_GLOBAL,
    "simclr_local": SIMCLR_LOCAL,
    "byol_view1": BYOL_VIEW1,
    "byol_view2": BYOL_VIEW2,
    "mnist1d": MNIST1D,
    "mnist1d_local": MNIST1D_LOCAL,
    "none": image.NONE,
    "none_signal": signal.NONE,
}


def get_recipe(name: str, **overrides) -> Recipe:
  """Returns the named preset, with fields replaced by `overrides`.

  Example:
    >>> recipe = get_recipe("simclr")
    >>> type(recipe).__name__, recipe.crop_scale, recipe.blur_p
    ('ImageRecipe', (0.08, 1.0), 0.5)
    >>> get_recipe("simclr", blur_p=0.0).blur_p
    0.0
    >>> get_recipe("mnist1d").shift_range
    (-20, 20)
    >>> get_recipe("simclr", blur=0.0)
    Traceback (most recent call last):
    ValueError: unknown override field(s) ['blur'] for ImageRecipe 'simclr'; known fields: ['crop_scale', ...

  Args:
    name: one of 'simclr', 'simclr_global', 'simclr_local' (multi-crop), 'byol_view1', 'byol_view2' (images),
      'mnist1d', 'mnist1d_local' (multi-crop; signals), 'none' (images: resize and normalise only) and
      'none_signal' (signals: identity).
    **overrides: recipe fields to replace, e.g. `blur_p=0.0` or `mean=(0.5,), std=(0.5,)`.

  Returns:
    An `ImageRecipe` or `SignalRecipe`.

  Raises:
    ValueError: for an unknown name, an unknown field, or an invalid value.
  """
  if name not in _RECIPES:
    raise ValueError(f"name must be one of {sorted(_RECIPES)}; got {name!r}.")
  recipe = _RECIPES[name]
  fields = [f.name for f in dataclasses.fields(recipe)]
  unknown = sorted(set(overrides) - set(fields))
  if unknown:
    raise ValueError(
        f"unknown override field(s) {unknown} for {type(recipe).__name__} {name!r}; known fields: {fields}.")
  return dataclasses.replace(recipe, **overrides)


def _check_recipe(recipe) -> None:
  if not isinstance(recipe, (ImageRecipe, SignalRecipe)):
    raise ValueError(f"recipe must be an ImageRecipe or SignalRecipe; got {type(recipe).__name__}.")


def augment_batch(key: jax.Array, x: jax.Array, recipe: Recipe, *, out_size: int | None = None,
                  axis_name: str | None = None) -> jax.Array:
  """One augmented view of a batch.

  Example:
    >>> images = jnp.asarray(np.random.RandomState(0).randint(0, 256, (4, 32, 32, 3)), jnp.uint8)
    >>> view = augment_batch(jax.random.key(0), images, get_recipe("none"))  # an ImageRecipe: image.augment_images
    >>> view.shape, view.dtype  # uint8 in, normalised float32 out
    ((4, 32, 32, 3), dtype('float32'))
    >>> signals = jnp.asarray(np.random.RandomState(0).randn(4, 40), jnp.float32)
    >>> augment_batch(jax.random.key(0), signals, get_recipe("mnist1d")).shape  # a SignalRecipe: signal.augment_signals
    (4, 40)

  Args:
    key: PRNG key (pass the same key on every device; `axis_name` makes the shards' draws differ).
    x: images [b, h, w, c] uint8 (or float in [0, 1]) for an `ImageRecipe`; signals [b, l] (or [b, l, c])
      float for a `SignalRecipe`.
    recipe: the view's parameters.
    out_size: images: side S of the square output (None keeps min(h, w)); signals: output length (None keeps l).
    axis_name: mesh axis when `x` is this device's shard inside `jax.shard_map`; each example's randomness
      then depends on its global index, as on one device. With None inside shard_map, every shard draws the
      same per-position randomness.

  Returns:
    Images: [b, S, S, c] float32, normalised with the recipe's mean/std. Signals: [b, out_size(, c)], the dtype
    of `x`.
  """
  _check_recipe(recipe)
  if isinstance(recipe, ImageRecipe):
    return image.augment_images(key, x, recipe, out_size=out_size, axis_name=axis_name)
  return signal.augment_signals(key, x, recipe, out_size=out_size, axis_name=axis_name)


def make_views(key: jax.Array, x: jax.Array, recipes: Sequence[Recipe],
               *, out_size: int | None | Sequence[int | None] = None,
               axis_name: str | None = None) -> tuple[jax.Array, ...]:
  """Several views of one batch: view i uses `recipes[i]` and key `jax.random.fold_in(key, i)`.

  Example:
    >>> signals = jnp.asarray(np.random.RandomState(0).randn(4, 40), jnp.float32)
    >>> recipes = (get_recipe("mnist1d"),) * 2 + (get_recipe("mnist1d_local"),) * 2
    >>> views = make_views(jax.random.key(0), signals, recipes, out_size=(40, 40, 20, 20))  # multi-crop
    >>> [v.shape for v in views]
    [(4, 40), (4, 40), (4, 20), (4, 20)]
    >>> bool(jnp.any(views[0] != views[1]))  # independent randomness per view
    True

  Args:
    key: PRNG key.
    x: batch, as for `augment_batch`.
    recipes: one recipe per view (a tuple when passed as a static jit argument).
    out_size: as for `augment_batch`, for every view; or one size per view (multi-crop: e.g. two global views
      of 224 and six local views of 96, as in SwAV and DINO).
    axis_name: as for `augment_batch`.

  Returns:
    A tuple of len(recipes) augmented batches with independent randomness.
  """
  if len(recipes) == 0:
    raise ValueError("recipes must hold at least one recipe; got an empty sequence.")
  sizes = tuple(out_size) if isinstance(out_size, (tuple, list)) else (out_size,) * len(recipes)
  if len(sizes) != len(recipes):
    raise ValueError(f"out_size must be one size or one per view; got {len(sizes)} sizes for {len(recipes)} "
                     f"recipes.")
  for recipe in recipes:
    _check_recipe(recipe)
  # Three or more views of one recipe and size (multi-crop) are drawn together, vmapped over their keys: the same
  # draws as one call per view (each view's draws depend only on its key), compiled once instead of once per view.
  # XLA:CPU compiles SwAV's mnist1d step (2 + 4 crops) in 9.7 s instead of 11.9 s; for two views the vmapped
  # form compiled slower than two copies (NNCLR's step: 5.0 s against 4.3 s), so pairs stay one call per view.
  groups: dict = {}
  for i, view in enumerate(zip(recipes, sizes)):
    groups.setdefault(view, []).append(i)
  views = [None] * len(recipes)
  for (recipe, size), indices in groups.items():
    if len(indices) < 3:
      for i in indices:
        views[i] = augment_batch(jax.random.fold_in(key, i), x, recipe, out_size=size, axis_name=axis_name)
      continue
    keys = jnp.stack([jax.random.fold_in(key, i) for i in indices])
    stacked = jax.vmap(lambda k, r=recipe, s=size: augment_batch(k, x, r, out_size=s, axis_name=axis_name))(keys)
    for j, i in enumerate(indices):
      views[i] = stacked[j]
  return tuple(views)


def eval_view(x: jax.Array, recipe: Recipe, *, out_size: int | None = None) -> jax.Array:
  """Deterministic eval preprocessing.

  Example:
    >>> images = jnp.full((2, 32, 32, 3), 255, jnp.uint8)
    >>> x = eval_view(images, get_recipe("none", mean=(0.5,), std=(0.5,)))  # images: central square, normalised
    >>> x.shape, x.dtype, round(float(x.max()), 3)  # white: (1 - 0.5) / 0.5
    ((2, 32, 32, 3), dtype('float32'), 1.0)
    >>> signals = jnp.ones((2, 40))
    >>> bool((eval_view(signals, get_recipe("none_signal")) == signals).all())  # signals: the identity
    True

  Args:
    x: batch, as for `augment_batch`.
    recipe: images: supplies mean/std; signals: unused.
    out_size: images: side S (None keeps min(h, w)); signals: must be None (evaluation sees the whole signal).

  Returns:
    Images: the central square resized to [b, S, S, c], float32, normalised. Signals: `x` unchanged.
  """
  _check_recipe(recipe)
  if isinstance(recipe, ImageRecipe):
    return image.eval_images(x, recipe, out_size=out_size)
  _check_signal_out_size(out_size)
  return signal.eval_signals(x, recipe)


def _check_signal_out_size(out_size) -> None:
  if out_size is not None:
    raise ValueError(f"out_size must be None for signals (their length is kept); got {out_size}.")


__all__ = [
    "BYOL_VIEW1", "BYOL_VIEW2", "MNIST1D", "SIMCLR", "ImageRecipe", "Recipe", "SignalRecipe",
    "augment_batch", "eval_view", "get_recipe", "image", "make_views", "signal",
]
