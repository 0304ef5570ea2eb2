"""Find drivers through the ``provision.drivers`` entry point group: the core's one door to every driver.

Built-in drivers are registered by this distribution's own ``pyproject.toml`` through the same group a
third party uses; a built-in wins a name clash. Driver modules are imported only when asked for, so a command
that touches one driver never pays for another's SDK, and a third-party driver that fails to import
costs a warning, not the command.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import cache
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points

from .driver import CAPABILITY_METHODS, Capabilities, Driver
from .errors import MissingDependency, UnknownDriver

GROUP = "provision.drivers"
# Steps other parts of provision (or a plugin) take before a machine is removed, called as
# ``hook(service, name, force)``: the swarm drains and leaves through it, without the machine service
# importing the swarm that is built on it.
BEFORE_REMOVE_GROUP = "provision.before_remove"
DISTRIBUTION = "provision-machine"


@dataclass(frozen=True)
class DriverEntry:
    name: str
    entry_point: EntryPoint

    @property
    def builtin(self) -> bool:
        dist = getattr(self.entry_point, "dist", None)
        return dist is not None and _normalized(dist.metadata["Name"]) == DISTRIBUTION


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


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
    unbacked = unimplemented_capabilities(cls)
    if unbacked:
        raise UnknownDriver(f'Driver "{name}" declares {", ".join(unbacked)} but does not implement '
                            f'{", ".join(CAPABILITY_METHODS[c] for c in unbacked)}')
    return cls


def unimplemented_capabilities(cls: type[Driver]) -> list[str]:
    """Capabilities a driver class declares True without overriding the method that backs them."""
    declared = cls.capabilities
    return [f.name for f in fields(Capabilities)
            if getattr(declared, f.name) and f.name in CAPABILITY_METHODS
            and getattr(cls, CAPABILITY_METHODS[f.name]) is getattr(Driver, CAPABILITY_METHODS[f.name])]


def load(name: str) -> type[Driver]:
    if name not in available():
        known = ", ".join(available()) or "none installed"
        raise UnknownDriver(f'Driver "{name}" not found. Known drivers: {known}')
    cls = _load_class(name)
    require_packages(cls)
    return cls


def require_packages(cls: type[Driver]) -> None:
    """The driver's SDKs are imported lazily; say which one is missing before the first call needs it."""
    for package in cls.requires:
        try:
            distribution(package)
        except PackageNotFoundError:
            raise MissingDependency(f'the {cls.name} driver needs the Python package "{package}", which is '
                                    f"not installed", hint=f"pip install {package}") from None


def load_all(warn: Callable[[str], None] | None = None) -> dict[str, type[Driver]]:
    """Every driver that loads; one that does not (an import error, a missing SDK) is reported to ``warn``
    (a ``warnings.warn`` by default) and left out."""
    loaded: dict[str, type[Driver]] = {}
    for name in available():
        try:
            loaded[name] = load(name)
        except (UnknownDriver, MissingDependency) as exc:
            message = exc.message + (f" ({exc.hint})" if exc.hint else "")
            if warn is None:
                warnings.warn(message, stacklevel=2)
            else:
                warn(message)
    return loaded


def before_remove_hooks() -> list[Callable[..., None]]:
    """The ``provision.before_remove`` hooks, this distribution's first, each once."""
    found = sorted(entry_points(group=BEFORE_REMOVE_GROUP),
                   key=lambda ep: (not DriverEntry(ep.name, ep).builtin, ep.name))
    hooks: list[Callable[..., None]] = []
    for ep in found:
        try:
            hooks.append(ep.load())
        except Exception as exc:  # a third party's broken hook must not stop an rm
            warnings.warn(f'the before-remove hook "{ep.name}" ({ep.value}) failed to load: {exc}', stacklevel=2)
    return hooks
