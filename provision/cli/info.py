"""Facts about one machine: ``ip``, ``url``, ``status``, ``inspect``, ``config``, ``version``; and ``drivers``."""

from __future__ import annotations

from .call import Call, out, warn
from .texts import config_text, one_name


def ip(call: Call, names: list[str]) -> None:
    service = call.machines()
    for name in names or [None]:
        out(service.connection(service.get(name)).ip + "\n")


def url(call: Call, names: list[str]) -> None:
    service = call.machines()
    out(service.connection(service.get(one_name(names))).url + "\n")


def status(call: Call, names: list[str]) -> None:
    out(f"{call.machines().status(one_name(names))}\n")


def inspect(call: Call, names: list[str], fmt: str | None) -> None:
    import json

    from provision import formatting

    data = call.machines().inspect(one_name(names))
    if fmt:
        out(formatting.render(fmt, data) + "\n")
    else:
        out(json.dumps(data, indent=4) + "\n")


def config(call: Call, names: list[str]) -> None:
    out(config_text(call.machines(), one_name(names)))


def version(call: Call, names: list[str]) -> None:
    if not names:
        from provision import __version__

        out(f"provision version {__version__}\n")
        return
    out(call.machines().engine_version(one_name(names)) + "\n")


def drivers(call: Call) -> None:
    from provision import registry

    from .flagparse import describe

    text = ""
    for name, cls in registry.load_all(warn=lambda message: warn("Warning: " + message)).items():
        origin = "built-in" if registry.available()[name].builtin else registry.available()[name].entry_point.value
        text += f"{name} ({origin}): {cls.description}\n"
        text += describe(cls.options) if cls.options else "  (no flags)\n"
        text += "\n"
    out(text)
