"""Render the text files the tool writes to hosts from ``templates/``.

In a wheel the templates ship as ``provision/templates``; in a source checkout they sit at the top of
the tree. Undefined variables are errors, never empty strings.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent


def templates_dir() -> Path:
    for candidate in (PACKAGE_DIR / "templates", PACKAGE_DIR.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("provision's templates directory is missing from this installation")


@cache
def _environment():  # type: ignore[no-untyped-def]
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(name: str, **variables: Any) -> str:
    return _environment().get_template(name).render(**variables)
