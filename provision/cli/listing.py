"""``provision ls``."""

from __future__ import annotations

from .call import Call, out
from .lsview import ls_text


def ls(call: Call, quiet: bool, filters: list[str], fmt: str | None, timeout: float, as_json: bool) -> None:
    out(ls_text(call.machines(), quiet=quiet, filters=filters, fmt=fmt, timeout=timeout, as_json=as_json))
