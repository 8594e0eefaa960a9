"""The `toolkit` command line: parses options, calls one library function, prints the result.

Only this package (toolkit/cli/) imports click and rich. Library errors become one red line and exit status 1;
`--debug` shows the traceback instead.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click
from rich.console import Console
from rich.table import Table

from toolkit.errors import first_line

# Piped into a file or `tee`, rich would wrap every table at 80 columns; keep the bench table on one line per row.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)


def _known_errors() -> tuple[type[BaseException], ...]:
    from runtime.errors import RuntimeToolkitError
    from toolkit.errors import ToolkitError

    errors: list[type[BaseException]] = [ToolkitError, RuntimeToolkitError]
    from benchmarks.errors import BenchmarkError
    from exporters.errors import ExportError

    errors += [ExportError, BenchmarkError]
    return tuple(errors)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the toolkit's own errors into one line and a non-zero exit (traceback with --debug)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise  # usage errors: the group prints them as one line
        except _known_errors() as exc:
            if debug:
                raise
            _fail(first_line(exc))
        except Exception as exc:  # a bug or an OS error: still one line, the traceback under --debug
            if debug:
                raise
            _fail(f"{type(exc).__name__}: {first_line(exc)} (run with --debug for the traceback)")

    return wrapper


def _fail(message: str, status: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    sys.exit(status)


class _OneLineErrors(click.Group):
    """A group whose usage errors (bad option value, unknown choice, missing argument) are one line too:
    ``error: <what was wrong> (see 'toolkit CMD --help')`` and exit status 2, click's own status for them."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            status = super().main(*args, **kwargs)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else self._command_path(args, kwargs)
            _fail(f"{exc.format_message()} (see '{where} --help')", status=exc.exit_code)
        except click.ClickException as exc:
            _fail(exc.format_message(), status=exc.exit_code)
        except click.Abort:
            _fail("aborted", status=1)
        sys.exit(status if isinstance(status, int) else 0)

    def _command_path(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """``toolkit CMD`` for the sub-command on the command line (click leaves some parse errors without a
        context), else ``toolkit``."""
        argv = args[0] if args else kwargs.get("args")
        argv = sys.argv[1:] if argv is None else argv
        command = next((a for a in argv if a in self.commands), None)
        return f"toolkit {command}" if command else "toolkit"


def parse_sizes(text: str, example: str = "1,7,64") -> tuple[int, ...]:
    """Comma-separated positive batch sizes, or a click usage error that names the option and shows an example."""
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers like {example}, got {text!r}",
                                 param_hint="'--batch-sizes'") from None
    if min(sizes) < 1:
        raise click.BadParameter(f"expected positive batch sizes like {example}, got {text!r}",
                                 param_hint="'--batch-sizes'")
    return sizes


@click.group(cls=_OneLineErrors)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.version_option(package_name="cnn-edge-toolkit")
def cli(debug: bool) -> None:
    """Train CIFAR-10 CNNs, export them to ONNX, prove the export, run and benchmark it."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="toolkit")


# Sub-commands register themselves on `cli` when imported.
from toolkit.cli import bench, doctor, export, inspect, train  # noqa: E402,F401
