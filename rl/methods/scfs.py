"""SCFS: DINO with semantics-consistent feature search at intermediate layers of the encoder.

Song, Zhang, Luo, Wang & Xie, "Semantics-Consistent Feature Search for Self-Supervised Visual Representation
Learning", ICCV 2023, https://arxiv.org/abs/2212.06486 (the authors' code: github.com/skyoux/scfs). A local crop
and a global view of an image need not show the same thing, so making their global features agree (as DINO does)
can pull unrelated content together. SCFS instead searches the global view's feature map for the regions that look
like the crop (`rl.losses.scfs_feature_search`: each position weighted by its cosine similarity to the crop's
feature) and makes the crop's prediction match the teacher's on the searched feature. It does so at several layers
of the encoder, each with its own small head and centre (`rl.losses.scfs_loss`: cross-view self-distillation
between the two global views plus the feature-search term), and adds DINO's loss on the final head:

    L = dino(student crops, teacher global crops)  +  layer_weight * sum over layers l of scfs_loss_l

Built on DINO (`config.scfs.base = "dino"`; its hyper-parameters in `config.dino`): the same student, EMA teacher,
centre, temperatures and schedules, and the multi-crop family base (`rl.methods.multicrop`), which captures the
encoder's feature maps of the student's crops and of the teacher's global views in their passes. The layers'
maps are the outputs of the named encoder submodules after a ReLU (conv1d: `bn1`, `bn2`, whose ReLU follows;
ResNet: the blocks `stageS_blockB`); a signal's map [b, l, c] is searched as an image of height l and width 1.

Ours, not the authors' (whose paper text we could not read; see `rl.losses.scfs_loss` for what follows their
code): the layer heads (`LayerHead`: mean pooling, Dense-GELU-Dense, L2-normalised) replace their
`DINOShallowHead` (a residual bottleneck before the pooling); the searched map is mean-pooled before the teacher's
layer head; `layer_weight` scales the layer terms (1.0: the authors' plain sum).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import ema_target
from rl.methods import multicrop
from rl.models import ema


class LayerHead(nn.Module):
  """A layer's head: mean over the spatial axes of a feature map, Dense-GELU-Dense, L2-normalised output.

  Example:
    >>> head = LayerHead(hidden_dim=8, out_dim=4)
    >>> z = head.apply(head.init(jax.random.key(0), jnp.ones((2, 5, 3))), jnp.ones((2, 5, 3)))
    >>> z.shape, [round(float(n), 3) for n in jnp.linalg.norm(z, axis=1)]
    ((2, 4), [1.0, 1.0])
  """
  hidden_dim: int
  out_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, feature_map: jax.Array) -> jax.Array:
    h = pool(feature_map).astype(self.dtype)
    h = nn.gelu(nn.Dense(self.hidden_dim, dtype=self.dtype, name="dense0")(h))
    return losses.l2_normalize(nn.Dense(self.out_dim, dtype=self.dtype, name="out")(h).astype(jnp.float32))


def pool(feature_map: jax.Array) -> jax.Array:
  """Mean over the spatial axes: [b, l, c] or [b, h, w, c] -> [b, c].

  Example:
    >>> pool(jnp.arange(6.0).reshape(1, 3, 2)).tolist()  # a signal's map of 3 positions, 2 channels
    [[2.0, 3.0]]
  """
  return jnp.mean(feature_map, axis=tuple(range(1, feature_map.ndim - 1)))


def _as_image(feature_map: jax.Array) -> jax.Array:
  """[b, l, c] -> [b, l, 1, c] (a signal's map as an image of width 1); [b, h, w, c] unchanged."""
  return feature_map[:, :, None, :] if feature_map.ndim == 3 else feature_map


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The SCFS `Method` for a config with DINO's (`config.dino`, `model`, `total_steps`, `augment.views`) and
  `scfs.{base, layers, head_hidden_dim, head_out_dim, student_temp, teacher_temp, center_momentum, layer_weight}`.

  Example:
    >>> from configs import scfs as scfs_config
    >>> config = scfs_config.get_config("smoke")  # 2 global crops of 40 samples, 4 local ones of 20
    >>> rl.methods.base.describe(make(config), view_sizes=config.augment.view_sizes)
    {'params': ['encoder', 'head', 'layer_heads'], 'state': ['batch_stats', 'center', 'layer_centers', 'step',
     'teacher'], 'metrics': ['dino', 'scfs_bn0', 'scfs_bn1', 'teacher_temp'], 'embedding': (8, 16)}
  """
  cfg, dcfg = config.scfs, config.dino
  base.base_method(config, ("dino",))
  num_global = int(dcfg.num_global_crops)
  if num_global != 2:
    raise ValueError(f"config.dino.num_global_crops: SCFS's cross-view term needs exactly 2 global crops; got "
                     f"{num_global}.")
  layers = tuple(cfg.layers)
  if not layers:
    raise ValueError("config.scfs.layers must name at least one encoder submodule (e.g. ('bn1', 'bn2')); got ().")
  momentum = ema_target.momentum_schedule(config.total_steps, dcfg.base_momentum, dcfg.final_momentum)
  head = LayerHead(hidden_dim=int(cfg.head_hidden_dim), out_dim=int(cfg.head_out_dim),
                   dtype=base.compute_dtype(config))

  def dino_head(config_, axis_name):
    return base.get_model(config_, "dino_head", axis_name=axis_name, **config_.dino.head_kwargs.to_dict())

  network = multicrop.Network(config, dino_head)

  def init_layer_heads(key, x, params, state):
    _, _, maps = network.apply_capturing({"params": params, "batch_stats": state["batch_stats"]}, x, layers,
                                         axis_name=None)
    return {"layer_heads": {layer: head.init(jax.random.fold_in(key, i), maps[layer][0])["params"]
                            for i, layer in enumerate(layers)}}

  def init_state(params, state):
    # The teacher (layer heads included) starts as a copy of the student, as DINO's.
    k = int(cfg.head_out_dim)
    return {"center": jnp.zeros((int(dcfg.head_kwargs.out_dim),), jnp.float32),
            "layer_centers": {layer: jnp.zeros((k,), jnp.float32) for layer in layers},
            "teacher": jax.tree.map(jnp.array, {"params": params, "batch_stats": state["batch_stats"]})}

  def loss_fn(net, params, state, out, batch, *, axis_name=None):
    _, student, maps = out
    b = batch["views"][0].shape[0]
    teacher_vars = jax.lax.stop_gradient(state["teacher"])
    (_, teacher), _, teacher_maps = net.apply_capturing(teacher_vars, batch["views"][:num_global], layers,
                                                        axis_name=axis_name)
    teacher = jax.lax.stop_gradient(teacher)
    tau_t = multicrop.teacher_temperature(state["step"], warmup=float(dcfg.warmup_teacher_temp),
                                          final=float(dcfg.teacher_temp),
                                          warmup_steps=int(dcfg.warmup_teacher_temp_steps))
    dino_value = losses.dino(student, teacher, state["center"], student_temp=float(dcfg.student_temp),
                             teacher_temp=tau_t, num_global_crops=num_global, axis_name=axis_name)
    metrics = {"dino": dino_value, "teacher_temp": tau_t}
    total, centers = dino_value, {}
    for layer in layers:
      groups = [jax.nn.relu(m) for m in maps[layer]]  # the student's maps: the global group, then local groups
      if len(groups) < 2:
        raise ValueError("SCFS needs local crops: views of another shape after the 2 global ones "
                         "(config.augment.views, config.augment.view_sizes); got views of one shape only.")
      s_params, t_params = params["layer_heads"][layer], teacher_vars["params"]["layer_heads"][layer]
      student_global = head.apply({"params": s_params}, groups[0])
      student_search = jnp.concatenate([head.apply({"params": s_params}, g) for g in groups[1:]])
      queries = jnp.concatenate([pool(g) for g in groups[1:]])  # crop-major [n b, c]
      t_map = jax.nn.relu(teacher_maps[layer][0])  # [2 b, ...], the first global view first
      teacher_global = jax.lax.stop_gradient(head.apply({"params": t_params}, t_map))
      searched = losses.scfs_feature_search(_as_image(t_map[:b]), queries)  # [n b, h, w, c]
      teacher_search = jax.lax.stop_gradient(head.apply({"params": t_params}, searched))
      value = losses.scfs_loss(student_global, teacher_global, state["layer_centers"][layer], student_search,
                               teacher_search, student_temp=float(cfg.student_temp),
                               teacher_temp=float(cfg.teacher_temp), axis_name=axis_name)
      centers[layer] = losses.dino_center_update(state["layer_centers"][layer], teacher_global,
                                                 momentum=float(cfg.center_momentum), axis_name=axis_name)
      metrics[f"scfs_{layer}"] = value
      total = total + float(cfg.layer_weight) * value
    center = losses.dino_center_update(state["center"], teacher, momentum=float(dcfg.center_momentum),
                                       axis_name=axis_name)
    return total, metrics, {**state, "center": center, "layer_centers": centers}

  def update_teacher(params, state, step):
    online = {"params": params, "batch_stats": state["batch_stats"]}
    return {**state, "teacher": ema.ema_update(state["teacher"], online, momentum(step))}

  return multicrop.make_method(config, loss_fn, name="scfs", head=dino_head, num_global=num_global,
                               frozen_part="last_layer", freeze_steps=int(dcfg.freeze_last_layer_steps),
                               init_state=init_state, update_after_step=update_teacher, capture=layers,
                               init_extra_params=init_layer_heads)
