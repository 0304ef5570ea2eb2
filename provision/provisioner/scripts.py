"""Run a rendered shell script on the host as root in one SSH round trip, and read back what it reports.

Scripts talk back through marked stdout lines: ``@@progress MESSAGE`` (passed on as it arrives),
``@@fact KEY=VALUE`` and ``@@begin NAME`` ... ``@@end NAME`` blocks. Everything else is the tools' own
output, kept for error messages.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from provision.errors import ProvisioningError, RemoteCommandError


@dataclass
class ScriptOutput:
    facts: dict[str, str] = field(default_factory=dict)
    blocks: dict[str, str] = field(default_factory=dict)


def render_script(name: str, **variables: Any) -> str:
    from provision.templating import render

    return render(name, q=shlex.quote, **variables)


def parse_output(text: str) -> ScriptOutput:
    result = ScriptOutput()
    block: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if block is not None:
            if line == f"@@end {block}":
                result.blocks[block] = "\n".join(lines)
                block, lines = None, []
            else:
                lines.append(line)
        elif line.startswith("@@begin "):
            block = line[len("@@begin "):]
        elif line.startswith("@@fact "):
            key, _, value = line[len("@@fact "):].partition("=")
            result.facts[key] = value
    return result


def run_script(session: Any, script: str, *, what: str, progress: Callable[[str], None],
               timeout: float) -> ScriptOutput:
    """Feed ``script`` to ``sh -s`` as root; a failure names ``what`` and carries the script's stderr."""

    def on_output(line: str) -> None:
        if line.startswith("@@progress "):
            progress(line[len("@@progress "):])

    result = session.run(["sh", "-s"], sudo=True, input=script.encode(), timeout=timeout,
                         on_output=on_output, check=False)
    if result.rc != 0:
        detail = _tail(result.err) or _tail(result.out) or "no output"
        err = RemoteCommandError(f"sh -s ({what})", result.rc, result.err, machine=session.machine)
        raise ProvisioningError(f"{what} failed on machine \"{session.machine}\" (exit {result.rc}): {detail}",
                                machine=session.machine) from err
    return parse_output(result.out)


def _tail(text: str, lines: int = 6) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("@@")]
    return " | ".join(kept[-lines:])
