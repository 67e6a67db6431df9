"""Everything a run leaves in ``--output-dir``, and TensorBoard logging.

Files are written only by the process that writes (rank 0), each to a temporary name and then
renamed, so a crash never leaves a half-written file behind. Every file is recorded in
``run_status.json`` (see :mod:`aam_core.outdir`), which also says whether the run is running,
completed, failed or interrupted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch.utils.tensorboard import SummaryWriter

from aam_core.checkpoint import save_checkpoint
from aam_core.config import RunConfig, save_config
from aam_core.files import (
    remove_stale_temporaries,
    write_atomic,
    write_text_atomic,
    write_tsv_atomic,
)
from aam_core.outdir import Manifest, clear_previous_run


def json_safe(value: Any) -> Any:
    """Plain JSON types; NaN and infinities become null (strict JSON)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


class RunWriter:
    """Owns ``--output-dir``: config, sample lists, checkpoints, tables, plots, TensorBoard."""

    def __init__(self, path: str | Path, *, command: str, resume: bool):
        self.path = Path(path)
        self.command = command
        self.resume = resume
        self.manifest: Manifest | None = None
        self._tb: SummaryWriter | None = None

    def start(self, config: RunConfig, splits: dict[str, list[str]], *, resume_epoch: int = 0) -> None:
        """Fresh run: clear what a previous run wrote here (the directory check allowed it), then
        write the config and the split. Resumed run: keep every file, drop temporaries a kill
        left, and continue TensorBoard from ``resume_epoch``."""
        self.path.mkdir(parents=True, exist_ok=True)
        if self.resume:
            remove_stale_temporaries(self.path)
        else:
            clear_previous_run(self.path)
        self.manifest = Manifest(self.path, self.command, resume=self.resume)
        self.manifest.save()
        (self.path / "checkpoints").mkdir(exist_ok=True)
        (self.path / "plots").mkdir(exist_ok=True)
        if not self.resume:
            for name, ids in splits.items():
                self.write_text(f"{name}_samples.txt", "\n".join(ids) + "\n")
        # resumed: a changed --epochs or --patience is part of the run's config from now on
        self.write(self.path / "config.json", lambda tmp: save_config(config, tmp))
        purge = resume_epoch if self.resume and resume_epoch else None
        self._tb = SummaryWriter(log_dir=str(self.path / "tensorboard"), purge_step=purge)

    # -- files ----------------------------------------------------------------------------------
    def write(self, path: Path, write) -> Path:
        written = write_atomic(path, write)
        self.manifest.add(written)
        return written

    def write_text(self, name: str, text: str) -> Path:
        written = write_text_atomic(self.path / name, text)
        self.manifest.add(written)
        return written

    def write_table(self, name: str, frame: pd.DataFrame) -> Path:
        written = write_tsv_atomic(frame, self.path / name)
        self.manifest.add(written)
        return written

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        """``metrics.json``; NaN (R² of a single sample, say) becomes null: strict JSON."""
        return self.write_text("metrics.json", json.dumps(json_safe(metrics), indent=2, allow_nan=False) + "\n")

    def record(self, path: Path) -> None:
        """A file written by another function (a plot) belongs to the run."""
        self.manifest.add(path)

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def save_checkpoint(self, name: str, payload: dict[str, Any]) -> Path:
        written = save_checkpoint(self.checkpoint_dir / name, payload)
        self.manifest.add(written)
        return written

    # -- TensorBoard ----------------------------------------------------------------------------
    def log_scalars(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            if value is not None and np.isfinite(value):
                self._tb.add_scalar(key, value, step)

    def log_histogram(self, tag: str, values: Any, step: int) -> None:
        self._tb.add_histogram(tag, values, step)

    def log_figure(self, tag: str, figure: Any, step: int) -> None:
        self._tb.add_figure(tag, figure, step, close=True)

    # -- the end --------------------------------------------------------------------------------
    def finish(self, status: str, message: str | None = None) -> None:
        """Close TensorBoard and record the run's final state."""
        self.close()
        if self.manifest is not None:
            self.manifest.add(*sorted((self.path / "tensorboard").glob("events.out.tfevents.*")))
            self.manifest.set_status(status, message)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
