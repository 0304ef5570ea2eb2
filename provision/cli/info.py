"""Facts about one machine: ``ip``, ``url``, ``status``, ``inspect``, ``config``, ``version``; and ``drivers``."""

from __future__ import annotations

import json

import typer

from provision import registry
from provision import __version__, formatting

from . import flagparse
from .app import app, machines, one_name, out, warn
from .texts import config_text

NAMES = typer.Argument(None, metavar="[NAME]")


@app.command(help="Print the machine's IP address")
def ip(ctx: typer.Context, names: list[str] = typer.Argument(None, metavar="[NAME...]")) -> None:
    service = machines(ctx)
    for name in names or [None]:
        out(service.connection(service.get(name)).ip + "\n")


@app.command(help="Print the machine's Docker engine URL")
def url(ctx: typer.Context, names: list[str] = NAMES) -> None:
    service = machines(ctx)
    out(service.connection(service.get(one_name(names))).url + "\n")


@app.command(help="Print the machine's state")
def status(ctx: typer.Context, names: list[str] = NAMES) -> None:
    out(f"{machines(ctx).status(one_name(names))}\n")


@app.command(help="Print the machine's record and facts as JSON, or through a -f template")
def inspect(
    ctx: typer.Context,
    names: list[str] = NAMES,
    fmt: str = typer.Option(None, "--format", "-f", help="docker-style template, e.g. '{{.Driver.IPAddress}}'"),
) -> None:
    data = machines(ctx).inspect(one_name(names))
    if fmt:
        out(formatting.render(fmt, data) + "\n")
    else:
        out(json.dumps(data, indent=4) + "\n")


@app.command(help="Print the docker CLI flags that reach the machine")
def config(ctx: typer.Context, names: list[str] = NAMES) -> None:
    out(config_text(machines(ctx), one_name(names)))


@app.command(help="Print provision's version, or the Docker engine version of NAME")
def version(ctx: typer.Context, names: list[str] = NAMES) -> None:
    if not names:
        out(f"provision version {__version__}\n")
        return
    out(machines(ctx).engine_version(one_name(names)) + "\n")


@app.command("drivers", help="List installed drivers and their flags")
def drivers_command() -> None:
    text = ""
    for name, cls in registry.load_all(warn=lambda message: warn("Warning: " + message)).items():
        origin = "built-in" if registry.available()[name].builtin else registry.available()[name].entry_point.value
        text += f"{name} ({origin}): {cls.description}\n"
        text += flagparse.describe(cls.options) if cls.options else "  (no flags)\n"
        text += "\n"
    out(text)
