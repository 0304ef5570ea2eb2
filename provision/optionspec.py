"""``OptionSpec``: one flag declared as data. Driver flags, the shared create flags and every command's
flags are declared with it, and the CLI parses, resolves and documents them all from it.

A plain frozen class rather than a dataclass: the quick tier reads the command declarations on every
``env`` and ``use``, and ``import dataclasses`` alone (it imports ``inspect``) costs more than 20 ms there.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs start-up time
if TYPE_CHECKING:
    from typing import Any

    OptionType = type[str] | type[int] | type[bool] | type[float]

_FIELDS = ("flag", "help", "type", "default", "envvar", "required", "multiple", "secret", "choices", "short",
           "metavar", "dest")


class OptionSpec:
    """One flag.

    ``flag`` is the full flag name without dashes (``amazonec2-region``); ``envvar`` the environment
    variable that supplies it when the flag is absent. ``multiple`` options take the flag several times
    and yield a list. ``short`` is an optional one-letter form (``-d``); ``metavar`` names the value in
    help; ``dest`` names the value for the code that receives it when the flag's own name cannot (``--for``).
    """

    __slots__ = _FIELDS
    flag: str
    help: str
    type: OptionType
    default: Any
    envvar: str | None
    required: bool
    multiple: bool
    secret: bool
    choices: tuple[str, ...] | None
    short: str | None
    metavar: str | None
    dest: str | None

    def __init__(self, flag: str, help: str, type: OptionType = str, default: Any = None,
                 envvar: str | None = None, required: bool = False, multiple: bool = False, secret: bool = False,
                 choices: tuple[str, ...] | None = None, short: str | None = None, metavar: str | None = None,
                 dest: str | None = None) -> None:
        values = (flag, help, type, default, envvar, required, multiple, secret, choices, short, metavar, dest)
        for name, value in zip(_FIELDS, values):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"OptionSpec is frozen: cannot set {name}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OptionSpec) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash((self.flag, self.short, self.dest))

    def __repr__(self) -> str:
        return "OptionSpec(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS) + ")"

    @property
    def key(self) -> str:
        return self.dest or self.flag.replace("-", "_")

    @property
    def takes_value(self) -> bool:
        return self.type is not bool

    def default_value(self) -> Any:
        """The value when neither the flag nor the environment gives one (a fresh list for ``multiple``)."""
        return list(self.default or ()) if self.multiple else self.default
