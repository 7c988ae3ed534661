"""The two-view joint-embedding family: an encoder and a projector on every view, and an objective of the views.

SimCLR, DCL, alignment-uniformity, Barlow Twins, VICReg, W-MSE, SupCon and Matryoshka are each an objective of the
projections plus a few lines; SimSiam and NNCLR add a predictor, NPID a memory bank, the EMA-target methods
(`rl.methods.ema_target`) a momentum network. A new two-view method is one call:

    def make(config):
      temperature = float(config.simclr.temperature)

      def objective(z1, z2, *, axis_name=None):
        return losses.nt_xent(z1, z2, temperature=temperature, axis_name=axis_name)

      return two_view.make(config, objective, name="simclr")

and `rl.methods.register_objective(name, objective)` does the same for a notebook's objective at run time.

The network (`build_network`) is `config.model.encoder` with `config.model.encoder_kwargs`, an `mlp_projector`
with `config.model.projector_kwargs` and, for the methods that have one, an `mlp_projector` predictor without a
last BatchNorm; parameters `encoder`, `projector` (, `predictor`), BatchNorm statistics in
`method_state['batch_stats']`. How the views go through it is the method's choice (`forward`), because it decides
which examples share BatchNorm statistics:

- `'joint'`: all views as one concatenated batch, so the statistics cover every view (and, through `axis_name`,
  every device), as SimCLR's TPU implementation, BYOL and MoCo;
- `'per_view'`: one forward pass per view, the running averages updated once per view in view order, as the
  authors' Barlow Twins and VICReg code (`backbone(y1)`, `backbone(y2)`);
- `'encoder_per_view'`: the encoder per view and the projector once on the concatenated features, as the
  authors' W-MSE code.

The features the online probe trains on are the encoder features of the first view; `embed` returns the encoder
features and `project` the projector's output of one evaluation view.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from rl.methods import base

# objective(z_1, ..., z_n, *, axis_name[, labels][, key]) -> loss, or (loss, metrics).
Objective = Callable[..., Any]
# loss_fn(out, method_state, batch, key, *, axis_name) -> (loss, metrics, new method_state).
LossFn = Callable[..., tuple[jax.Array, dict[str, jax.Array], dict[str, Any]]]
FORWARDS = ("joint", "per_view", "encoder_per_view")
# The Flax collections of the network kept in method_state; everything else there is the method's own.
NETWORK_COLLECTIONS = ("batch_stats",)


class EncoderProjector(nn.Module):
  """The encoder followed by the projector; returns (features h, projections z)."""
  encoder: nn.Module
  projector: nn.Module

  def __call__(self, x, *, train: bool):
    h = self.encoder(x, train=train)
    return h, self.projector(h, train=train)

  def encode(self, x, *, train: bool = False):
    return self.encoder(x, train=train)

  def project(self, x, *, train: bool = False):
    return self.projector(self.encoder(x, train=train), train=train)

  def project_features(self, h, *, train: bool = True):
    return self.projector(h, train=train)


class EncoderProjectorPredictor(EncoderProjector):
  """Encoder, projector and predictor; returns (features h, projections z, predictions p)."""
  predictor: nn.Module

  def __call__(self, x, *, train: bool):
    h, z = super().__call__(x, train=train)
    return h, z, self.predictor(z, train=train)


def build_network(config: ml_collections.ConfigDict, axis_name: str | None, *,
                  predictor_kwargs: ml_collections.ConfigDict | None = None) -> EncoderProjector:
  """Encoder and projector from `config.model` (`encoder`, `encoder_kwargs`, `projector_kwargs`), and a predictor.

  The predictor (`predictor_kwargs`, e.g. `config.byol.predictor_kwargs`) is an MLP with BatchNorm in its hidden
  layers and none on its output, as BYOL's and SimSiam's. Every model computes in `config.compute_dtype`.

  Example:
    >>> from configs import simclr as simclr_config
    >>> net = build_network(simclr_config.get_config("smoke"), axis_name=None)
    >>> x = np.zeros((8, 40), np.float32)
    >>> h, z = net.apply(net.init(jax.random.key(0), x, train=False), x, train=False)
    >>> h.shape, z.shape
    ((8, 16), (8, 8))
  """
  model = config.model
  encoder = base.get_model(config, model.encoder, axis_name=axis_name, **model.encoder_kwargs.to_dict())
  projector = base.get_model(config, "mlp_projector", axis_name=axis_name, **model.projector_kwargs.to_dict())
  if predictor_kwargs is None:
    return EncoderProjector(encoder=encoder, projector=projector)
  predictor = base.get_model(config, "mlp_projector", axis_name=axis_name, last_bn=False,
                             **predictor_kwargs.to_dict())
  return EncoderProjectorPredictor(encoder=encoder, projector=projector, predictor=predictor)


class Outputs(NamedTuple):
  """What the network makes of the views, one entry per view: features h, projections z, predictions p."""
  h: tuple[jax.Array, ...]
  z: tuple[jax.Array, ...]
  p: tuple[jax.Array, ...] | None = None


def split_views(x: jax.Array, n: int) -> tuple[jax.Array, ...]:
  """The n equal row blocks of a batch of concatenated views (view-major), e.g. z[:b], z[b:] for two views.

  Example:
    >>> split_views(jnp.arange(6), 3)
    (Array([0, 1], dtype=int32), Array([2, 3], dtype=int32), Array([4, 5], dtype=int32))
  """
  b = x.shape[0] // n
  return tuple(x[i * b:(i + 1) * b] for i in range(n))


def _network_variables(params, state) -> dict[str, Any]:
  """The Flax variables of the network: its params and its collections of `state` (never the method's own state)."""
  return {"params": params, **{k: state[k] for k in NETWORK_COLLECTIONS if k in state}}


@dataclasses.dataclass(frozen=True)
class Network:
  """A config's encoder + projector (+ predictor) as pure functions of (params, method_state).

  `method_state` may hold more than the network's BatchNorm statistics (targets, queues, banks): `apply` reads
  and updates only the network's collections and returns the rest unchanged.

  Example:
    >>> from configs import simclr as simclr_config
    >>> net = Network(simclr_config.get_config("smoke"))
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> params, state = net.init(jax.random.key(0), x)
    >>> out, state = net.apply(params, state, (x, x + 0.1), axis_name=None)
    >>> [z.shape for z in out.z], out.p, net.embed(params, state, x).shape
    ([(8, 8), (8, 8)], None, (8, 16))
  """
  config: ml_collections.ConfigDict
  predictor_kwargs: ml_collections.ConfigDict | None = None

  def module(self, axis_name: str | None = None) -> EncoderProjector:
    return build_network(self.config, axis_name, predictor_kwargs=self.predictor_kwargs)

  def init(self, key: jax.Array, x: jax.Array) -> tuple[Any, dict[str, Any]]:
    """(params, network collections) for inputs shaped like `x`."""
    variables = self.module().init(key, x, train=False)
    params = variables.pop("params")
    return params, dict(variables)

  def output_shapes(self, params, state, x) -> Outputs:
    """Shapes (`jax.ShapeDtypeStruct`) of the evaluation pass on `x`, without computing it."""
    out = jax.eval_shape(lambda p, s: self.module().apply(_network_variables(p, s), x, train=False), params, state)
    return Outputs(h=(out[0],), z=(out[1],), p=(out[2],) if len(out) == 3 else None)

  def apply(self, params, state, views: Sequence[jax.Array], *, axis_name: str | None,
            forward: str = "joint") -> tuple[Outputs, dict[str, Any]]:
    """The training pass over `views` (see the module docstring for `forward`); returns (outputs, new state)."""
    net = self.module(axis_name)
    collections = [k for k in NETWORK_COLLECTIONS if k in state]
    n = len(views)

    def run(net_state, x, **kwargs):
      out, new = net.apply(_network_variables(params, net_state), x, train=True, mutable=collections, **kwargs)
      return out, {**net_state, **new}

    if forward == "joint":
      out, state = run(state, jnp.concatenate(views))
      parts = [split_views(part, n) for part in out]
    elif forward == "per_view":
      per_view = []
      for view in views:
        out, state = run(state, view)
        per_view.append(out)
      parts = list(zip(*per_view))
    elif forward == "encoder_per_view":
      hs = []
      for view in views:
        h, state = run(state, view, method=EncoderProjector.encode)
        hs.append(h)
      z, state = run(state, jnp.concatenate(hs), method=EncoderProjector.project_features)
      parts = [tuple(hs), split_views(z, n)]
    else:
      raise ValueError(f"forward: expected one of {', '.join(FORWARDS)}; got {forward!r}.")
    return Outputs(*(tuple(part) for part in parts)), state

  def embed(self, params, state, x):
    """Encoder features of `x` (evaluation mode)."""
    return self.module().apply(_network_variables(params, state), x, method=EncoderProjector.encode)

  def project(self, params, state, x):
    """Projector output of `x` (evaluation mode)."""
    return self.module().apply(_network_variables(params, state), x, method=EncoderProjector.project)


def _require_labels(batch: dict[str, Any], name: str) -> jax.Array:
  """`batch['label']`, or a ValueError saying that the method is supervised."""
  if batch.get("label") is None:
    raise ValueError(f"{name} is supervised: the batch needs 'label' ([b] int class labels); got keys "
                     f"{sorted(batch)}.")
  return batch["label"]


def loss_and_metrics(result, metric: str) -> tuple[jax.Array, dict[str, jax.Array]]:
  """An objective's result as (loss, metrics): a bare loss is reported as `{metric: loss}`.

  Example:
    >>> loss_and_metrics(jnp.float32(2.0), "nt_xent")
    (Array(2., dtype=float32), {'nt_xent': Array(2., dtype=float32)})
  """
  if isinstance(result, tuple):
    return result
  return result, {metric: result}


def make_method(config: ml_collections.ConfigDict, loss_fn: LossFn, *, name: str, num_views: int = 2,
                forward: str = "joint", predictor_kwargs: ml_collections.ConfigDict | None = None,
                init_state: Callable[[jax.Array, Outputs], dict[str, Any]] | None = None,
                update_after_step: base.UpdateFn | None = None, project: bool = True) -> base.Method:
  """A `Method` on `Network(config, predictor_kwargs)` whose loss is `loss_fn` of the network's outputs.

  `loss_fn(out, method_state, batch, key, *, axis_name) -> (loss, metrics, new method_state)` gets the
  `Outputs` of the training pass and the method state with the network's statistics already updated; it returns
  the method state with its own parts (queues, banks) updated. `init_state(key, shapes)`, given the `Outputs`
  shapes of one evaluation pass, returns the method's own initial state; the init key is then split into the
  network's and this one's (without it the network gets the key itself).

  Example:
    >>> from configs import simclr as simclr_config
    >>> def loss_fn(out, state, batch, key, *, axis_name=None):
    ...   value = rl.losses.nt_xent(*out.z, temperature=0.1, axis_name=axis_name)
    ...   return value, {"nt_xent": value}, state
    >>> method = make_method(simclr_config.get_config("smoke"), loss_fn, name="my_simclr")
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> rl.methods.base.describe(method, {"views": (x, x + 0.1)})["metrics"]
    ['nt_xent']
  """
  net = Network(config, predictor_kwargs)
  if forward not in FORWARDS:
    raise ValueError(f"forward: expected one of {', '.join(FORWARDS)}; got {forward!r}.")

  def init(key, x):
    if init_state is None:
      return net.init(key, x)
    net_key, state_key = jax.random.split(key)
    params, state = net.init(net_key, x)
    return params, {**state, **init_state(state_key, net.output_shapes(params, state, x))}

  def loss(params, state, batch, key, *, axis_name=None):
    out, state = net.apply(params, state, batch["views"], axis_name=axis_name, forward=forward)
    value, metrics, state = loss_fn(out, state, batch, key, axis_name=axis_name)
    return value, (state, {"metrics": metrics, "features": jax.lax.stop_gradient(out.h[0])})

  return base.Method(name=name, num_views=num_views, init=init, loss=loss, embed=net.embed,
                     project=net.project if project else None, update_after_step=update_after_step)


def make(config: ml_collections.ConfigDict, objective: Objective, *, name: str, forward: str = "joint",
         num_views: int = 2, with_labels: bool = False, with_key: bool = False,
         metric: str | None = None) -> base.Method:
  """A two-view `Method` whose loss is `objective(z_1, ..., z_n, *, axis_name)` of the views' projections.

  The objective returns the loss (reported as the metric `metric`, default `name`) or `(loss, metrics)`. With
  `with_labels` it is also given `labels=batch['label']` (supervised methods such as SupCon; a batch without
  labels is refused), with `with_key` the method's PRNG key `key=` (the same on every device).

  Example:
    >>> from configs import simclr as simclr_config
    >>> def objective(z1, z2, *, axis_name=None):  # NT-Xent at temperature 0.5
    ...   return rl.losses.nt_xent(z1, z2, temperature=0.5, axis_name=axis_name)
    >>> method = make(simclr_config.get_config("smoke"), objective, name="simclr_t05")
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> rl.methods.base.describe(method, {"views": (x, x + 0.1)})
    {'params': ['encoder', 'projector'], 'state': ['batch_stats'], 'metrics': ['simclr_t05'], 'embedding': (8, 16)}
  """

  def loss_fn(out, state, batch, key, *, axis_name=None):
    kwargs = {}
    if with_labels:
      kwargs["labels"] = _require_labels(batch, name)
    if with_key:
      kwargs["key"] = key
    value, metrics = loss_and_metrics(objective(*out.z, axis_name=axis_name, **kwargs), metric or name)
    return value, metrics, state

  return make_method(config, loss_fn, name=name, num_views=num_views, forward=forward)


__all__ = ["EncoderProjector", "EncoderProjectorPredictor", "Network", "Outputs", "build_network", "make",
           "make_method", "split_views", "loss_and_metrics"]
