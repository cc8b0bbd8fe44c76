"""Analysis: tables and figures out of the store."""

from learnlab.analysis._curves import default_metric, plot_learning_curves, varying_columns
from learnlab.analysis._figures import (
    fit_power_law,
    plot_heatmap,
    plot_l2_vs_linf,
    plot_loss_vs_lr,
    plot_sharpness,
    plot_time_to_threshold,
)
from learnlab.analysis._report import report
from learnlab.analysis._summary import best_at_edge, format_summary, summary_metrics, summary_table
from learnlab.analysis._theory_figure import plot_theory
from learnlab.analysis._transfer import Transfer, TransferFit, transfer
from learnlab.analysis._transfer_figure import plot_transfer

__all__ = [
    "Transfer",
    "TransferFit",
    "best_at_edge",
    "default_metric",
    "fit_power_law",
    "format_summary",
    "plot_heatmap",
    "plot_l2_vs_linf",
    "plot_learning_curves",
    "plot_loss_vs_lr",
    "plot_sharpness",
    "plot_theory",
    "plot_time_to_threshold",
    "plot_transfer",
    "report",
    "summary_metrics",
    "summary_table",
    "transfer",
    "varying_columns",
]
