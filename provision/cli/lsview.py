"""What `ls` prints: filters and table/JSON/template rendering, free of click so the quick tier can use it."""

from __future__ import annotations

import json
import re

from provision import formatting
from provision.errors import UsageError
from provision.machines import Listing, Machines

LS_HEADER = ["NAME", "ACTIVE", "DRIVER", "STATE", "URL", "SWARM", "DOCKER", "ERRORS"]
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


MAX_LS_TIMEOUT = 3600.0


def ls_text(service: Machines, *, quiet: bool, filters: list[str], fmt: str | None, timeout: float,
            as_json: bool) -> str:
    if not 0 < timeout <= MAX_LS_TIMEOUT:  # also refuses nan and inf, which no clock can wait for
        raise UsageError(f"--timeout must be more than 0 and at most {MAX_LS_TIMEOUT:.0f} seconds, not {timeout}")
    parsed = parse_filters(filters)
    rows = [r for r in service.list(timeout=timeout, probe_engines=not quiet) if matches(r, parsed)]
    if quiet:
        return "".join(r.name + "\n" for r in rows)
    if as_json:
        return json.dumps([r.to_dict() for r in rows], indent=2) + "\n"
    if fmt:
        if fmt.startswith("table"):
            template = fmt[len("table"):].lstrip()
            return formatting.columns([formatting.table_header(template).split("\t")] +
                                      [formatting.render(template, r.to_dict()).split("\t") for r in rows])
        return "".join(formatting.render(fmt, r.to_dict()) + "\n" for r in rows)
    table = [LS_HEADER] + [[r.name, "*" if r.active else "-", r.driver, r.state, r.url, r.swarm, r.docker, r.error]
                           for r in rows]
    return formatting.columns(table)
