"""One 1-D mesh over every device of every host, axis 'data'; the batch is sharded on it, parameters replicated."""
from __future__ import annotations

import os
from typing import Mapping

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"

# `RL_DISTRIBUTED=1` calls `jax.distributed.initialize()` even where nothing below is set (a Cloud TPU VM pod, where
# JAX reads the workers from the TPU metadata); `RL_DISTRIBUTED=0` never calls it.
FORCE_ENV = "RL_DISTRIBUTED"


def _int_env(env: Mapping[str, str], name: str) -> int | None:
  if name not in env:
    return None
  try:
    return int(env[name])
  except ValueError:
    raise ValueError(f"{name}: expected an integer, got {env[name]!r}") from None


def distributed_arguments(env: Mapping[str, str] | None = None) -> dict | None:
  """The keyword arguments of `jax.distributed.initialize` for this launch, or None for a one-process run.

  A launch is multi-process when one of these says so (checked in this order):
  - `RL_DISTRIBUTED=1` (then JAX detects everything itself: Cloud TPU VM metadata, Slurm, Open MPI) or `=0` (never);
  - `JAX_COORDINATOR_ADDRESS` (host:port of process 0): an explicit launch; `JAX_NUM_PROCESSES` and
    `JAX_PROCESS_ID`, when set, give the process count and this process's id (JAX itself reads only the address,
    and `JAX_LOCAL_DEVICE_IDS`); without them JAX detects them from the cluster;
  - `TPU_WORKER_HOSTNAMES` or `TPU_PROCESS_ADDRESSES` (GKE TPU pods), more than one host;
  - `SLURM_NTASKS` > 1 inside an `srun` step (`SLURM_STEP_NODELIST`), or `OMPI_COMM_WORLD_SIZE` > 1 under the
    `mpirun` of Open MPI 4 (`OMPI_MCA_orte_hnp_uri`, where JAX finds the coordinator; with Open MPI 5, set
    `JAX_COORDINATOR_ADDRESS`).

  Example:
    >>> distributed_arguments({}) is None  # nothing says multi-process: one process
    True
    >>> env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "1"}
    >>> distributed_arguments(env)
    {'coordinator_address': '10.0.0.1:1234', 'num_processes': 4, 'process_id': 1}
    >>> distributed_arguments({"SLURM_STEP_NODELIST": "node[1-2]", "SLURM_NTASKS": "2"})  # JAX reads Slurm itself
    {}
    >>> distributed_arguments({"RL_DISTRIBUTED": "1"}), distributed_arguments({"RL_DISTRIBUTED": "0"})
    ({}, None)
    >>> distributed_arguments({"JAX_COORDINATOR_ADDRESS": "10.0.0.1"})
    Traceback (most recent call last):
    ValueError: JAX_COORDINATOR_ADDRESS: expected host:port, got '10.0.0.1'

  Args:
    env: the environment to read; None for `os.environ`.

  Returns:
    None (one process), or a dict of the explicit arguments (possibly empty: JAX detects them).

  Raises:
    ValueError: a malformed variable (named, with its value), or a process id outside [0, process count).
  """
  env = os.environ if env is None else env
  force = env.get(FORCE_ENV, "").strip()
  if force not in ("", "0", "1"):
    raise ValueError(f"{FORCE_ENV}: expected '0' or '1', got {force!r}")
  if force == "0":
    return None
  if "JAX_COORDINATOR_ADDRESS" in env:
    address = env["JAX_COORDINATOR_ADDRESS"]
    if ":" not in address:
      raise ValueError(f"JAX_COORDINATOR_ADDRESS: expected host:port, got {address!r}")
    num, pid = _int_env(env, "JAX_NUM_PROCESSES"), _int_env(env, "JAX_PROCESS_ID")
    if (num is None) != (pid is None):
      raise ValueError(f"JAX_NUM_PROCESSES and JAX_PROCESS_ID: set both or neither; got "
                       f"JAX_NUM_PROCESSES={env.get('JAX_NUM_PROCESSES')!r}, "
                       f"JAX_PROCESS_ID={env.get('JAX_PROCESS_ID')!r}")
    if num is None:
      return {"coordinator_address": address}
    if num < 1 or not 0 <= pid < num:
      raise ValueError(f"JAX_PROCESS_ID: expected 0 <= JAX_PROCESS_ID < JAX_NUM_PROCESSES, got {pid} and {num}")
    return {"coordinator_address": address, "num_processes": num, "process_id": pid}
  if force == "1":
    return {}
  hosts = env.get("TPU_PROCESS_ADDRESSES") or env.get("TPU_WORKER_HOSTNAMES")
  if hosts and len(hosts.split(",")) > 1:
    return {}
  if "SLURM_STEP_NODELIST" in env and (_int_env(env, "SLURM_NTASKS") or 1) > 1:
    return {}
  if "OMPI_MCA_orte_hnp_uri" in env and (_int_env(env, "OMPI_COMM_WORLD_SIZE") or 1) > 1:
    return {}
  return None


def initialize_distributed() -> bool:
  """Joins the other processes of a multi-process job (TPU pods, Slurm/GPU clusters, local CPU processes).

  A no-op for a one-process launch (see `distributed_arguments` for how a launch is recognised) and when JAX's
  distributed system is already up. Must run before anything touches a JAX backend. CPU devices of different
  processes exchange collectives through gloo (TCP), so that N processes x M CPU devices (e.g.
  `XLA_FLAGS=--xla_force_host_platform_device_count=M`) train as one N*M-device job.

  Example:
    >>> initialize_distributed()  # a one-process launch: nothing to join
    False

  Returns:
    Whether JAX's distributed system is up after the call (False: a one-process run).
  """
  kwargs = distributed_arguments()
  if kwargs is None or jax.distributed.is_initialized():
    return jax.distributed.is_initialized()
  # gloo is jax 0.10's default already; older and newer releases may default to no CPU collectives at all. The
  # option only concerns the CPU client, so it is harmless on GPU and TPU hosts.
  if "JAX_CPU_COLLECTIVES_IMPLEMENTATION" not in os.environ and "jax_cpu_collectives_implementation" in getattr(
      jax.config, "values", {}):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)
  return True


def make_mesh() -> Mesh:
  """A 1-D mesh over every device of every process, axis `AXIS` ('data'): the batch is split along it.

  Example:
    >>> mesh = make_mesh()
    >>> mesh.axis_names, mesh.size == jax.device_count()
    (('data',), True)
  """
  # Auto axes: jit partitions code outside shard_map (evaluation, augmentation of eval views) by itself, as
  # big_vision does; the explicit-sharding mode that `jax.make_mesh` defaults to would make every such op
  # spell out its sharding.
  return jax.make_mesh((jax.device_count(),), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Splits an array's leading (batch) axis over the mesh: each device holds `batch / device_count` rows.

  Example:
    >>> mesh = make_mesh()
    >>> x = jax.device_put(np.zeros((8 * jax.device_count(), 3), np.float32), batch_sharding(mesh))
    >>> x.addressable_shards[0].data.shape  # 8 rows per device
    (8, 3)
  """
  return NamedSharding(mesh, P(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """A full copy on every device (parameters, optimizer and method state).

  Example:
    >>> mesh = make_mesh()
    >>> w = jax.device_put(np.ones((4, 3), np.float32), replicated(mesh))
    >>> w.addressable_shards[0].data.shape, len(w.addressable_shards) == jax.local_device_count()
    ((4, 3), True)
  """
  return NamedSharding(mesh, P())
