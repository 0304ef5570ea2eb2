"""Shell completion scripts for bash, zsh and fish, rendered from the command list the CLI hands in.

Machine names are completed at the shell's request by ``provision ls -q`` (the fast path: records only,
no probes), so a new machine is offered without regenerating the script.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from .errors import UsageError

SHELLS = ("bash", "zsh", "fish")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    takes_names: bool

    def words(self) -> dict[str, str]:
        summary = " ".join(self.help.split()).split(" (")[0][:80]
        return {"name": self.name, "word": shlex.quote(self.name), "describe": shlex.quote(summary),
                "zsh": shlex.quote(f"{self.name}:{summary}")}


def script(shell: str, commands: list[Command]) -> str:
    if shell not in SHELLS:
        raise UsageError(f"Error: no completion for {shell!r}: use one of {', '.join(SHELLS)}")
    from .templating import render

    ordered = sorted(commands, key=lambda c: c.name)
    return render(f"completion/{shell}.j2", commands=[c.words() for c in ordered],
                  takes_names=[c.name for c in ordered if c.takes_names])
