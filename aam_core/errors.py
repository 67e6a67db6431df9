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
