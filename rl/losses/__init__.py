"""Pure objectives of representation learning. Imports nothing from the rest of `rl`.

Every loss is a function of arrays with keyword-only hyper-parameters and an `axis_name` for data-parallel use
inside `jax.shard_map` or `jax.pmap`; see `rl.losses._collectives` for the gradient convention.
"""
from rl.losses.contrastive import nt_xent

__all__ = ["nt_xent"]
