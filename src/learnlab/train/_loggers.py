"""Loggers: TensorBoard event files and Weights & Biases (offline) per run.

Both are optional extras, imported only when asked for.

A logger is only made when its run starts, and a finished run never starts again, so
files a logger finds for its run id come from an attempt that was interrupted (a crash,
a kill). They are removed, and a run resumed from a checkpoint replays the history it
restored (``History.replay``), so the logs end exactly as an uninterrupted run's: no
step twice, none missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["TensorBoardLogger", "WandbLogger", "make_loggers"]


class TensorBoardLogger:
    """Scalars to ``<out>/tensorboard/<run_id>/`` (``pip install 'learnlab[tensorboard]'``)."""

    def __init__(self, out: Path, run_id: str, config: dict):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise ImportError("train.loggers: tensorboard needs `pip install 'learnlab[tensorboard]'`") from exc
        log_dir = Path(out) / "tensorboard" / run_id
        shutil.rmtree(log_dir, ignore_errors=True)  # an interrupted attempt's events
        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.writer.add_text("config", f"```\n{config}\n```", 0)

    def log(self, step: int, name: str, value: float) -> None:
        self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """A W&B run in offline mode under ``<out>/wandb`` (never needs a login or network)."""

    def __init__(self, out: Path, run_id: str, config: dict, project: str = "learnlab"):
        try:
            import wandb
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise ImportError("train.loggers: wandb needs `pip install 'learnlab[wandb]'`") from exc
        directory = Path(out) / "wandb"
        directory.mkdir(parents=True, exist_ok=True)
        for earlier in directory.glob(f"wandb/offline-run-*-{run_id}"):  # an interrupted attempt's run
            shutil.rmtree(earlier, ignore_errors=True)
        settings = wandb.Settings(mode="offline", silent=True, console="off", x_disable_stats=True)
        self.run = wandb.init(
            project=project,
            id=run_id,
            name=run_id,
            dir=str(directory),
            config=config,
            mode="offline",
            settings=settings,
            reinit="create_new",
        )
        self._step: int | None = None
        self._row: dict[str, float] = {}

    def log(self, step: int, name: str, value: float) -> None:
        if self._step is not None and step != self._step:
            self._flush()
        self._step = step
        self._row[name] = value

    def _flush(self) -> None:
        if self._row:
            self.run.log(self._row, step=self._step)
        self._row = {}

    def close(self) -> None:
        self._flush()
        self.run.finish()


LOGGERS = {"tensorboard": TensorBoardLogger, "wandb": WandbLogger}


def make_loggers(names, out: Path | None, run_id: str, config: dict, project: str = "learnlab") -> list:
    """Loggers for one run; none without an output folder."""
    if out is None or not names:
        return []
    loggers = []
    for name in names:
        if name == "wandb":
            loggers.append(WandbLogger(out, run_id, config, project))
        else:
            loggers.append(LOGGERS[name](out, run_id, config))
    return loggers
