"""Everything a run leaves in ``--output-dir``, and TensorBoard logging.

Files are written only by the process that writes (rank 0), each to a temporary name and then
renamed, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch.utils.tensorboard import SummaryWriter

from aam_core.config import RunConfig, save_config
from aam_core.files import check_output_dir, write_atomic, write_text_atomic, write_tsv_atomic
from aam_core.training.plots import predicted_vs_actual_figure, save_predicted_vs_actual

RUN_FILES = (
    "config.json",
    "train_samples.txt",
    "val_samples.txt",
    "val_predictions.tsv",
    "metrics.json",
)
RUN_DIRS = ("checkpoints", "plots", "tensorboard")


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


class RunWriter:
    """Owns ``--output-dir``: config, sample lists, checkpoints, predictions, plots, TensorBoard."""

    def __init__(self, path: str | Path, *, force: bool):
        self.path = check_output_dir(path, force)
        self.force = force
        self._tb: SummaryWriter | None = None

    def start(self, config: RunConfig, train_ids, val_ids) -> None:
        """Create the directory (clearing a previous run's files under ``--force``)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if self.force:
            for name in RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            for name in RUN_DIRS:
                shutil.rmtree(self.path / name, ignore_errors=True)
        (self.path / "checkpoints").mkdir()
        (self.path / "plots").mkdir()
        write_atomic(self.path / "config.json", lambda tmp: save_config(config, tmp))
        write_text_atomic(self.path / "train_samples.txt", "\n".join(train_ids) + "\n")
        write_text_atomic(self.path / "val_samples.txt", "\n".join(val_ids) + "\n")
        self._tb = SummaryWriter(log_dir=str(self.path / "tensorboard"))

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            if value is not None and np.isfinite(value):
                self._tb.add_scalar(key, value, step)

    def log_histogram(self, tag: str, values: Any, step: int) -> None:
        self._tb.add_histogram(tag, values, step)

    def write_predictions(self, frame: pd.DataFrame, epoch: int, classifier: bool, title: str) -> None:
        """``val_predictions.tsv`` and, for regression, the plot PNG and TensorBoard figure."""
        write_tsv_atomic(frame.assign(epoch=epoch), self.path / "val_predictions.tsv")
        if classifier:
            return
        save_predicted_vs_actual(
            frame["actual"], frame["predicted"], self.path / "plots" / "predicted_vs_actual.png", title
        )
        figure = predicted_vs_actual_figure(frame["actual"], frame["predicted"], title)
        self._tb.add_figure("val/predicted_vs_actual", figure, epoch, close=True)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        """``metrics.json``; NaN (R² of a single sample, say) becomes null: strict JSON."""
        text = json.dumps(_json_safe(metrics), indent=2, allow_nan=False)
        write_text_atomic(self.path / "metrics.json", text + "\n")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
