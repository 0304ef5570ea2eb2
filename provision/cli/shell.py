"""``env``, ``use`` and ``active``: point a shell or the docker CLI at a machine."""

from __future__ import annotations

from .call import Call, out, warn
from .texts import active_text, env_name, env_text, use_text


def env(call: Call, names: list[str], shell: str | None, unset: bool, no_proxy: bool, swarm: bool) -> None:
    service = call.machines()
    name = env_name(names, unset)
    if swarm and not unset:
        from provision.swarm import Swarm

        name = Swarm(service).manager_of(service.resolve_name(name))
    out(env_text(service, name, shell, unset, no_proxy))


def use(call: Call, name: str | None, unset: bool) -> None:
    text, warnings = use_text(call.machines(), name, unset)
    out(text)
    for line in warnings:
        warn("Warning: " + line)


def active(call: Call) -> None:
    out(active_text(call.machines()))
