"""The ``aam`` command: a thin click layer over the Python API.

Each command lives in its own module and only parses flags, calls one API function and prints.
Errors the user can fix (:class:`AAMError`) print one line and exit with status 2.
"""

from __future__ import annotations

import logging
import sys
import warnings

import click

from aam_core.errors import AAMError, one_line

#: The loggers the console shows at INFO: AAM's own, and plugins' that log under ``aam.<name>``.
LOGGERS = ("aam", "aam_core", "aam_plugins")

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}


def _format_warning(message, category, filename, lineno, line=None):  # noqa: ARG001 - warnings API
    return f"warning: {message}\n"


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="aam")
@click.option("-q", "--quiet", is_flag=True, help="Only print warnings and errors.")
def cli(quiet: bool) -> None:
    """AAM: sequence-aware deep learning on microbiome tables."""
    # Other libraries' loggers stay at WARNING: their INFO chatter (a backend probing for
    # hardware, say) would otherwise land between AAM's lines and before a one-line error.
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.INFO)


def _register_commands() -> None:
    from aam_core.cli import (
        baseline,
        cv,
        evaluate,
        explain,
        plugins,
        predict,
        pretrain,
        train,
        unifrac,
    )

    for module in (train, pretrain, predict, plugins, baseline, evaluate, cv, unifrac, explain):
        cli.add_command(module.command)


def _usage_error(exc: click.ClickException) -> str:
    """A click error (unknown flag, bad value, missing option) as one line naming the command's
    help, instead of click's usage block."""
    text = one_line(exc.format_message())
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None and "(see '" not in text:
        text += f" Run '{ctx.command_path} --help'."
    return text


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``aam`` script."""
    warnings.formatwarning = _format_warning
    _register_commands()
    try:
        cli.main(args=argv, prog_name="aam", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aam: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"aam: error: {_usage_error(exc)}", err=True)
        sys.exit(2)
    except AAMError as exc:
        click.echo(f"aam: error: {one_line(str(exc)) or type(exc).__name__}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("aam: interrupted", err=True)
        sys.exit(130)
