"""Evaluation of learned features: kNN, linear and few-shot probes, retrieval, geometry diagnostics,
plots and tables.

Works on arrays only; imports nothing from `rl.train`, `rl.methods` or `rl.data`.
"""
from rl.eval.fewshot import fewshot_accuracy
from rl.eval.incremental import class_subset_probe
from rl.eval.incremental import linear_cka
from rl.eval.incremental import old_new_accuracies
from rl.eval.incremental import stability_plasticity
from rl.eval.knn import knn_accuracy
from rl.eval.knn import knn_predict
from rl.eval.knn import knn_scores
from rl.eval.linear import DEFAULT_L2_GRID
from rl.eval.linear import fit_logistic_regression
from rl.eval.linear import linear_probe
from rl.eval.linear import LogisticRegressionFit
from rl.eval.metrics import alignment
from rl.eval.metrics import collapse_std
from rl.eval.metrics import effective_rank
from rl.eval.metrics import feature_report
from rl.eval.metrics import uniformity
from rl.eval.plots import markdown_table
from rl.eval.plots import plot_curves
from rl.eval.plots import plot_tsne
from rl.eval.retrieval import retrieval_metrics

__all__ = [
    "DEFAULT_L2_GRID",
    "LogisticRegressionFit",
    "alignment",
    "class_subset_probe",
    "collapse_std",
    "effective_rank",
    "feature_report",
    "fewshot_accuracy",
    "fit_logistic_regression",
    "knn_accuracy",
    "knn_predict",
    "knn_scores",
    "linear_cka",
    "linear_probe",
    "markdown_table",
    "old_new_accuracies",
    "plot_curves",
    "plot_tsne",
    "retrieval_metrics",
    "stability_plasticity",
    "uniformity",
]
