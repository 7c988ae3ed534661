"""Flax (linen) models: encoders, projection heads and classifiers, with a name registry.

Every module is called as `module.apply(variables, x, train=...)`; encoders return pooled
features [b, feature_dim] and expose `feature_dim`. BatchNorm running statistics live in the
'batch_stats' collection; pass `axis_name` to average batch statistics across devices inside
`jax.shard_map`. This package imports nothing from the rest of `rl` but the public numerics of `rl.losses`
(`l2_normalize`, MAE's `random_masking`).

Mixed precision follows Flax's convention: every registered model takes `dtype=`, its computation dtype
(`get_model('resnet18', dtype=jnp.bfloat16)`); parameters stay float32 and BatchNorm statistics are reduced in
float32. The methods pass `config.compute_dtype` there (`rl.methods.base.get_model`).

Example:
  >>> encoder = get_model('resnet18', stem='cifar')
  >>> encoder.feature_dim
  512
"""

import dataclasses

import flax.linen as nn

from rl.models.aim import AimViT
from rl.models.conv1d import Conv1DEncoder
from rl.models.dense import PixelPropagation
from rl.models.distill import CrossAttentionSearchHead
from rl.models.distill import FeatureRegressor
from rl.models.graphsage import SAGEConv
from rl.models.heads import DINOHead
from rl.models.heads import LinearClassifier
from rl.models.heads import MLPProjector
from rl.models.heads import Predictor
from rl.models.heads import Prototypes
from rl.models.heads import WeightNormDense
from rl.models.heads import normalize_prototypes
from rl.models.mae import MAE
from rl.models.vit import ViT
from rl.models.vit import ViTBase
from rl.models.vit import ViTSmall
from rl.models.vit import ViTTiny
from rl.models.resnet import ResNet
from rl.models.resnet import ResNet18
from rl.models.resnet import ResNet50

MODELS: dict[str, type[nn.Module]] = {
    'conv1d': Conv1DEncoder,
    'resnet': ResNet,  # any depth and width: stage_sizes, block, width (the digits recipe's small ResNet)
    'resnet18': ResNet18,
    'resnet50': ResNet50,
    'mlp_projector': MLPProjector,
    'linear': LinearClassifier,
    'predictor': Predictor,
    'prototypes': Prototypes,
    'dino_head': DINOHead,
    'vit': ViT,
    'vit_tiny': ViTTiny,
    'vit_small': ViTSmall,
    'vit_base': ViTBase,
    'mae': MAE,
    'aim_vit': AimViT,  # SemAIM's two-stream ViT
}

# Dataclass fields that linen adds to every module and that are not hyper-parameters.
_INTERNAL_FIELDS = frozenset({'parent'})

def get_model(name: str, **kwargs) -> nn.Module:
  """Builds a registered model.

  Example:
    >>> encoder = get_model('conv1d', widths=(8, 16))
    >>> variables = encoder.init(jax.random.key(0), jnp.ones((2, 40)), train=False)
    >>> encoder.apply(variables, jnp.ones((2, 40)), train=False).shape
    (2, 16)
    >>> get_model('resnet7')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    ValueError: name: unknown model 'resnet7'; known models: [...].

  Args:
    name: a key of `MODELS`.
    **kwargs: the module's attributes, e.g. `stem='cifar'` for a ResNet, or `dtype=jnp.bfloat16` for its
      computation dtype.

  Returns:
    The unbound module.

  Raises:
    ValueError: if `name` is not registered, an argument is not an attribute of the module,
      or a required attribute is missing.
  """
  if name not in MODELS:
    raise ValueError(f'name: unknown model {name!r}; known models: {sorted(MODELS)}.')
  cls = MODELS[name]
  fields = [f for f in dataclasses.fields(cls) if f.name not in _INTERNAL_FIELDS and f.init]
  accepted = {f.name for f in fields}
  unknown = sorted(set(kwargs) - accepted)
  if unknown:
    raise ValueError(f'Unknown arguments {unknown} for model {name!r} ({cls.__name__}); '
                     f'accepted arguments: {sorted(accepted)}.')
  missing = sorted(f.name for f in fields
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in kwargs)
  if missing:
    raise ValueError(f'Missing required arguments {missing} for model {name!r} '
                     f'({cls.__name__}).')
  return cls(**kwargs)


__all__ = [
    'Conv1DEncoder',
    'CrossAttentionSearchHead',
    'DINOHead',
    'FeatureRegressor',
    'PixelPropagation',
    'Predictor',
    'Prototypes',
    'SAGEConv',
    'ViT',
    'ViTBase',
    'ViTSmall',
    'ViTTiny',
    'WeightNormDense',
    'LinearClassifier',
    'MAE',
    'AimViT',
    'MLPProjector',
    'MODELS',
    'ResNet',
    'ResNet18',
    'ResNet50',
    'get_model',
    'normalize_prototypes',
]
