"""Methods: heads, extra state and objective of each self-supervised method, as a `Method` of pure functions.

A new method adds its module and one line to `METHODS`.
"""
from __future__ import annotations

from typing import Callable

import ml_collections

from rl.methods import align_uniform
from rl.methods import barlow_twins
from rl.methods import byol
from rl.methods import dcl
from rl.methods import dino
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
from rl.methods import simclr
from rl.methods import simsiam
from rl.methods import supcon
from rl.methods import supervised
from rl.methods import swav
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
    "npid": npid.make,
    "odc": odc.make,
    "rotnet": rotnet.make,
    "relative_location": relative_location.make,
    "jigsaw": jigsaw.make,
    "mae": mae.make,
    "matryoshka": matryoshka.make,
    "hallucinator": hallucinator.make,
    "unicom": unicom.make,
    "mlcd": mlcd.make,
    "supervised": supervised.make,
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


__all__ = ["Method", "METHODS", "get_method"]
