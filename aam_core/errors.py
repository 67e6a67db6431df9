"""Errors a person can act on.

Every failure caused by the user's input is an :class:`AAMError`. The CLI prints its message on one
line and exits with status 2; the Python API lets it propagate.
"""


def one_line(text: str) -> str:
    """``text`` folded onto one line: every run of whitespace, line breaks included, becomes one
    space, so a library's multi-paragraph message survives whole in a one-line error."""
    return " ".join(str(text).split())


def library_message(exc: BaseException) -> str:
    """The whole message of an exception raised by a library (biom-format, scikit-bio, pandas),
    on one line; its type name when it has none."""
    text = one_line(str(exc))
    if isinstance(exc, KeyError) and text.startswith("'") and text.endswith("'"):
        text = f"no {text} entry"  # str(KeyError('columns')) is just the quoted key
    return text or type(exc).__name__


class AAMError(Exception):
    """Base class for every error AAM raises on bad input or bad configuration."""

    exit_code = 2


class ConfigError(AAMError):
    """A flag, option or config value is invalid or conflicts with another."""


class DataError(AAMError):
    """A table, metadata file, FASTA file or sample list cannot be used."""


class PluginError(AAMError):
    """A plugin is unknown, duplicated or broken."""


class CheckpointError(AAMError):
    """A checkpoint cannot be read or does not match what is asked of it."""


class TrainingError(AAMError):
    """Training diverged or cannot continue (for example a non-finite loss)."""


class RunInterrupted(AAMError):
    """SIGINT or SIGTERM stopped a run after it saved ``last.pt``; exit status 130 or 143."""

    def __init__(self, signum: int, epoch: int, batch: int | None):
        import signal

        self.signum, self.epoch, self.batch = signum, epoch, batch
        self.exit_code = 128 + int(signum)
        where = f"epoch {epoch}" + (f", batch {batch}" if batch is not None else " (end)")
        super().__init__(
            f"Interrupted by {signal.Signals(signum).name} at {where}; checkpoints/last.pt is saved: "
            "continue with --resume-from <output-dir>/checkpoints/last.pt."
        )
