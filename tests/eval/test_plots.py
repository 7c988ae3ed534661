"""Tests of rl.eval.plots: PNG files are written, tables are formatted, bad inputs are rejected."""
import matplotlib
import numpy as np
import pytest
from matplotlib import image as mpl_image

from rl.eval import plots

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
  data = path.read_bytes()
  assert data[:8] == _PNG_MAGIC and len(data) > 2000
  pixels = mpl_image.imread(str(path))
  assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
  # Something was drawn: the image is not a single flat colour.
  assert np.ptp(pixels[..., :3]) > 0.5


def test_plot_curves_writes_png(tmp_path):
  backend = matplotlib.get_backend()
  steps = np.arange(50)
  path = plots.plot_curves(
      tmp_path / "sub" / "loss.png",
      {"simclr": (steps, np.exp(-steps / 10.0) + 0.1), "byol": (steps[:5], [3.0, 2.0, 1.5, 1.2, 1.0])},
      title="Loss", xlabel="step", ylabel="loss", logy=True)
  assert path == tmp_path / "sub" / "loss.png"
  _assert_png(path)
  assert matplotlib.get_backend() == backend  # no global backend switch


def test_plot_curves_rejects_bad_series(tmp_path):
  kwargs = dict(title="t", xlabel="x", ylabel="y")
  with pytest.raises(ValueError, match="series must hold"):
    plots.plot_curves(tmp_path / "a.png", {}, **kwargs)
  with pytest.raises(ValueError, match=r"series\['acc'\].*\(3,\) and \(2,\)"):
    plots.plot_curves(tmp_path / "a.png", {"acc": ([1, 2, 3], [0.1, 0.2])}, **kwargs)
  with pytest.raises(ValueError, match=r"series\['loss'\] has values <= 0"):
    plots.plot_curves(tmp_path / "a.png", {"loss": ([1, 2], [1.0, 0.0])}, logy=True, **kwargs)
  assert not (tmp_path / "a.png").exists()


def test_plot_curves_marks_points(tmp_path):
  kwargs = dict(title="t", xlabel="step", ylabel="accuracy")
  series = {"knn_20_accuracy": ([500, 1000, 1500, 2000], [0.6, 0.7, 0.75, 0.8])}
  plain = plots.plot_curves(tmp_path / "plain.png", series, **kwargs)
  marked = plots.plot_curves(tmp_path / "marked.png", series, points={"linear probe": ([2000], [0.9])}, **kwargs)
  _assert_png(marked)
  a, b = mpl_image.imread(str(plain)), mpl_image.imread(str(marked))
  assert a.shape != b.shape or np.abs(a - b).max() > 0.5  # the star (and its label) were drawn
  with pytest.raises(ValueError, match=r"points\['p'\] steps and values must be of the same non-zero length"):
    plots.plot_curves(tmp_path / "b.png", series, points={"p": ([1, 2], [0.5])}, **kwargs)


def test_write_plots_puts_the_final_linear_probe_beside_the_knn(tmp_path, monkeypatch):
  from rl.train import evaluate  # pylint: disable=import-outside-toplevel
  calls = {}
  monkeypatch.setattr(evaluate.rl_eval, "plot_curves",
                      lambda path, series, **kw: calls.setdefault(str(path).rsplit("/", 1)[-1], (series, kw)))
  metrics = [{"step": s, "kind": "train", "loss": 1.0 / s, "online_probe_accuracy": 0.1} for s in (1, 2)]
  metrics += [{"step": 2, "kind": "eval", "knn_20_accuracy": 0.4},
              {"step": 2, "kind": "final", "linear_probe_accuracy": 0.87, "knn_20_accuracy": 0.41}]
  evaluate.write_plots(tmp_path, metrics, None, title="t", tsne_points=0, seed=0)
  series, kw = calls["accuracy.png"]
  assert kw["points"] == {"linear probe (final report)": ([2], [0.87])}
  assert series["knn_20_accuracy"] == ([2], [0.4])


def test_plot_tsne_writes_png(tmp_path):
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(3), 25)
  features = rng.normal(size=(3, 60))[labels] * 5.0 + rng.normal(size=(75, 60))
  path = plots.plot_tsne(tmp_path / "tsne.png", features, labels, title="t-SNE", max_points=60,
                         max_iter=250)
  _assert_png(path)
  # Same seed, same figure.
  again = plots.plot_tsne(tmp_path / "again.png", features, labels, title="t-SNE", max_points=60,
                          max_iter=250)
  assert again.read_bytes() == path.read_bytes()


def test_plot_tsne_many_classes_and_string_labels(tmp_path):
  rng = np.random.default_rng(1)
  features = rng.normal(size=(50, 4))
  _assert_png(plots.plot_tsne(tmp_path / "many.png", features, np.arange(50) % 25, title="25",
                              max_iter=250))
  _assert_png(plots.plot_tsne(tmp_path / "str.png", features,
                              np.array(["cat", "dog"])[np.arange(50) % 2], title="pets", max_iter=250))


def test_plot_tsne_rejects_bad_inputs(tmp_path):
  rng = np.random.default_rng(2)
  features = rng.normal(size=(20, 3))
  with pytest.raises(ValueError, match=r"labels must have shape \[20\].*\(19,\)"):
    plots.plot_tsne(tmp_path / "x.png", features, np.zeros(19), title="x")
  with pytest.raises(ValueError, match=r"features must have shape \[n, d\].*\(20,\)"):
    plots.plot_tsne(tmp_path / "x.png", features[:, 0], np.zeros(20), title="x")
  features[0, 0] = np.nan
  with pytest.raises(ValueError, match="features must be numeric and finite"):
    plots.plot_tsne(tmp_path / "x.png", features, np.zeros(20), title="x")
  with pytest.raises(ValueError, match="max_iter"):
    plots.plot_tsne(tmp_path / "x.png", features[1:], np.zeros(19), title="x", max_iter=10)


def test_markdown_table():
  rows = [
      {"method": "simclr", "knn": 0.812345, "epochs": 100, "ok": True},
      {"method": "a|b", "linear": 1.5e-5, "knn": None},
      {"method": "nan", "knn": float("nan"), "linear": np.float32(0.25)},
  ]
  table = plots.markdown_table(rows, ["method", "knn", "linear", "epochs"])
  assert table.split("\n") == [
      "| method | knn | linear | epochs |",
      "| --- | --- | --- | --- |",
      "| simclr | 0.8123 | — | 100 |",
      r"| a\|b | — | 1.5e-05 | — |",
      "| nan | nan | 0.25 | — |",
  ]
  # Columns default to every key in first-seen order.
  assert plots.markdown_table(rows).split("\n")[0] == "| method | knn | epochs | ok | linear |"
  assert plots.markdown_table(rows[:1], ["knn"], float_format=".2f").split("\n")[2] == "| 0.81 |"
  assert plots.markdown_table([], ["a"]) == "| a |\n| --- |"
  with pytest.raises(ValueError, match="columns"):
    plots.markdown_table([])
