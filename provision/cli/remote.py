"""Commands that work over SSH: ``ssh``, ``scp``, ``provision``, ``upgrade``, ``regenerate-certs``."""

from __future__ import annotations

import click

from .call import Call, out
from .lifecycle import for_each


# Everything after NAME is the ssh client's (its flags, then the command): declared extra="after", so
# click parses nothing there and hands it over as call.args.
def ssh(call: Call, name: str | None) -> None:
    from provision.ssh import interactive_argv, split_client_args

    service = call.machines()
    flags, command = split_client_args(call.args)
    endpoint, known_hosts = service.ssh_target(name)
    _exec(interactive_argv(endpoint, known_hosts, command, flags))


def scp(call: Call, source: str, destination: str, recursive: bool, delta: bool) -> None:
    from provision.transfer import copy_argv

    _exec(copy_argv(call.machines(), source, destination, recursive=recursive, delta=delta))


def _exec(argv: list[str]) -> None:
    from provision.run import replace_process

    replace_process(argv, missing_hint="install the OpenSSH client")


def reprovision(call: Call, names: list[str]) -> None:
    service = call.machines()
    for_each(names or [service.resolve_name(None)], service.reprovision, "Provisioned machine")


def upgrade(call: Call, names: list[str]) -> None:
    service = call.machines()
    for_each(names or [service.resolve_name(None)], service.upgrade, "Upgraded machine")


def regenerate_certs(call: Call, names: list[str], force: bool, client_certs: bool) -> None:
    service = call.machines()
    targets = names or [service.resolve_name(None)]
    if not force and not click.confirm(f"Regenerate TLS machine certs for {', '.join(targets)}?"):
        raise click.exceptions.Exit(1)
    if client_certs:  # once, before fanning out: per-machine threads would each rewrite the shared pair
        service.regenerate_client_cert()
    # --client-certs also moves a machine migrated from Docker Machine to provision's CA.
    for_each(targets, lambda name: service.regenerate_certs(name, adopt_ca=client_certs),
             "Regenerated certificates for")
