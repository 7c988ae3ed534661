"""Multi-process training: 2 processes x 4 CPU devices (gloo collectives) train exactly like 1 process x 8 devices.

The 2-process launches run `experiments/main.py` on the SimCLR smoke config (4 steps, a minimal evaluation) with
`data_shards=2`, so that the data stream does not depend on how many processes share it; the 1-process reference
trains the same config in the test process. A small driver wraps `rl.data.pipeline.host_train_batches` to log the
split positions each process was given, so the test sees that each process of the 2-process run read only its own
half of the split.
"""
from __future__ import annotations

import ast
import importlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

from etils import epath
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import rl.data
from rl.data import pipeline
from rl.train import loop
from rl.train import mesh as mesh_lib
import tests
from tests.train import index_log

REPO = epath.Path(__file__).resolve().parents[2]
MNIST1D_TRAIN = 4000  # examples in the mnist1d train split: two slices of 2000
BATCH = 64  # the smoke config's global batch
STEPS = 4
CHECKPOINT_STEPS = (2, 4)
TIMEOUT_S = 300


# Runs experiments/main.py unchanged, but logs the 'index' of every host batch this process's pipeline yields.
DRIVER = """
import os, runpy, sys

sys.path.insert(0, {repo!r})
from tests.train import index_log

index_log.install(os.environ["RL_TEST_INDEX_LOG"])
if os.environ.get("RL_TEST_SIGTERM_AT_CALL"):  # this process sends itself SIGTERM during that train step
  import signal
  from rl.train import step as step_lib
  _make_train_step, _at = step_lib.make_train_step, int(os.environ["RL_TEST_SIGTERM_AT_CALL"])

  def make_train_step(*args, **kwargs):
    step, calls = _make_train_step(*args, **kwargs), [0]

    def signalled(state, batch):
      calls[0] += 1
      out = step(state, batch)
      if calls[0] == _at:
        os.kill(os.getpid(), signal.SIGTERM)
      return out
    return signalled

  step_lib.make_train_step = make_train_step
main = os.path.join({repo!r}, "experiments", "main.py")
sys.argv = [main] + sys.argv[1:]
runpy.run_path(main, run_name="__main__")
"""

# The split is cut into 2 slices whatever the process count, so both launches see the same stream.
OVERRIDES = ("--config.data_shards=2", f"--config.total_steps={STEPS}", "--config.log_every_steps=1",
             "--config.checkpoint.every_steps=2", "--config.checkpoint.preemption_sync_every_steps=2",
             "--config.eval.every_steps=0", "--config.eval.baselines=False", "--config.eval.projection=False",
             "--config.eval.tsne_points=0", "--config.eval.max_train_examples=256",
             "--config.eval.alignment_examples=64")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(tmp: epath.Path, name: str, method: str, data_dir: str, *, processes: int, devices: int,
            env_of: dict[int, dict] | None = None, exit_code: int = 0) -> epath.Path:
  """Runs `processes` copies of the driver with `devices` CPU devices each; returns their shared workdir.

  `env_of[i]` adds environment variables to process i; every process must exit with `exit_code`.
  """
  workdir = tmp / name
  workdir.mkdir(exist_ok=True)
  env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "TPU_", "SLURM_", "OMPI_", "RL_"))}
  env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=tests.xla_flags(devices),
             TF_CPP_MIN_LOG_LEVEL="2",
             # The two launches share what they compile alike (initialisation, evaluation), which halves the
             # compile time of the second one; the cache is this test's own.
             JAX_COMPILATION_CACHE_DIR=str(tmp / "jax_cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  port = _free_port()
  cmd = [sys.executable, str(tmp / "driver.py"), f"--config={REPO / 'configs' / method}.py:smoke",
         f"--workdir={workdir}",
         f"--config.data_dir={data_dir}", *OVERRIDES]
  procs, logs = [], []
  for i in range(processes):
    penv = dict(env, RL_TEST_INDEX_LOG=str(workdir / f"index_{i}.jsonl"), **(env_of or {}).get(i, {}))
    if processes > 1:
      penv.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=str(processes),
                  JAX_PROCESS_ID=str(i))
    logs.append(open(workdir / f"process_{i}.log", "a"))  # pylint: disable=consider-using-with
    procs.append(subprocess.Popen(cmd, env=penv, stdout=logs[-1], stderr=subprocess.STDOUT, cwd=str(REPO)))
  deadline = time.time() + TIMEOUT_S
  # One failed process leaves the others waiting on a collective: stop them all at the first failure.
  while any(p.poll() is None for p in procs) and time.time() < deadline:
    if any(p.poll() not in (None, exit_code) for p in procs):
      break
    time.sleep(0.5)
  codes = []
  for p in procs:
    if p.poll() is None:
      p.kill()
      p.wait()
      codes.append("killed")
    else:
      codes.append(p.returncode)
  for log in logs:
    log.close()
  if any(c != exit_code for c in codes):
    timed_out = f" (timed out after {TIMEOUT_S} s)" if time.time() >= deadline else ""
    tails = "\n".join(f"--- process {i} of {processes} (exit {c}), last lines:\n"
                      + "\n".join((workdir / f"process_{i}.log").read_text().splitlines()[-40:])
                      for i, c in enumerate(codes))
    pytest.fail(f"{processes} process(es) x {devices} devices failed{timed_out}: exit codes {codes} (expected "
                f"{exit_code})\n{tails}")
  return workdir


