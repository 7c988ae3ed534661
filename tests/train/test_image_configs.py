"""The CIFAR and ImageNet variants through `experiments/main.py`'s code path, two steps each on TFDS mock data.

`configs/{simclr,byol,swav,dino,mae}.py:cifar10` and `configs/simclr.py:imagenet` are parsed as main.py parses
`--config` (the config locked, overrides from the command line), shrunk, and trained by main.py's `train` (which
`main` calls after parsing the flags) inside `tfds.testing.mock_data`: TFDS's own builders of cifar10 and
imagenet2012 generate random examples of the real features, so the tf.data pipeline, the host resize, the real
augmentation recipes (on the device, inside the step), the model family, the method's heads and state, LARS or
SGD and the checkpoint all run as on the real data. What is shrunk, to keep compilation cheap: the batch (16 over
the 8 fake devices), the widths (ResNet of one block of width 8, ViT of one block of width 16, heads of 8 to 32
units), ImageNet's image side (64 instead of 224), and the evaluation (none: `eval.final=False`, no in-loop kNN;
the image evaluation path runs in tests/test_imports.py on `synthetic_32`).

The model's widths are set in Python: the encoder's keyword dicts of a locked config accept no new key from the
command line (`--config.model.encoder_kwargs.width=8` is an error there, as for a user).
"""
import importlib.util
import json
import pathlib
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tests

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Every run: two steps of 16 examples, a checkpoint at the end, no evaluation; as command-line overrides.
COMMAND_LINE = ("--config.batch_size=16", "--config.total_steps=2", "--config.log_every_steps=1",
                "--config.optim.warmup_steps=1", "--config.eval.every_steps=0", "--config.eval.final=False",
                "--config.checkpoint.every_steps=2")
TINY_RESNET = {"model.encoder_kwargs.width": 8, "model.encoder_kwargs.stage_sizes": (1,)}
TINY_PROJECTOR = {"model.projector_kwargs.hidden_dims": (16,), "model.projector_kwargs.out_dim": 8}
# config -> (extra command-line overrides, Python overrides that shrink the networks)
RUNS = {
    "simclr.py:cifar10": ((), {**TINY_RESNET, **TINY_PROJECTOR}),
    "byol.py:cifar10": ((), {**TINY_RESNET, **TINY_PROJECTOR, "byol.predictor_kwargs": dict(hidden_dims=(16,),
                                                                                              out_dim=8)}),
    "swav.py:cifar10": (("--config.swav.num_prototypes=10",), {**TINY_RESNET, **TINY_PROJECTOR}),
    "dino.py:cifar10": ((), {**TINY_RESNET, "dino.head_kwargs": dict(
        out_dim=32, hidden_dim=16, bottleneck_dim=8, num_layers=3, use_bn=False, norm_last_layer=True)}),
    "mae.py:cifar10": ((), {"model.encoder_kwargs": dict(width=16, depth=1, num_heads=2, patch_size=4, readout="cls",
                                                         decoder_width=8, decoder_depth=1, decoder_heads=2)}),
    # The host resizes ImageNet's mock images to 64 and the recipe crops 64: its blur scales with the crop.
    "simclr.py:imagenet": (("--config.image_size=64", "--config.augment.out_size=64"),
                           {**TINY_RESNET, **TINY_PROJECTOR}),
}


def _main_module():
  """experiments/main.py as a module, loaded once per process (it defines its absl flags when loaded)."""
  name = "rl_experiments_main"
  if name not in sys.modules:
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
  return sys.modules[name]


def _shrink(config, overrides: dict):
  with config.unlocked():
    return tests.override(config, overrides)


@pytest.mark.parametrize("config_arg", list(RUNS))
def test_image_variant_trains_through_main(config_arg, tmp_path):
  command_line, shrink = RUNS[config_arg]
  flags = COMMAND_LINE + command_line + (f"--config.data_dir={tmp_path / 'tfds'}",)
  config = _shrink(tests.parse_config(config_arg, *flags), shrink)
  module, variant = config_arg.split(".py:")
  recipe = importlib.import_module(f"configs.{module}").get_config(variant)
  workdir = tmp_path / "run"
  with tfds.testing.mock_data(num_examples=32, policy=tfds.testing.MockPolicy.USE_CODE):
    assert _main_module().train(config, str(workdir)) == 0
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  train = [l for l in lines if l["kind"] == "train"]
  assert [l["step"] for l in train] == [1, 2] and all(np.isfinite(l["loss"]) for l in train), lines
  assert [p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()] == ["2"]
  saved = json.loads((workdir / "config.json").read_text())
  # The variant's own data set, model family and augmentation recipes ran.
  assert saved["dataset"] == recipe.dataset and saved["model"]["encoder"] == recipe.model.encoder
  assert tuple(saved["augment"]["views"]) == tuple(recipe.augment.views)
  assert saved["augment"]["overrides"] == json.loads(json.dumps(recipe.augment.overrides.to_dict()))
  assert saved["optim"]["name"] == recipe.optim.name
