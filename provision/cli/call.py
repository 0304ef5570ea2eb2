"""What a handler gets: the global options of this run and the output streams, the same whether the
click application or the quick tier called it. Cheap to import: the quick tier calls handlers too."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing itself costs start-up time
if TYPE_CHECKING:
    from collections.abc import Callable

    from provision.machines import Machines
    from provision.optionspec import OptionSpec


class Call:
    """One run of a command. ``args``: what a command declared with ``extra`` takes unparsed; ``options``:
    the flags such a command parses from them itself (``Command.all_options``)."""

    def __init__(self, storage_path: str | None = None, debug: bool = False, args: list[str] | None = None,
                 options: tuple[OptionSpec, ...] = ()) -> None:
        self.storage_path, self.debug, self.args, self.options = storage_path, debug, list(args or []), options
        self._closers: list[Callable[[], None]] = []

    def machines(self) -> Machines:
        """The core service on this run's store, its progress and debug lines shown on stderr."""
        from pathlib import Path

        from provision.machines import Machines

        from .progress import Reporter

        reporter = Reporter(debug=self.debug)
        self._closers.append(reporter.close)
        return Machines.open(Path(self.storage_path) if self.storage_path else None, progress=reporter.step,
                             log=reporter.debug_line)

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()



def out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def warn(text: str) -> None:
    """One line on stderr."""
    sys.stdout.flush()
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def command_line(argv: list[str] | None = None) -> str:
    """The invocation as the user typed it, for the "Run this command" hint (Docker Machine used os.Args)."""
    import shlex

    args = (sys.argv if argv is None else argv)[1:]
    return " ".join(["provision", *(shlex.quote(a) for a in args)])
