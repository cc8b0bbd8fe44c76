"""What a spec may name (losses, metrics), importable without torch: spec validation needs
only these names, so a bad spec is answered before torch is imported."""

from __future__ import annotations

__all__ = ["LOSS_NAMES", "METRICS", "default_metrics"]

LOSS_NAMES = ("mse", "cross_entropy", "hinge", "logistic")
METRICS = ("mse", "l1", "l2", "linf", "rel_mse", "rel_l1", "rel_l2", "rel_linf", "accuracy", "cross_entropy")


def default_metrics(loss: str, labels: str = "value") -> list[str]:
    """The metrics that match a loss and a task's labels (``value``, ``sign`` or ``onehot``).

    cross_entropy: cross_entropy and accuracy; hinge and logistic: accuracy and mse; any other
    loss: mse, and accuracy too when the labels are classes (+-1 or one-hot).
    """
    if loss == "cross_entropy":
        return ["cross_entropy", "accuracy"]
    if loss in ("hinge", "logistic"):
        return ["accuracy", "mse"]
    return ["mse", "accuracy"] if labels in ("sign", "onehot") else ["mse"]
