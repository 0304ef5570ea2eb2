"""``provision ls``."""

from __future__ import annotations

import json
import re

import typer

from provision import formatting
from provision.errors import UsageError
from provision.machines import Listing

from .app import app, machines, out

LS_HEADER = ["NAME", "ACTIVE", "DRIVER", "STATE", "URL", "DOCKER", "ERRORS"]
FILTER_KEYS = ("name", "driver", "state", "label")


def parse_filters(filters: list[str]) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in FILTER_KEYS:
            raise UsageError(f'Unsupported filter "{item}"; use name=REGEX, driver=, state= or label=KEY=VALUE')
        parsed.setdefault(key, []).append(value)
    return parsed


def matches(row: Listing, filters: dict[str, list[str]]) -> bool:
    """Values of one key are ORed; different keys are ANDed, as in Docker Machine."""
    for key, values in filters.items():
        if key == "name":
            try:
                ok = any(re.search(v, row.name) for v in values)
            except re.error as exc:
                raise UsageError(f"invalid name filter: {exc}") from exc
        elif key == "driver":
            ok = any(v.lower() == row.driver.lower() for v in values)
        elif key == "state":
            ok = any(v.lower() == row.state.lower() for v in values)
        else:
            ok = any(v in row.labels for v in values)
        if not ok:
            return False
    return True


@app.command("ls", help="List machines, probing each (in parallel, each bounded by --timeout)")
def ls(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Names only"),
    filters: list[str] = typer.Option([], "--filter", "-f", help="name=REGEX, driver=D, state=S, label=K=V"),
    fmt: str = typer.Option(None, "--format", help="docker-style template, e.g. 'table {{.Name}}\\t{{.URL}}'"),
    timeout: float = typer.Option(10.0, "--timeout", "-t", help="Seconds for each machine's probe"),
    as_json: bool = typer.Option(False, "--json", help="JSON output"),
) -> None:
    parsed = parse_filters(filters)
    service = machines(ctx)
    rows = [r for r in service.list(timeout=timeout, probe_engines=not quiet) if matches(r, parsed)]
    if quiet:
        out("".join(r.name + "\n" for r in rows))
    elif as_json:
        out(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
    elif fmt:
        template = fmt
        text = ""
        if template.startswith("table"):
            template = template[len("table"):].lstrip()
            text = formatting.columns([formatting.table_header(template).split("\t")] +
                                      [formatting.render(template, r.to_dict()).split("\t") for r in rows])
        else:
            text = "".join(formatting.render(template, r.to_dict()) + "\n" for r in rows)
        out(text)
    else:
        table = [LS_HEADER] + [[r.name, "*" if r.active else "-", r.driver, r.state, r.url, r.docker, r.error]
                               for r in rows]
        out(formatting.columns(table))
