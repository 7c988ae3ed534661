"""One 1-D mesh over every device of every host, axis 'data'; the batch is sharded on it, parameters replicated."""
from __future__ import annotations

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"


def initialize_distributed() -> None:
  """Joins the other processes of a multi-host job (TPU pods, multi-node GPU); a no-op on one process."""
  import os  # pylint: disable=g-import-not-at-top
  multi = any(v in os.environ for v in ("JAX_COORDINATOR_ADDRESS", "TPU_WORKER_HOSTNAMES", "SLURM_NTASKS"))
  if multi and not jax.distributed.is_initialized():
    jax.distributed.initialize()


def make_mesh() -> Mesh:
  # Auto axes: jit partitions code outside shard_map (evaluation, augmentation of eval views) by itself, as
  # big_vision does; the explicit-sharding mode that `jax.make_mesh` defaults to would make every such op
  # spell out its sharding.
  return jax.make_mesh((jax.device_count(),), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())
