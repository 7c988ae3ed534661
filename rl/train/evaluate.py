"""Evaluation of a representation during and after training: features of whole splits, kNN, the linear probe,
feature metrics, the two baselines (raw inputs; a randomly initialised encoder), plots and `report.md`."""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

from etils import epath
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from rl import data
from rl import eval as rl_eval


@dataclasses.dataclass
class Split:
  features: np.ndarray  # [n, f] float32
  labels: np.ndarray  # [n] int
  inputs: np.ndarray | None = None  # [n, ...] raw inputs, kept for the raw-input baseline


def _to_host(x: jax.Array) -> np.ndarray:
  if jax.process_count() > 1:
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))


def extract(embed: Callable, params, method_state, config: ml_collections.ConfigDict, split: str, *,
            sharding, keep_inputs: bool = False, max_examples: int | None = None) -> Split:
  """Embeds every example of `split` once (padding is masked out), in the split's order.

  Example:
    >>> from configs import simclr as simclr_config
    >>> from rl.train import mesh as mesh_lib, step as step_lib
    >>> config = simclr_config.get_config("smoke")
    >>> method = rl.methods.get_method(config)
    >>> params, method_state = method.init(jax.random.key(0), np.zeros((2, 40), np.float32))
    >>> embed = step_lib.make_embed_fn(method, rl.data.augment.get_recipe("none_signal"), out_size=None)
    >>> sharding = mesh_lib.batch_sharding(mesh_lib.make_mesh())
    >>> test = extract(embed, params, method_state, config, "test", sharding=sharding, max_examples=100)
    >>> test.features.shape, test.labels.shape, test.inputs
    ((100, 16), (100,), None)

  Args:
    embed: `embed(params, method_state, x) -> [b, f]` on global, batch-sharded arrays
      (`rl.train.step.make_embed_fn`).
    params: the method's parameters.
    method_state: the method's state.
    config: the run's config (`dataset`, `data_dir`, `image_size`, `eval.batch_size`).
    split: the TFDS split, e.g. 'test'.
    sharding: how each batch is laid out (`rl.train.mesh.batch_sharding`).
    keep_inputs: also return the raw inputs (for the raw-input baseline and augmented views).
    max_examples: stop after this many examples (the first ones, in the split's order); None for all.

  Returns:
    A `Split` of float32 features `[n, f]`, integer labels `[n]` and, with `keep_inputs`, the inputs `[n, ...]`.
  """
  feats, labels, inputs = [], [], []
  seen = 0
  for batch in data.eval_batches(config.dataset, split, global_batch_size=config.eval.batch_size,
                                 sharding=sharding, data_dir=config.data_dir, image_size=config.image_size):
    mask = _to_host(batch["mask"]).astype(bool)
    feats.append(_to_host(embed(params, method_state, batch["x"])).astype(np.float32)[mask])
    labels.append(_to_host(batch["label"])[mask])
    if keep_inputs:
      inputs.append(_to_host(batch["x"])[mask])
    seen += int(mask.sum())
    if max_examples is not None and seen >= max_examples:
      break
  cut = slice(0, max_examples)
  return Split(np.concatenate(feats)[cut], np.concatenate(labels)[cut],
               np.concatenate(inputs)[cut] if keep_inputs else None)


def knn_eval(train: Split, test: Split, config: ml_collections.ConfigDict, num_classes: int) -> dict:
  """kNN accuracy of `test` against `train` for each k of `config.eval.knn_ks` (`rl.eval.knn_accuracy`).

  Example:
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")
    >>> config.eval.knn_ks
    (5, 20)
    >>> rng = np.random.RandomState(0)
    >>> def split(n):  # two classes, far apart in 8-D
    ...   labels = np.arange(n) % 2
    ...   return Split(rng.randn(n, 8).astype(np.float32) + 4.0 * labels[:, None], labels)
    >>> knn_eval(split(100), split(40), config, num_classes=2)
    {'knn_5_accuracy': 0.975, 'knn_20_accuracy': 0.925}
  """
  accs = rl_eval.knn_accuracy(train.features, train.labels, test.features, test.labels, num_classes=num_classes,
                              ks=tuple(config.eval.knn_ks), temperature=config.eval.knn_temperature)
  return {f"knn_{k}_accuracy": float(v) for k, v in accs.items()}


DEFAULT_FEWSHOT_SHOTS = (1, 5, 10)


def retrieval_eval(test: Split) -> dict:
  """Recall@1 and mAP of the test set searched against itself, each query left out of its own ranking.

  Example:
    >>> rng = np.random.RandomState(0)
    >>> labels = np.arange(40) % 2
    >>> test = Split(rng.randn(40, 8).astype(np.float32) + 4.0 * labels[:, None], labels)
    >>> {k: round(v, 3) for k, v in retrieval_eval(test).items()}
    {'recall_at_1': 0.9, 'map': 0.826}
    >>> retrieval_eval(Split(test.features, np.arange(40)))  # every label unique: no query has a match
    {}
  """
  if len(test.labels) < 2 or len(np.unique(test.labels)) == len(test.labels):
    return {}  # no query has a same-label neighbour: retrieval is undefined
  out = rl_eval.retrieval_metrics(test.features, test.labels, test.features, test.labels, ks=(1,),
                                  exclude_self=True)
  return {"recall_at_1": float(out["recall_at_1"]), "map": float(out["map"])}


