"""Methods: heads, extra state and objective of each self-supervised method, as a `Method` of pure functions.

Methods come in families, each with one base module; a method's module is its objective and what differs from
its base:

- `two_view`: encoder + projector (+ predictor) on every view and an objective of the projections: SimCLR, DCL,
  alignment-uniformity, Barlow Twins, VICReg, W-MSE, SupCon, Matryoshka; SimSiam and NNCLR (a predictor), NPID (a
  memory bank); Hallucinator wraps SimCLR, MoCo v2 or SimSiam;
- `ema_target`: an online network and its exponential moving average: BYOL, MoCo v3, MoCo v2 (and a queue);
- `multicrop`: global and local crops through one encoder and a prototype head: SwAV, DINO; SCFS (DINO with
  feature search at intermediate layers);
- `cluster_discrimination`: online pseudo-labels from a feature bank and a margin softmax: Unicom, MLCD; ODC keeps
  its own memory and head;
- `pretext`: a shared encoder on the parts of a task and a classifier: RotNet, relative location, jigsaw; the
  shortcut lens (RotNet's task with an adversarial lens);
- MAE (masked reconstruction), SemAIM (autoregression in a semantic-aware order), the supervised reference and the feature sieve (supervised, with an auxiliary head
  on an early layer) stand alone.

A new method adds its module and one line to `METHODS`; a two-view objective needs no module at all:
`register_objective(name, objective)`.
"""
from __future__ import annotations

import functools
from typing import Callable

import ml_collections

from rl.methods import align_uniform
from rl.methods import base
from rl.methods import barlow_twins
from rl.methods import byol
from rl.methods import dcl
from rl.methods import dino
from rl.methods import feature_sieve
from rl.methods import hallucinator
from rl.methods import jigsaw
from rl.methods import mae
from rl.methods import matryoshka
from rl.methods import mlcd
from rl.methods import moco_v2
from rl.methods import moco_v3
from rl.methods import nnclr
from rl.methods import npid
from rl.methods import odc
from rl.methods import relative_location
from rl.methods import rotnet
from rl.methods import scfs
from rl.methods import semaim
from rl.methods import shortcut_lens
from rl.methods import simclr
from rl.methods import simsiam
from rl.methods import supcon
from rl.methods import supervised
from rl.methods import swav
from rl.methods import two_view
from rl.methods import unicom
from rl.methods import vicreg
from rl.methods import wmse
from rl.methods.base import Method

METHODS: dict[str, Callable[[ml_collections.ConfigDict], Method]] = {
    "simclr": simclr.make,
    "byol": byol.make,
    "simsiam": simsiam.make,
    "moco_v2": moco_v2.make,
    "moco_v3": moco_v3.make,
    "barlow_twins": barlow_twins.make,
    "vicreg": vicreg.make,
    "wmse": wmse.make,
    "dcl": dcl.make,
    "supcon": supcon.make,
    "align_uniform": align_uniform.make,
    "nnclr": nnclr.make,
    "swav": swav.make,
    "dino": dino.make,
    "scfs": scfs.make,
    "npid": npid.make,
    "odc": odc.make,
    "rotnet": rotnet.make,
    "shortcut_lens": shortcut_lens.make,
    "relative_location": relative_location.make,
    "jigsaw": jigsaw.make,
    "mae": mae.make,
    "semaim": semaim.make,
    "matryoshka": matryoshka.make,
    "hallucinator": hallucinator.make,
    "unicom": unicom.make,
    "mlcd": mlcd.make,
    "supervised": supervised.make,
    "feature_sieve": feature_sieve.make,
}


def get_method(config: ml_collections.ConfigDict) -> Method:
  """Builds the method named by `config.method`; ValueError listing the known names otherwise.

  Example:
    >>> from configs import byol as byol_config
    >>> method = rl.methods.get_method(byol_config.get_config("smoke"))
    >>> method.name, method.num_views
    ('byol', 2)
    >>> config = byol_config.get_config("smoke"); config.method = "byl"
    >>> rl.methods.get_method(config)
    Traceback (most recent call last):
    ValueError: config.method: unknown method 'byl'; known methods: align_uniform, barlow_twins, byol, ...
  """
  name = config.method
  if name not in METHODS:
    raise ValueError(f"config.method: unknown method {name!r}; known methods: {', '.join(sorted(METHODS))}.")
  return METHODS[name](config)


def register_objective(name: str, objective: two_view.Objective, **options) -> None:
  """Registers a two-view method made of `objective(z1, z2, *, axis_name)`, trainable as `config.method = name`.

  The method is `rl.methods.two_view.make(config, objective, name=name, **options)`: the config's encoder and
  projector on both views (one batch), the objective of the two projections as the loss. The objective's own
  hyper-parameters come from the config section of the same name, when the config has one
  (`config.<name>.temperature` is passed as `temperature=`), so they can be set from the command line and swept.
  `options` are those of `two_view.make` (`forward`, `with_labels`, `with_key`, `metric`, `num_views`). A name
  that is already registered is refused, so that a notebook cannot silently replace a library method.

  Example:
    >>> def nt_xent_at(z1, z2, *, temperature=0.5, axis_name=None):  # a new objective
    ...   return rl.losses.nt_xent(z1, z2, temperature=temperature, axis_name=axis_name)
    >>> register_objective("nt_xent_at", nt_xent_at)
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")
    >>> config.method, config.nt_xent_at = "nt_xent_at", ml_collections.ConfigDict({"temperature": 0.2})
    >>> x = np.random.RandomState(0).randn(8, 40).astype(np.float32)
    >>> base.describe(get_method(config), {"views": (x, x + 0.1)})["metrics"]
    ['nt_xent_at']
    >>> register_objective("simclr", nt_xent_at)
    Traceback (most recent call last):
    ValueError: name: 'simclr' is already a registered method; pick another name.
    >>> del METHODS["nt_xent_at"]  # unregister
  """
  if name in METHODS:
    raise ValueError(f"name: {name!r} is already a registered method; pick another name.")

  def make(config: ml_collections.ConfigDict) -> Method:
    hyper = config[name].to_dict() if name in config else {}
    return two_view.make(config, functools.partial(objective, **hyper), name=name, **options)

  METHODS[name] = make


__all__ = ["Method", "METHODS", "get_method", "register_objective", "base", "two_view"]
