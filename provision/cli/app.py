"""The typer application, its global options, and the bridge to the core service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from provision import paths
from provision.machines import Machines

from .progress import Reporter
from .texts import one_name  # noqa: F401  (the commands import it from here)

app = typer.Typer(
    name="provision",
    help="Docker hosts anywhere: create machines, install Docker Engine with mutual TLS, point docker at them.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class GlobalOptions:
    storage_path: Path | None
    debug: bool


def _print_version(value: bool) -> None:
    if value:
        from provision import __version__

        typer.echo(f"provision version {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    storage_path: Path = typer.Option(None, "--storage-path", "-s", envvar=paths.STORAGE_ENV,
                                      help="Store root (default: $MACHINE_STORAGE_PATH, else the platform's "
                                           "user data dir)"),
    debug: bool = typer.Option(False, "--debug", "-D",
                               help="Show every command run, here and on the machine, and full errors"),
    native_ssh: bool = typer.Option(False, "--native-ssh",
                                    help="Accepted for Docker Machine's scripts and ignored: `ssh` and `scp` always "
                                         "run the OpenSSH client, provisioning always uses the built-in client"),
    version: bool = typer.Option(False, "--version", "-v", is_eager=True, callback=_print_version,
                                 help="Print provision's version and exit"),
) -> None:
    ctx.obj = GlobalOptions(storage_path, debug)


def machines(ctx: typer.Context) -> Machines:
    options: GlobalOptions = ctx.find_root().obj
    reporter = Reporter(debug=options.debug)
    ctx.call_on_close(reporter.close)
    return Machines.open(options.storage_path, progress=reporter.step, log=reporter.debug_line)


def out(text: str) -> None:
    typer.echo(text, nl=False)


def warn(text: str) -> None:
    typer.echo(text, err=True)