def _train_losses(workdir: epath.Path) -> tuple[list[int], np.ndarray]:
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines() if l]
  train = [l for l in lines if l["kind"] == "train"]
  return [l["step"] for l in train], np.array([l["loss"] for l in train])


def _state(workdir: epath.Path, step: int) -> dict:
  """The train state of a checkpoint as host NumPy arrays (whatever devices and processes saved it)."""
  directory = workdir / "checkpoints" / str(step) / "default"
  with ocp.PyTreeCheckpointer() as ckptr:
    tree = dict(ckptr.metadata(directory).item_metadata)
    as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    return ckptr.restore(directory, args=ocp.args.PyTreeRestore(restore_args=as_numpy))


def _index_log(workdir: epath.Path, process: int) -> list[dict]:
  return [json.loads(l) for l in (workdir / f"index_{process}.jsonl").read_text().splitlines() if l]


@pytest.fixture(scope="module")
def prepared_data_dir(tmp_path_factory):
  """An empty TFDS data dir for the runs: mnist1d is made in memory by every process (no TensorFlow)."""
  return str(tmp_path_factory.mktemp("tfds"))


def _train_in_this_process(tmp: epath.Path, data_dir: str, monkeypatch) -> epath.Path:
  """The 1-process reference: the launches' config and index log, trained here on the suite's 8 devices (a
  launched process would spend ~10 s importing TensorFlow and JAX again)."""
  workdir = tmp / "one"
  config = importlib.import_module("configs.simclr").get_config("smoke")
  config.data_dir = data_dir
  # The launches' flags, parsed as the config flags parse them (ints and booleans here).
  tests.override(config, {flag.removeprefix("--config.").split("=")[0]: ast.literal_eval(flag.split("=")[1])
                          for flag in OVERRIDES})
  config.eval.final = False  # the reference needs only losses and checkpoints
  monkeypatch.setattr(pipeline, "host_train_batches", pipeline.host_train_batches)  # restored after the test
  index_log.install(workdir / "index_0.jsonl")
  loop.train_and_evaluate(config, workdir)
  return workdir


