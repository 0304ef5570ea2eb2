"""The text of the commands the quick tier also serves, computed through the core service."""

from __future__ import annotations

from provision.errors import ProvisionError, UsageError
from provision.machines import Machines

from .call import command_line

UNSET_WITH_NAME = "Error: Expected no machine name when the -u flag is present"  # Docker Machine's words


def one_name(names: list[str] | None) -> str | None:
    if names and len(names) > 1:
        raise UsageError("Error: Expected one machine name as an argument")
    return names[0] if names else None


def env_name(names: list[str] | None, unset: bool) -> str | None:
    """The machine ``env`` is about; ``env -u NAME`` is an error (exit 1), checked first as Docker Machine did."""
    if unset and names:
        raise ProvisionError(UNSET_WITH_NAME)
    return one_name(names)


def env_text(service: Machines, name: str | None, shell: str | None, unset: bool, no_proxy: bool) -> str:
    from provision.shellenv import env_script

    connection = None
    if not unset:
        info = service.connection(service.get(name))
        connection = (info.name, info.url, info.ip, str(info.cert_path))
    return env_script(shell=shell, unset=unset, no_proxy=no_proxy, command_line=command_line(),
                      environ=service.environ, connection=connection)


def config_text(service: Machines, name: str | None) -> str:
    from provision.shellenv import config_flags

    info = service.connection(service.get(name))
    return config_flags(ca=str(info.tls.ca), cert=str(info.tls.cert), key=str(info.tls.key), url=info.url)


def active_text(service: Machines) -> str:
    active = service.active_name()
    if not active:
        raise ProvisionError("No active host found")
    return active + "\n"


def use_text(service: Machines, name: str | None, unset: bool) -> tuple[str, list[str]]:
    if unset:
        return 'Current context is now "default"\n', service.use_unset()
    if not name:
        raise UsageError("Error: provision use needs a machine NAME (or --unset)")
    context, warnings = service.use(name)
    return f'Current context is now "{context}"\n', warnings
