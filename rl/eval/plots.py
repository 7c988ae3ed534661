"""Figures and tables for experiment reports: training curves, t-SNE maps, Markdown tables.

Figures are drawn on a `matplotlib.figure.Figure` with the Agg canvas rather than through `pyplot`, so
no global backend is switched, nothing leaks between calls, and it works on headless machines. Files are
written through `etils.epath`, so `path` may be local or `gs://...`.
"""
from __future__ import annotations

import io
import math
from typing import Any, Mapping, Sequence

import matplotlib
import numpy as np
from etils import epath
from numpy.typing import ArrayLike
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MISSING = "—"


def _save_png(fig: Figure, path) -> epath.Path:
  FigureCanvasAgg(fig)
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(buf.getvalue())
  return path


def plot_curves(path: epath.PathLike, series: Mapping[str, tuple[ArrayLike, ArrayLike]], *,
                title: str, xlabel: str, ylabel: str, logy: bool = False,
                points: Mapping[str, tuple[ArrayLike, ArrayLike]] | None = None) -> epath.Path:
  """Plots one line per named series (e.g. loss or accuracy against step) to a PNG file.

  Example:
    >>> import tempfile; folder = tempfile.mkdtemp()
    >>> path = plot_curves(folder + "/loss.png", {"simclr": ([0, 1, 2], [3.0, 2.0, 1.5])}, title="Loss",
    ...                    xlabel="step", ylabel="loss", logy=True)
    >>> path.name, path.exists()
    ('loss.png', True)

  Args:
    path: destination PNG path (local or any `etils.epath` path); parent folders are created.
    series: `{name: (steps, values)}`, each a pair of 1-D sequences of the same length >= 1.
    title: figure title.
    xlabel: x-axis label.
    ylabel: y-axis label.
    logy: log-scale y axis; every value must then be positive.
    points: `{name: (steps, values)}` drawn as large labelled markers rather than lines (e.g. the final linear
      probe beside the kNN curve).

  Returns:
    The path written, as an `epath.Path`.

  Raises:
    ValueError: naming the series, if it is malformed or holds values <= 0 with `logy`.
  """
  if not series and not points:
    raise ValueError("series must hold at least one (steps, values) pair; got an empty mapping.")
  fig = Figure(figsize=(6.4, 4.2))
  ax = fig.add_subplot()
  for name, pair in series.items():
    if len(pair) != 2:
      raise ValueError(f"series[{name!r}] must be a (steps, values) pair; got {len(pair)} items.")
    steps, values = (np.asarray(a, dtype=np.float64) for a in pair)
    if steps.ndim != 1 or steps.shape != values.shape or steps.size == 0:
      raise ValueError(
          f"series[{name!r}] steps and values must be 1-D of the same non-zero length; got shapes "
          f"{steps.shape} and {values.shape}.")
    if logy and np.any(values <= 0):
      raise ValueError(f"series[{name!r}] has values <= 0, which logy=True cannot show.")
    ax.plot(steps, values, label=str(name), marker="." if steps.size < 30 else None)
  for name, (steps, values) in (points or {}).items():
    steps, values = np.asarray(steps, np.float64).ravel(), np.asarray(values, np.float64).ravel()
    if steps.shape != values.shape or steps.size == 0:
      raise ValueError(f"points[{name!r}] steps and values must be of the same non-zero length; got shapes "
                       f"{steps.shape} and {values.shape}.")
    ax.scatter(steps, values, marker="*", s=160, zorder=3, label=str(name))
    for x, y in zip(steps, values):
      ax.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(-8, 8), ha="right")
  if logy:
    ax.set_yscale("log")
  ax.set_title(title)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.grid(True, alpha=0.3)
  ax.legend()
  return _save_png(fig, path)