def test_two_processes_train_like_one(tmp_path, prepared_data_dir, monkeypatch):
  tmp = epath.Path(tmp_path)
  (tmp / "driver.py").write_text(textwrap.dedent(DRIVER.format(repo=str(REPO))))
  one = _train_in_this_process(tmp, prepared_data_dir, monkeypatch)
  # A data dir of its own: the two processes find mnist1d missing and generate it (process 0 first).
  # Preemption: process 1 alone gets SIGTERM during step 1; the hosts share it at step 2 (every 2 steps), both
  # save step 2 and exit 143; the relaunch resumes both from it.
  two = _launch(tmp, "two", "simclr", str(tmp / "tfds"), processes=2, devices=4,
                env_of={1: {"RL_TEST_SIGTERM_AT_CALL": "1"}}, exit_code=143)
  logs = [(two / f"process_{i}.log").read_text() for i in range(2)]
  assert "stopped by another host's signal after step 2/4" in logs[0], logs[0]
  assert "stopped by SIGTERM after step 2/4" in logs[1], logs[1]
  assert sorted(int(p.name) for p in (two / "checkpoints").iterdir()) == [2]
  _launch(tmp, "two", "simclr", str(tmp / "tfds"), processes=2, devices=4)
  for i in range(2):
    log = (two / f"process_{i}.log").read_text()
    assert "on 8 cpu device(s)" in log and "resuming from checkpoint at step 2/4" in log  # one job, both hosts

  # Each process of the 2-process run read only its own half of the split; side by side, the two halves are the
  # global batch that the 1-process run read, step after step.
  half = MNIST1D_TRAIN // 2
  logs = [_index_log(two, i) for i in range(2)]
  for i, log in enumerate(logs):
    assert [(l["process_index"], l["process_count"]) for l in log] == [(i, 2)] * STEPS
    index = np.array([l["index"] for l in log])
    assert index.shape == (STEPS, BATCH // 2)
    assert np.all((index >= i * half) & (index < (i + 1) * half)), f"process {i} read outside its slice"
  single = _index_log(one, 0)
  assert [(l["process_index"], l["process_count"]) for l in single] == [(0, 1)] * STEPS
  for step in range(STEPS):
    np.testing.assert_array_equal(logs[0][step]["index"] + logs[1][step]["index"], single[step]["index"])

  steps_two, losses_two = _train_losses(two)
  steps_one, losses_one = _train_losses(one)
  assert steps_two == steps_one == list(range(1, STEPS + 1))
  np.testing.assert_allclose(losses_two, losses_one, rtol=1e-5)

  # The whole train state at both checkpoints: parameters, optimizer moments, method state, online probe, step.
  for step in CHECKPOINT_STEPS:
    flat_two = jax.tree_util.tree_flatten_with_path(_state(two, step))[0]
    flat_one = dict(jax.tree_util.tree_flatten_with_path(_state(one, step))[0])
    assert flat_one and {path for path, _ in flat_two} == set(flat_one)
    for path, leaf in flat_two:
      # Sums over devices run in another order across processes: differences of float32 rounding (~1e-6 of the
      # leaf's scale, seen on gradient moments) are allowed, nothing more.
      scale = float(np.max(np.abs(flat_one[path]), initial=0.0))
      np.testing.assert_allclose(leaf, flat_one[path], rtol=1e-5, atol=1e-5 * scale,
                                 err_msg=f"step {step}: {jax.tree_util.keystr(path)}")
  # Training moved the parameters between the checkpoints: the states compared are not just the initial one.
  first, last = (jax.tree.leaves(_state(two, s)["params"]) for s in CHECKPOINT_STEPS)
  assert any(not np.allclose(a, b) for a, b in zip(first, last))

  # The final evaluation gathered the features of both processes: process 0 wrote the report once, with
  # accuracies far above the 0.1 of chance (features and labels stayed paired).
  rows = json.loads((two / "results.json").read_text())
  assert [r["representation"] for r in rows] == ["simclr (trained)"]
  assert rows[0]["linear_probe_accuracy"] > 0.2 and rows[0]["knn_20_accuracy"] > 0.2
  assert (two / "report.md").exists()
  final = [json.loads(l) for l in (two / "metrics.jsonl").read_text().splitlines() if '"final"' in l]
  assert len(final) == 1


@pytest.mark.parametrize("name,in_memory", [("mnist1d", None), ("mnist1d_tfds", False)], ids=["loader", "tf_data"])
def test_data_shards_split_the_stream_the_same_way_for_any_process_count(tfds_embedded, name, in_memory):
  # From memory (as the end-to-end run above) and through tf.data: 4 slices read by 1 or 2 processes.
  def batches(process_index, process_count):
    stream = rl.data.host_train_batches(name, local_batch_size=32 // process_count, seed=1,
                                        data_dir=tfds_embedded, process_index=process_index,
                                        process_count=process_count, data_shards=4, in_memory=in_memory,
                                        start_step=30)  # 4 slices of 1000 / 8 rows: epoch 0 ends at step 125
    return np.stack([next(stream)["index"] for _ in range(3)])

  one = batches(0, 1)
  for count in (2,):
    parts = [batches(i, count) for i in range(count)]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), one)
    for i, part in enumerate(parts):  # process i of `count` reads only slices i*k .. i*k+k-1, k = 4 / count
      size = MNIST1D_TRAIN // count
      assert np.all((part >= i * size) & (part < (i + 1) * size))
  assert len(np.unique(one)) == one.size

  with pytest.raises(ValueError, match="data_shards: expected a multiple of the process count 2, got 3"):
    next(rl.data.host_train_batches(name, local_batch_size=32, seed=0, data_dir=tfds_embedded,
                                    process_index=0, process_count=2, data_shards=3))
  with pytest.raises(ValueError, match="data_shards: .* 3 slices, which do not divide its local batch of 32 rows"):
    next(rl.data.host_train_batches(name, local_batch_size=32, seed=0, data_dir=tfds_embedded,
                                    data_shards=3))


