"""Errors a person can act on.

Every failure caused by the user's input is an :class:`AAMError`. The CLI prints its message on one
line and exits with status 2; the Python API lets it propagate.
"""


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
