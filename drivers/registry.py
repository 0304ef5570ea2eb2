"""Find drivers through the ``provision.drivers`` entry point group.

Built-in drivers are registered by this package's own ``pyproject.toml`` through the same group a third
party uses; a built-in wins a name clash. Driver modules are imported only when asked for, so a command
that touches one driver never pays for another's SDK, and a third-party driver that fails to import
costs a warning, not the command.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from provision.errors import UnknownDriver

from .base import Driver

GROUP = "provision.drivers"
BUILTIN_MODULE_PREFIX = "drivers."


@dataclass(frozen=True)
class DriverEntry:
    name: str
    entry_point: EntryPoint

    @property
    def builtin(self) -> bool:
        return self.entry_point.value.startswith(BUILTIN_MODULE_PREFIX)


@cache
def available() -> dict[str, DriverEntry]:
    """Every registered driver name, without importing any driver module.

    Scanning installed distributions costs tens of milliseconds: once per process, not per machine."""
    found: dict[str, DriverEntry] = {}
    for ep in entry_points(group=GROUP):
        entry = DriverEntry(ep.name, ep)
        previous = found.get(ep.name)
        if previous is None or (entry.builtin and not previous.builtin):
            found[ep.name] = entry
    return dict(sorted(found.items()))


@cache
def _load_class(name: str) -> type[Driver]:
    entry = available()[name]
    try:
        cls = entry.entry_point.load()
    except Exception as exc:  # a third party's import error must not read as ours
        raise UnknownDriver(f'Driver "{name}" failed to load: {exc}') from exc
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise UnknownDriver(f'Driver "{name}" ({entry.entry_point.value}) is not a provision driver')
    if getattr(cls, "name", None) != name:
        raise UnknownDriver(f'Driver "{name}" declares the name "{getattr(cls, "name", None)}"')
    return cls


def load(name: str) -> type[Driver]:
    if name not in available():
        known = ", ".join(available()) or "none installed"
        raise UnknownDriver(f'Driver "{name}" not found. Known drivers: {known}')
    return _load_class(name)


def load_all() -> dict[str, type[Driver]]:
    """Every driver that imports; one that does not gives a warning and is left out."""
    loaded: dict[str, type[Driver]] = {}
    for name in available():
        try:
            loaded[name] = load(name)
        except UnknownDriver as exc:
            warnings.warn(str(exc), stacklevel=2)
    return loaded
