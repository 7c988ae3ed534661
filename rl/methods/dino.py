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

import jax
import jax.numpy as jnp
import ml_collections

from rl import losses
from rl import models
from rl.methods import _multicrop
from rl.methods import base
from rl.models import ema


def build_network(config: ml_collections.ConfigDict, axis_name: str | None) -> _multicrop.MultiCropNetwork:
  """Encoder and `dino_head` (`config.dino.head_kwargs`).

  Example:
    >>> from configs import dino as dino_config
    >>> net = build_network(dino_config.get_config("smoke"), axis_name=None)
    >>> type(net.encoder).__name__, type(net.head).__name__
    ('Conv1DEncoder', 'DINOHead')
  """
  head = models.get_model("dino_head", axis_name=axis_name, **config.dino.head_kwargs.to_dict())
  return _multicrop.MultiCropNetwork(encoder=_multicrop.build_encoder(config, axis_name), head=head)


def teacher_temperature(step, *, warmup: float, final: float, warmup_steps: int) -> jax.Array:
  """tau_t: linear from `warmup` to `final` over the first `warmup_steps` steps, then `final` (DINO Sec. 3.1).

  Example:
    >>> [round(float(teacher_temperature(s, warmup=0.04, final=0.07, warmup_steps=30)), 3) for s in (0, 15, 30, 100)]
    [0.04, 0.055, 0.07, 0.07]
  """
  if warmup_steps <= 0:
    return jnp.asarray(final, jnp.float32)
  frac = jnp.clip(jnp.asarray(step, jnp.float32) / warmup_steps, 0.0, 1.0)
  return warmup + (final - warmup) * frac


def make(config: ml_collections.ConfigDict) -> base.Method:
  """The DINO `Method` for a config with `model`, `total_steps`, `augment.views` and `dino.{head_kwargs,
  num_global_crops, student_temp, teacher_temp, warmup_teacher_temp, warmup_teacher_temp_steps, center_momentum,
  base_momentum, final_momentum, freeze_last_layer_steps}`.

  Example:
    >>> from configs import dino as dino_config
    >>> config = dino_config.get_config("smoke")  # mnist1d: signals of length 40, a tiny conv1d encoder
    >>> method = rl.methods.dino.make(config)
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = method.init(jax.random.key(0), x)
    >>> sorted(params), sorted(state)
    (['encoder', 'head'], ['batch_stats', 'center', 'step', 'teacher'])
    >>> views = (x, x + 0.1) + tuple(x[:, i:i + 20] for i in range(4))  # 2 global, 4 local crops
    >>> loss, (state, aux) = jax.jit(method.loss)(params, state, {"views": views}, jax.random.key(1))  # jitted: faster
    >>> sorted(aux["metrics"]), method.embed(params, state, x).shape
    (['dino', 'teacher_temp'], (8, 16))
  """
  cfg = config.dino
  num_views = len(config.augment.views)
  num_global = int(cfg.num_global_crops)
  eval_net = build_network(config, axis_name=None)

  def init(key, x):
    variables = eval_net.init(key, x, train=False)
    params = variables.pop("params")
    state = {"batch_stats": variables.get("batch_stats", {}), "step": jnp.zeros((), jnp.int32),
             "center": jnp.zeros((int(cfg.head_kwargs.out_dim),), jnp.float32)}
    # The teacher starts as a copy of the student (official code: `teacher.load_state_dict(student.state_dict())`).
    state["teacher"] = jax.tree.map(jnp.array, {"params": params, "batch_stats": state["batch_stats"]})
    return params, state

  def loss(params, state, batch, key, *, axis_name=None):
    del key  # the objective is deterministic given the views
    views = batch["views"]
    _multicrop.check_views(views, num_global, "dino")
    b = views[0].shape[0]
    frozen = state["step"] < int(cfg.freeze_last_layer_steps)
    head = params["head"]
    params = {**params, "head": {**head, "last_layer": _multicrop.freeze_while(head["last_layer"], frozen)}}
    net = build_network(config, axis_name)
    (h, student), new_bs = net.apply(_multicrop.variables(params, state), views, train=True,
                                     mutable=["batch_stats"])
    teacher_vars = jax.lax.stop_gradient(state["teacher"])
    (_, teacher), _ = net.apply(teacher_vars, views[:num_global], train=True, mutable=["batch_stats"])
    teacher = jax.lax.stop_gradient(teacher)
    tau_t = teacher_temperature(state["step"], warmup=float(cfg.warmup_teacher_temp), final=float(cfg.teacher_temp),
                                warmup_steps=int(cfg.warmup_teacher_temp_steps))
    value = losses.dino(student, teacher, state["center"], student_temp=float(cfg.student_temp), teacher_temp=tau_t,
                        num_global_crops=num_global, axis_name=axis_name)
    center = losses.dino_center_update(state["center"], teacher, momentum=float(cfg.center_momentum),
                                       axis_name=axis_name)
    new_state = {**state, "batch_stats": new_bs.get("batch_stats", {}), "center": center}
    aux = {"metrics": {"dino": value, "teacher_temp": tau_t}, "features": jax.lax.stop_gradient(h[:b])}
    return value, (new_state, aux)

  def embed(params, state, x):
    # The student's encoder (the official evaluations use the teacher; for a run's online probe and the final
    # report we keep one convention across methods: the network the optimizer trains).
    return eval_net.apply(_multicrop.variables(params, state), x, method=_multicrop.MultiCropNetwork.encode)

  def update_after_step(params, state, step):
    m = ema.cosine_momentum(step, int(config.total_steps), base=float(cfg.base_momentum),
                            final=float(cfg.final_momentum))
    online = {"params": params, "batch_stats": state["batch_stats"]}
    return {**state, "teacher": ema.ema_update(state["teacher"], online, m), "step": step + 1}

  return base.Method(name="dino", num_views=num_views, init=init, loss=loss, embed=embed,
                     update_after_step=update_after_step)