def fewshot_eval(train: Split, test: Split, config: ml_collections.ConfigDict, num_classes: int) -> dict:
  """big_vision's few-shot ridge regression, for the shot counts that every class of `train` can supply.

  Example:
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")
    >>> rng = np.random.RandomState(0)
    >>> def split(n):  # two classes, far apart in 8-D
    ...   labels = np.arange(n) % 2
    ...   return Split(rng.randn(n, 8).astype(np.float32) + 4.0 * labels[:, None], labels)
    >>> fewshot_eval(split(12), split(40), config, num_classes=2)  # 6 examples per class: 1 and 5 shots, not 10
    {'fewshot_1': 1.0, 'fewshot_5': 1.0}
  """
  shots = tuple(config.eval.get("fewshot_shots", DEFAULT_FEWSHOT_SHOTS))
  fewest = int(np.bincount(train.labels, minlength=num_classes).min())
  shots = tuple(s for s in shots if s <= fewest)  # a capped train set may lack some classes
  if not shots:
    return {}
  accs = rl_eval.fewshot_accuracy(train.features, train.labels, test.features, test.labels, shots=shots,
                                  seed=config.seed, num_classes=num_classes)
  return {f"fewshot_{s}": float(v) for s, v in accs.items()}


def full_eval(train: Split, test: Split, config: ml_collections.ConfigDict, num_classes: int,
              *, view_pair: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
  """kNN, the linear probe, few-shot accuracy, retrieval and feature metrics of one representation.

  Example:
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")
    >>> rng = np.random.RandomState(0)
    >>> def split(n):  # two classes, far apart in 8-D
    ...   labels = np.arange(n) % 2
    ...   return Split(rng.randn(n, 8).astype(np.float32) + 4.0 * labels[:, None], labels)
    >>> row = full_eval(split(100), split(40), config, num_classes=2)
    >>> {k: round(v, 2) for k, v in row.items() if k != "eval_seconds"}
    {'knn_5_accuracy': 0.97,
     'knn_20_accuracy': 0.93,
     'linear_probe_accuracy': 1.0,
     'linear_probe_l2': 1.0,
     'fewshot_1': 1.0,
     'fewshot_5': 1.0,
     'fewshot_10': 1.0,
     'recall_at_1': 0.93,
     'map': 0.82}
  """
  t0 = time.time()
  row = knn_eval(train, test, config, num_classes)
  probe = rl_eval.linear_probe(train.features, train.labels, test.features, test.labels, num_classes=num_classes,
                               seed=config.seed)
  row["linear_probe_accuracy"] = float(probe["test_accuracy"])
  row["linear_probe_l2"] = float(probe["l2"])
  row.update(fewshot_eval(train, test, config, num_classes))
  row.update(retrieval_eval(test))
  if view_pair is not None:
    report = rl_eval.feature_report(*view_pair)
    row.update({k: float(v) for k, v in report.items()})
  row["eval_seconds"] = time.time() - t0
  return row


def raw_input_baseline(train: Split, test: Split, config: ml_collections.ConfigDict, num_classes: int) -> dict:
  """Logistic regression (the same probe) on the flattened raw inputs.

  Example:
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")
    >>> rng = np.random.RandomState(0)
    >>> def split(n):  # the class is the sign of the signal's mean
    ...   labels = np.arange(n) % 2
    ...   inputs = rng.randn(n, 40).astype(np.float32) + (2.0 * labels[:, None] - 1.0)
    ...   return Split(np.zeros((n, 1), np.float32), labels, inputs=inputs)
    >>> row = raw_input_baseline(split(100), split(40), config, num_classes=2)
    >>> row["linear_probe_accuracy"], row["knn_5_accuracy"]
    (1.0, 1.0)
  """
  tr = Split(train.inputs.reshape(len(train.inputs), -1).astype(np.float32), train.labels)
  te = Split(test.inputs.reshape(len(test.inputs), -1).astype(np.float32), test.labels)
  return full_eval(tr, te, config, num_classes)


# The report's columns, in order; "knn" stands for one column per k of `config.eval.knn_ks` (knn_<k>_accuracy).
REPORT_COLUMNS = ("representation", "linear_probe_accuracy", "knn", "fewshot_1", "fewshot_5", "fewshot_10",
                  "recall_at_1", "map", "alignment", "uniformity", "effective_rank", "collapse_std")


def _report_columns(config: ml_collections.ConfigDict) -> list[str]:
  knn = [f"knn_{k}_accuracy" for k in config.eval.knn_ks]
  return [c for name in REPORT_COLUMNS for c in (knn if name == "knn" else [name])]


def _evaluated_on(config: ml_collections.ConfigDict) -> str:
  percent = config.eval.get("validation_percent", 0)
  if percent:
    return (f"Accuracies are on the validation split (the last {percent}% of the training split; pretraining and "
            f"the probes used the rest; the test split was not read)")
  return "Accuracies are on the test split"


def write_report(workdir: epath.PathLike, rows: list[dict], *, config: ml_collections.ConfigDict,
                 train_seconds: float, steps: int) -> str:
  """Writes `report.md` (the final table) and returns the table.

  Example:
    >>> import tempfile, os
    >>> from configs import simclr as simclr_config
    >>> config = simclr_config.get_config("smoke")
    >>> workdir = tempfile.mkdtemp()
    >>> rows = [{"representation": "simclr (trained)", "linear_probe_accuracy": 0.861, "knn_20_accuracy": 0.8},
    ...     {"representation": "raw inputs (baseline)", "linear_probe_accuracy": 0.612, "knn_20_accuracy": 0.55}]
    >>> print(write_report(workdir, rows, config=config, train_seconds=95.0, steps=6))
    | representation | linear_probe_accuracy | knn_20_accuracy |
    | --- | --- | --- |
    | simclr (trained) | 0.861 | 0.8 |
    | raw inputs (baseline) | 0.612 | 0.55 |
    >>> os.listdir(workdir)
    ['report.md']
  """
  columns = [c for c in _report_columns(config) if any(c in r for r in rows)]
  table = rl_eval.markdown_table(rows, columns)
  text = (f"# {config.method} on {config.dataset}\n\n"
          f"{steps} steps at batch {config.batch_size} on {jax.device_count()} device(s) "
          f"({jax.devices()[0].platform}), {train_seconds:.0f} s of training.\n\n{table}\n\n"
          + _evaluated_on(config) +
          ": a linear probe (multinomial logistic regression on standardised frozen "
          "features) and kNN (cosine, temperature-weighted votes); fewshot_s is big_vision's few-shot ridge "
          "regression on s train examples per class (mean of 3 draws); recall_at_1 and map are retrieval of the "
          "test set against itself (cosine, each query left out; Unicom's protocol). Alignment and uniformity "
          "(Wang & Isola 2020) are on two augmented views of the test set; effective rank is RankMe; collapse_std is "
          "the mean per-dimension std of L2-normalised features.\n\n"
          "![training loss](loss.png)\n![accuracy](accuracy.png)\n"
          + ("![t-SNE](tsne.png)\n" if config.eval.tsne_points > 0 else ""))
  (epath.Path(workdir) / "report.md").write_text(text)
  return table


def write_plots(workdir: epath.PathLike, metrics: list[dict], test: Split, *, title: str, tsne_points: int,
                seed: int) -> None:
  """Writes `loss.png` and `accuracy.png` (from the `metrics.jsonl` lines) and `tsne.png` (if `tsne_points`).

  `accuracy.png` shows the kNN accuracies of the evaluations during training, the online probe on the training
  batches, and the final report's linear probe as a labelled star at the last step.

  Example:
    >>> import tempfile, os
    >>> workdir = tempfile.mkdtemp()
    >>> metrics = [{"step": s, "kind": "train", "loss": 5.0 / s, "online_probe_accuracy": 0.1 * s} for s in (1, 2, 3)]
    >>> metrics.append({"step": 3, "kind": "eval", "knn_20_accuracy": 0.4})
    >>> test = Split(np.zeros((40, 8), np.float32), np.arange(40) % 2)  # only the t-SNE plot reads it
    >>> write_plots(workdir, metrics, test, title="simclr on mnist1d", tsne_points=0, seed=0)  # 0: no t-SNE
    >>> sorted(os.listdir(workdir))
    ['accuracy.png', 'loss.png']
  """
  workdir = epath.Path(workdir)
  train = [m for m in metrics if m["kind"] == "train"]
  evals = [m for m in metrics if m["kind"] == "eval"]
  if train:
    rl_eval.plot_curves(str(workdir / "loss.png"), {"training loss": ([m["step"] for m in train],
                                                                      [m["loss"] for m in train])},
                        title=f"{title}: training loss", xlabel="step", ylabel="loss")
  series = {}
  for key in sorted({k for m in evals for k in m if k.endswith("accuracy")}):
    pts = [(m["step"], m[key]) for m in evals if key in m]
    series[key] = ([p[0] for p in pts], [p[1] for p in pts])
  if train:
    series["online_probe_accuracy (train batches)"] = ([m["step"] for m in train],
                                                       [m["online_probe_accuracy"] for m in train])
  finals = [m for m in metrics if m["kind"] == "final" and "linear_probe_accuracy" in m]
  points = ({"linear probe (final report)": ([finals[-1]["step"]], [finals[-1]["linear_probe_accuracy"]])}
            if finals else None)
  if series or points:
    rl_eval.plot_curves(str(workdir / "accuracy.png"), series, title=f"{title}: evaluation accuracy",
                        xlabel="step", ylabel="accuracy", points=points)
  if tsne_points > 0:
    rl_eval.plot_tsne(str(workdir / "tsne.png"), test.features, test.labels,
                      title=f"{title}: t-SNE of test embeddings", max_points=tsne_points, seed=seed)