def plot_tsne(path: epath.PathLike, features: ArrayLike, labels: ArrayLike, *, title: str,
              max_points: int = 2000, seed: int = 0, max_iter: int = 1000) -> epath.Path:
  """Embeds features in 2-D with t-SNE and saves a scatter plot coloured by class.

  A seeded subset of `max_points` rows is used when there are more (t-SNE is O(n log n) with a large
  constant). Features wider than 50 dimensions are first reduced to 50 by PCA, as recommended by
  van der Maaten & Hinton 2008 and scikit-learn. Perplexity is 30, lowered to `(n - 1) / 3` for tiny n.
  Up to 20 classes get a legend; more get a colour bar.

  Example:
    >>> import tempfile; folder = tempfile.mkdtemp()
    >>> z = np.random.default_rng(0).normal(size=(12, 4))
    >>> plot_tsne(folder + "/tsne.png", z, np.arange(12) % 3, title="t-SNE", max_iter=250).name
    'tsne.png'

  Args:
    path: destination PNG path; parent folders are created.
    features: `[n, d]` features, n >= 5.
    labels: `[n]` class labels (ints or strings).
    title: figure title.
    max_points: maximum number of points embedded.
    seed: seed of the subset, PCA and t-SNE, so the figure is reproducible.
    max_iter: t-SNE optimisation steps (scikit-learn's default 1000; at least 250).

  Returns:
    The path written, as an `epath.Path`.

  Raises:
    ValueError: naming the argument, on wrong shapes, NaN/inf features, `max_points < 5` or
      `max_iter < 250`.
  """
  # Imported here: scikit-learn's manifold module is slow to import and only this function needs it.
  from sklearn.decomposition import PCA
  from sklearn.manifold import TSNE

  features = np.asarray(features)
  labels = np.asarray(labels)
  if features.ndim != 2 or features.shape[0] < 5:
    raise ValueError(f"features must have shape [n, d] with n >= 5; got shape {features.shape}.")
  if not np.issubdtype(features.dtype, np.number) or not np.all(np.isfinite(features)):
    raise ValueError("features must be numeric and finite (no NaN or inf).")
  if labels.shape != (features.shape[0],):
    raise ValueError(
        f"labels must have shape [{features.shape[0]}] to match features; got shape {labels.shape}.")
  if max_points < 5:
    raise ValueError(f"max_points must be at least 5; got {max_points!r}.")
  if max_iter < 250:
    raise ValueError(f"max_iter must be at least 250 (scikit-learn's minimum); got {max_iter!r}.")
  rng = np.random.default_rng(seed)
  if features.shape[0] > max_points:
    keep = np.sort(rng.choice(features.shape[0], max_points, replace=False))
    features, labels = features[keep], labels[keep]
  x = features.astype(np.float64)
  if x.shape[1] > 50:
    x = PCA(n_components=min(50, x.shape[0]), random_state=seed).fit_transform(x)
  n = x.shape[0]
  perplexity = min(30.0, (n - 1) / 3.0)
  xy = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
            max_iter=max_iter, random_state=seed).fit_transform(x)

  classes, class_idx = np.unique(labels, return_inverse=True)
  fig = Figure(figsize=(6.4, 6.0))
  ax = fig.add_subplot()
  if len(classes) <= 20:
    cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
    for i, c in enumerate(classes):
      sel = class_idx == i
      ax.scatter(xy[sel, 0], xy[sel, 1], s=6, color=cmap(i), label=str(c))
    ax.legend(markerscale=2, fontsize="small", loc="best", title="class")
  else:
    sc = ax.scatter(xy[:, 0], xy[:, 1], s=6, c=class_idx, cmap="turbo")
    fig.colorbar(sc, ax=ax, label="class index")
  ax.set_title(title)
  ax.set_xticks([])
  ax.set_yticks([])
  return _save_png(fig, path)


def _format_cell(value: Any, float_format: str) -> str:
  if value is None:
    return MISSING
  if isinstance(value, (bool, np.bool_)):
    text = str(bool(value))
  elif isinstance(value, (float, np.floating)):
    text = "nan" if math.isnan(value) else format(float(value), float_format)
  elif isinstance(value, (int, np.integer)):
    text = str(int(value))
  else:
    text = str(value)
  # A raw '|' would split the cell; newlines would end the row.
  return text.replace("|", r"\|").replace("\n", " ")


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, *,
                   float_format: str = ".4g") -> str:
  """Formats result rows as a GitHub-flavoured Markdown table.

  Example:
    >>> print(markdown_table([{"method": "simclr", "knn": 0.81234}], ["method", "knn", "linear"]))
    | method | knn | linear |
    | --- | --- | --- |
    | simclr | 0.8123 | — |

  Args:
    rows: one mapping per table row.
    columns: column names in order; `None` takes the keys of all rows in first-seen order.
    float_format: `format()` spec of float cells (4 significant digits by default).

  Returns:
    The table, one line per row, without a trailing newline. A key absent from a row, or `None`, is '—'.

  Raises:
    ValueError: if there are no columns.
  """
  if columns is None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
  columns = list(columns)
  if not columns:
    raise ValueError("columns must name at least one column; got none (and rows give no keys).")
  lines = [
      "| " + " | ".join(_format_cell(c, float_format) for c in columns) + " |",
      "| " + " | ".join("---" for _ in columns) + " |",
  ]
  for row in rows:
    lines.append("| " + " | ".join(_format_cell(row.get(c), float_format) for c in columns) + " |")
  return "\n".join(lines)
