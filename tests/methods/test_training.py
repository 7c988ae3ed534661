"""Every method through the trainer: 4 steps on 8 devices that reproduce the method's recorded per-step metrics.

One parametrised run per method (it replaced a `test_smoke_*` in each method's test file, which also ran the final
report; the report is the trainer's, tested once in tests/train/test_loop.py). Each run:
- trains the method's `smoke` config for 4 steps with `rl.train.loop.train_and_evaluate` (data, augmentation,
  sharded step, method state, online probe, metric log);
- must reproduce every train metric of every step recorded in `smoke_losses.json` (`smoke.check_golden`): a wrong
  temperature, a swapped view or a missing stop-gradient changes them;
- checkpoints steps 2 and 4 (the method's state included) and runs the in-loop kNN through the method's `embed`,
  whose accuracy must be above chance (features that collapsed to one point, or lost their pairing with the labels,
  score at chance).
"""
import importlib
import json

import pytest

from rl import methods
from rl.train import restore
from tests.methods import smoke

# golden entry -> (config module, get_config argument)
RUNS = {name: (name.split(":")[0], name.split(":")[1]) for name in (
    "align_uniform:smoke", "barlow_twins:smoke", "byol:smoke", "dcl:smoke", "dino:smoke",
    "hallucinator:smoke,moco_v2", "hallucinator:smoke,simclr", "hallucinator:smoke,simsiam", "jigsaw:smoke",
    "mae:smoke", "matryoshka:smoke,simclr", "mlcd:smoke", "moco_v2:smoke", "moco_v3:smoke", "nnclr:smoke",
    "npid:smoke", "odc:smoke", "relative_location:smoke", "rotnet:smoke", "simclr:smoke", "simsiam:smoke",
    "supcon:smoke", "supervised:smoke", "swav:smoke", "unicom:smoke", "vicreg:smoke", "wmse:smoke")}


def test_every_method_has_a_run():
  recorded = set(json.loads(smoke.GOLDEN.read_text()))
  assert set(RUNS) <= recorded
  methods = {module for module, _ in RUNS.values()}
  configs = {p.stem for p in smoke.GOLDEN.parents[2].joinpath("configs").glob("*.py")} - {"__init__", "common"}
  assert methods == configs, sorted(configs ^ methods)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_trains_as_recorded(name, tmp_path, tfds_dir):
  module, arg = RUNS[name]
  config = importlib.import_module(f"configs.{module}").get_config(arg)
  sized = config.copy_and_resolve_references()
  sized.num_train_examples = 4000  # the trainer fills it in (banks have one row per example)
  assert methods.get_method(sized).name == module  # the registry gives the config's method
  results = smoke.run(config, tmp_path, data_dir=tfds_dir, golden=name, final=False)
  assert restore.checkpoint_steps(tmp_path / "run") == [2, 4]
  [knn] = results["eval"]
  assert knn["step"] == 2 and knn["knn_20_accuracy"] > 0.2, knn  # 10 classes: chance is 0.1