@pytest.mark.parametrize("env,expected", [
    ({}, None),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, {"coordinator_address": "10.0.0.1:1234"}),
    ({"JAX_COORDINATOR_ADDRESS": "127.0.0.1:99", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"},
     {"coordinator_address": "127.0.0.1:99", "num_processes": 2, "process_id": 1}),
    ({"RL_DISTRIBUTED": "1"}, {}),
    ({"RL_DISTRIBUTED": "0", "JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, None),
    ({"SLURM_NTASKS": "1", "SLURM_STEP_NODELIST": "node1"}, None),
    ({"SLURM_NTASKS": "16", "SLURM_STEP_NODELIST": "node[1-2]"}, {}),
    ({"SLURM_NTASKS": "16"}, None),  # an allocation, but not inside an srun step
    ({"TPU_WORKER_HOSTNAMES": "t0,t1,t2,t3"}, {}),
    ({"TPU_WORKER_HOSTNAMES": "t0"}, None),
    ({"OMPI_COMM_WORLD_SIZE": "4", "OMPI_MCA_orte_hnp_uri": "123.0;tcp://10.0.0.1:5000"}, {}),
    ({"OMPI_COMM_WORLD_SIZE": "4"}, None),  # Open MPI 5: JAX cannot find the coordinator by itself
])
def test_distributed_arguments_from_the_environment(env, expected):
  assert mesh_lib.distributed_arguments(env) == expected


@pytest.mark.parametrize("env,match", [
    ({"JAX_COORDINATOR_ADDRESS": "localhost"}, "JAX_COORDINATOR_ADDRESS: expected host:port, got 'localhost'"),
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2"}, "set both or neither"),
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"},
     "0 <= JAX_PROCESS_ID < JAX_NUM_PROCESSES, got 2 and 2"),
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"},
     "JAX_NUM_PROCESSES: expected an integer, got 'two'"),
    ({"RL_DISTRIBUTED": "yes"}, "RL_DISTRIBUTED: expected '0' or '1', got 'yes'"),
])
def test_distributed_arguments_reject_bad_values(env, match):
  with pytest.raises(ValueError, match=match):
    mesh_lib.distributed_arguments(env)
