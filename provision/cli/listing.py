"""``provision ls``."""

from __future__ import annotations

import typer

from provision.lean import LS_TIMEOUT

from .app import app, machines, out
from .lsview import ls_text


@app.command("ls", help="List machines, probing each (in parallel, each bounded by --timeout)")
def ls(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Names only"),
    filters: list[str] = typer.Option([], "--filter", "-f", help="name=REGEX, driver=D, state=S, label=K=V"),
    fmt: str = typer.Option(None, "--format", help="docker-style template, e.g. 'table {{.Name}}\\t{{.URL}}'"),
    timeout: float = typer.Option(LS_TIMEOUT, "--timeout", "-t", help="Seconds for each machine's probe"),
    as_json: bool = typer.Option(False, "--json", help="JSON output"),
) -> None:
    out(ls_text(machines(ctx), quiet=quiet, filters=filters, fmt=fmt, timeout=timeout, as_json=as_json))
