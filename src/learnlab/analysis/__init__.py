"""Analysis: tables and figures out of the store."""

from learnlab.analysis._curves import plot_learning_curves, varying_columns
from learnlab.analysis._summary import summary_table

__all__ = ["plot_learning_curves", "summary_table", "varying_columns"]
