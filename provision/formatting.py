"""Docker-style ``{{.Field}}`` templates for ``ls --format`` and ``inspect -f``.

A small subset of Go templates, enough for what scripts written for Docker Machine use: ``{{.A.B}}``
paths, ``{{json .A}}``, ``{{prettyjson .A}}`` (indented by four spaces, as Docker Machine's ``inspect``),
``{{upper .A}}``/``{{lower .A}}``, a leading ``table`` for a header row,
and ``\\t``/``\\n`` escapes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import UsageError

_ACTION = re.compile(r"{{\s*(?:(json|prettyjson|upper|lower|println)\s+)?(\.[A-Za-z0-9_.]*)\s*}}")


def _lookup(data: Any, path: str) -> Any:
    value = data
    for part in [p for p in path.split(".") if p]:
        if isinstance(value, dict):
            if part in value:
                value = value[part]
                continue
            lowered = {k.lower(): k for k in value}
            if part.lower() in lowered:
                value = value[lowered[part.lower()]]
                continue
        raise UsageError(f'template: can\'t evaluate field {part} in "{path}"')
    return value


def _text(value: Any) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def render(template: str, data: Any) -> str:
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    if "{{" in _ACTION.sub("", template):
        raise UsageError(f"template: unsupported action in {template!r}")

    def action(match: re.Match[str]) -> str:
        func, path = match.group(1), match.group(2)
        value = data if path == "." else _lookup(data, path)
        if func == "json":
            return json.dumps(value)
        if func == "prettyjson":
            return json.dumps(value, indent=4)
        text = _text(value)
        if func == "upper":
            return text.upper()
        if func == "lower":
            return text.lower()
        if func == "println":
            return text + "\n"
        return text

    return _ACTION.sub(action, template)


def table_header(template: str) -> str:
    """``table {{.Name}}\\t{{.URL}}`` -> ``NAME\\tURL``: docker's header convention."""
    body = template.replace("\\t", "\t")

    def header(match: re.Match[str]) -> str:
        name = match.group(2).strip(".").split(".")[-1]
        return HEADERS.get(name, re.sub(r"(?<!^)(?=[A-Z])", " ", name).upper())

    return _ACTION.sub(header, body)


HEADERS = {"Name": "NAME", "Active": "ACTIVE", "ActiveHost": "ACTIVE", "DriverName": "DRIVER", "State": "STATE",
           "URL": "URL", "DockerVersion": "DOCKER", "Error": "ERRORS", "ResponseTime": "RESPONSE"}


def columns(rows: list[list[str]], padding: int = 3) -> str:
    """Left-aligned columns like Go's tabwriter (minwidth 5, padding 3) as Docker Machine printed them."""
    if not rows:
        return ""
    widths = [0] * max(len(r) for r in rows)
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in rows:
        cells = [cell.ljust(max(5, widths[i] + padding)) if i < len(row) - 1 else cell
                 for i, cell in enumerate(row)]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines) + "\n"
