"""Who owns an output directory, and what ``--force`` may delete there.

Every run records what it wrote in ``run_status.json`` beside its files, with its state:
``running``, ``completed``, ``failed`` or ``interrupted``. That file decides what happens when a
command meets the directory again:

- empty or absent: the run starts;
- a failed run that left no checkpoint holds nothing useful: the new run replaces its files;
- an interrupted or failed run with ``checkpoints/last.pt``: refused, naming ``--resume-from``;
- any other content: refused unless ``--force``, which deletes only the files a run listed (for
  a directory written before the manifest existed, only AAM's own file names) — never the user's.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

from aam_core.errors import ConfigError
from aam_core.files import write_text_atomic

STATUS_FILE = "run_status.json"

#: What runs wrote before ``run_status.json`` existed (``--force`` on such a directory).
LEGACY_FILES = (
    "config.json",
    "train_samples.txt",
    "val_samples.txt",
    "val_predictions.tsv",
    "metrics.json",
    "checkpoints/best.pt",
    "checkpoints/last.pt",
    "plots/predicted_vs_actual.png",
)
LEGACY_GLOBS = ("tensorboard/events.out.tfevents.*",)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_status(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``run_status.json`` of a directory, or None (absent or unreadable)."""
    try:
        data = json.loads((Path(path) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _has_useful_files(path: Path) -> bool:
    return (path / "checkpoints" / "last.pt").is_file() or (path / "checkpoints" / "best.pt").is_file()


def check_output_dir(path: str | os.PathLike, force: bool, flag: str = "--output-dir") -> Path:
    """Refuse a directory another run (or anything else) occupies, unless ``force``; touches
    nothing. A failed run without checkpoints does not block a new one."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} exists and is not a directory.")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ConfigError(f"{flag} {path} cannot be created: {blocking} is a file, not a directory.")
    if not path.is_dir() or not any(path.iterdir()) or force:
        return path
    status = read_status(path)
    if status is not None and status.get("status") in ("failed", "interrupted", "running"):
        if not _has_useful_files(path) and status.get("status") == "failed":
            return path
        if (path / "checkpoints" / "last.pt").is_file():
            raise ConfigError(
                f"{flag} {path} holds a {status.get('status')} {status.get('command', 'run')}; "
                f"continue it with --resume-from {path / 'checkpoints' / 'last.pt'}, or pass "
                "--force to start over."
            )
    what = "a run (config.json)" if (path / "config.json").exists() else "files"
    raise ConfigError(
        f"{flag} {path} already holds {what}; pass --force to overwrite it or choose another "
        "directory."
    )


def owned_files(path: str | os.PathLike) -> list[Path]:
    """The files a previous run wrote in ``path`` (from its manifest, else AAM's own names)."""
    path = Path(path)
    status = read_status(path)
    if status is not None and isinstance(status.get("files"), list):
        names = [str(n) for n in status["files"]]
    else:
        names = [n for n in LEGACY_FILES if (path / n).exists()]
        names += [str(p.relative_to(path)) for g in LEGACY_GLOBS for p in path.glob(g)]
    out = []
    root = path.resolve()
    for name in names:
        target = (path / name).resolve()
        if root in target.parents and target.is_file():  # never outside the directory
            out.append(path / name)
    return out


def clear_previous_run(path: str | os.PathLike) -> int:
    """Delete what a previous run wrote (and the folders it leaves empty); returns the count."""
    path = Path(path)
    files = owned_files(path)
    for f in files:
        f.unlink(missing_ok=True)
    for folder in sorted({f.parent for f in files}, key=lambda p: len(p.parts), reverse=True):
        if folder != path and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    (path / STATUS_FILE).unlink(missing_ok=True)
    return len(files)


class Manifest:
    """``run_status.json``: the command, its state and every file it wrote (relative paths)."""

    def __init__(self, path: str | os.PathLike, command: str, *, resume: bool = False):
        self.path = Path(path)
        previous = read_status(self.path) if resume else None
        self.files: list[str] = list(previous.get("files", [])) if previous else []
        self.data: dict[str, Any] = {
            "command": command,
            "status": "running",
            "started": previous.get("started", _now()) if previous else _now(),
            "resumed": [*previous.get("resumed", []), _now()] if previous else [],
            "message": None,
        }

    def add(self, *paths: str | os.PathLike) -> None:
        """Record files (absolute or relative to the directory) as written by this run."""
        changed = False
        for p in paths:
            rel = os.path.relpath(Path(p), self.path) if Path(p).is_absolute() else str(p)
            if rel not in self.files:
                self.files.append(rel)
                changed = True
        if changed:
            self.save()

    def set_status(self, status: str, message: str | None = None) -> None:
        self.data.update(status=status, message=message, updated=_now())
        self.save()

    def save(self) -> None:
        self.data["updated"] = _now()
        payload = {**self.data, "files": sorted(set(self.files))}
        write_text_atomic(self.path / STATUS_FILE, json.dumps(payload, indent=2) + "\n")

