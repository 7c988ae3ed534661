"""DINO: self-distillation with no labels; a student matches an EMA teacher's centred, sharpened outputs.

Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021,
https://arxiv.org/abs/2104.14294 (Alg. 1; `main_dino.py` of the official code). The student (encoder + DINO head)
sees every crop; the teacher, an exponential moving average of the student, sees the `num_global_crops` global
crops; every student crop predicts the teacher's softmax((t - c) / tau_t) of the other global crops
(`rl.losses.dino`). The centre c is an EMA of the teacher's mean output over the global batch
(`rl.losses.dino_center_update`).

Kept between steps, in `method_state`: the student's BatchNorm statistics, the teacher (params and BatchNorm
statistics), the centre and a step counter. Schedules from the paper: teacher momentum along a cosine from
`base_momentum` to `final_momentum` (0.996 -> 1), teacher temperature linear from `warmup_teacher_temp` to
`teacher_temp` over `warmup_teacher_temp_steps`, the last layer of the head frozen for `freeze_last_layer_steps`.
The teacher runs in training mode (BatchNorm on the current batch's statistics, as the official teacher does) and
its running statistics are the EMA of the student's.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl.methods import base
from rl.methods import ema_target
from rl.methods import multicrop
from rl.models import ema


def build_head(config: ml_collections.ConfigDict, axis_name: str | None) -> nn.Module:
  """The `dino_head` of `config.dino.head_kwargs` (MLP, bottleneck, weight-normalised last layer).

  Example:
    >>> from configs import dino as dino_config
    >>> type(build_head(dino_config.get_config("smoke"), axis_name=None)).__name__
    'DINOHead'
  """
  return base.get_model(config, "dino_head", axis_name=axis_name, **config.dino.head_kwargs.to_dict())


# The teacher temperature's warm-up, shared with SCFS through the family base.
teacher_temperature = multicrop.teacher_temperature


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The DINO `Method` for a config with `model`, `total_steps`, `augment.views` and `dino.{head_kwargs,
  num_global_crops, student_temp, teacher_temp, warmup_teacher_temp, warmup_teacher_temp_steps, center_momentum,
  base_momentum, final_momentum, freeze_last_layer_steps}`.

  Example:
    >>> from configs import dino as dino_config
    >>> config = dino_config.get_config("smoke")  # 2 global crops of 40 samples, 4 local ones of 20
    >>> rl.methods.base.describe(make(config), view_sizes=config.augment.view_sizes)
    {'params': ['encoder', 'head'], 'state': ['batch_stats', 'center', 'step', 'teacher'], 'metrics': ['dino',
     'teacher_temp'], 'embedding': (8, 16)}
  """
  cfg = config.dino
  num_global = int(cfg.num_global_crops)
  momentum = ema_target.momentum_schedule(config.total_steps, cfg.base_momentum, cfg.final_momentum)

  def init_state(params, state):
    # The teacher starts as a copy of the student (official code: `teacher.load_state_dict(student.state_dict())`).
    return {"center": jnp.zeros((int(cfg.head_kwargs.out_dim),), jnp.float32),
            "teacher": jax.tree.map(jnp.array, {"params": params, "batch_stats": state["batch_stats"]})}

  def loss_fn(net, params, state, out, batch, *, axis_name=None):
    del params
    student = out[1]
    (_, teacher), _ = net.apply(jax.lax.stop_gradient(state["teacher"]), batch["views"][:num_global],
                                axis_name=axis_name)
    teacher = jax.lax.stop_gradient(teacher)
    tau_t = teacher_temperature(state["step"], warmup=float(cfg.warmup_teacher_temp), final=float(cfg.teacher_temp),
                                warmup_steps=int(cfg.warmup_teacher_temp_steps))
    value = losses.dino(student, teacher, state["center"], student_temp=float(cfg.student_temp), teacher_temp=tau_t,
                        num_global_crops=num_global, axis_name=axis_name)
    center = losses.dino_center_update(state["center"], teacher, momentum=float(cfg.center_momentum),
                                       axis_name=axis_name)
    return value, {"dino": value, "teacher_temp": tau_t}, {**state, "center": center}

  def update_teacher(params, state, step):
    online = {"params": params, "batch_stats": state["batch_stats"]}
    return {**state, "teacher": ema.ema_update(state["teacher"], online, momentum(step))}

  # `embed` is the student's encoder (the official evaluations use the teacher; for a run's online probe and the
  # final report we keep one convention across methods: the network the optimizer trains).
  return multicrop.make_method(config, loss_fn, name="dino", head=build_head, num_global=num_global,
                               frozen_part="last_layer", freeze_steps=int(cfg.freeze_last_layer_steps),
                               init_state=init_state, update_after_step=update_teacher)
