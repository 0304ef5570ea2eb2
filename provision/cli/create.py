"""``provision create``: its declared flags and the chosen driver's flags, both parsed from their OptionSpecs.

Declared with ``extra="flags"``: click hands every argument over, because which flags exist depends on
the driver ``-d`` names.
"""

from __future__ import annotations

import click

from provision import options, registry
from provision.createflags import DRIVER_OPTION, engine_settings
from provision.errors import UsageError
from provision.machines import CreateRequest, Machines
from provision.optionspec import OptionSpec

from . import flagparse
from .call import Call, out, warn

USAGE = "Usage: provision create [OPTIONS] -d DRIVER [DRIVER OPTIONS] NAME\n"
HELP = ("  Create a machine, install Docker Engine on it with mutual TLS, and write its docker context.\n")


def create_help(shared: tuple[OptionSpec, ...], driver: str | None) -> str:
    text = USAGE + "\n" + HELP + "\nOptions:\n" + flagparse.describe(shared)
    text += "  -h, --help  Show this message (with -d DRIVER: that driver's options too)\n"
    if driver:
        cls = registry.load(driver)
        text += f"\nOptions of the {driver} driver ({cls.description}):\n"
        text += flagparse.describe(cls.options) if cls.options else "  (none)\n"
    else:
        text += "\nDrivers: " + ", ".join(registry.available()) + "\n"
    return text


def create(call: Call) -> None:
    argv, shared_specs = call.args, call.options
    named, _ = flagparse.parse(argv, shared_specs, skip_unknown=True)  # the driver, before its flags are known
    if "-h" in argv or "--help" in argv:
        out(create_help(shared_specs, named.get(DRIVER_OPTION.key)))
        return
    service = call.machines()
    driver_name = options.value(DRIVER_OPTION, named.get(DRIVER_OPTION.key), service.environ, "provision create")
    driver_cls = registry.load(driver_name)
    values, positional = flagparse.parse(argv, shared_specs + driver_cls.options)
    if not positional and values.get("swarm"):
        positional = [str(values["swarm"])]  # `create -n 3 --swarm web`: machines web-1 … web-3
    if len(positional) != 1:
        raise UsageError("Error: provision create needs exactly one machine NAME" if not positional
                         else f"Error: unexpected arguments: {' '.join(positional[1:])}")
    shared_keys = {spec.key for spec in shared_specs}
    shared = options.resolve_options(shared_specs, {k: v for k, v in values.items() if k in shared_keys},
                                     service.environ, "provision create")
    request = CreateRequest(
        name=positional[0],
        driver=driver_name,
        driver_flags={k: v for k, v in values.items() if k not in shared_keys},
        engine=engine_settings(shared),
        keep_on_failure=shared["keep_on_failure"],
        ssh_config_include=_include_consent(service, shared),
    )
    if shared["count"] != 1 or shared["swarm"] or shared["swarm_join"]:
        _create_many(service, request, shared)
        return
    record = service.create(request)
    from provision.names import context_name

    out(f'Docker is up and running on "{record.name}".\n'
        f"Point the docker CLI at it with one of:\n"
        f"  docker --context {context_name(record.name)} ps\n"
        f"  provision use {record.name}\n"
        f"  eval $(provision env {record.name})\n")
    if record.engine.over_ssh and not service.ssh_config_included():
        warn(f"The docker CLI reaches {record.name} over SSH once ~/.ssh/config includes the store's ssh config: "
             f"add the line 'Include \"{service.ssh_config_path}\"' at its top, or create with "
             "--ssh-config-include")


def _create_many(service: Machines, request: CreateRequest, shared: dict[str, object]) -> None:
    from provision.fleet import SwarmPlan, create_many, numbered_names
    from provision.names import context_name

    from .progress import MachineLines

    count = int(shared["count"])  # type: ignore[call-overload]
    plan = SwarmPlan(form=shared["swarm"], managers=int(shared["swarm_managers"]),  # type: ignore[arg-type,call-overload]
                     join=shared["swarm_join"], join_as_manager=bool(shared["swarm_manager"]),  # type: ignore[arg-type]
                     advertise=shared["swarm_advertise_addr"])  # type: ignore[arg-type]
    with MachineLines(numbered_names(request.name, count)) as lines:
        result = create_many(service, request, count, parallel=int(shared["parallel"]),  # type: ignore[call-overload]
                             progress=lines.step, swarm=plan)
    for record in result.created:
        if record.name not in result.failed:
            role = f" ({record.swarm_role} of cluster {record.cluster})" if record.swarm_role else ""
            out(f'Docker is up and running on "{record.name}"{role}: docker --context {context_name(record.name)} ps\n')
    if result.failed:
        for name, why in result.failed.items():
            warn(f"{name}: {why}")
        raise click.exceptions.Exit(1)


def _include_consent(service: Machines, shared: dict[str, object]) -> bool:
    """--ssh-config-include, else a yes at a terminal; never asked without one (scripts must not hang)."""
    if not engine_settings(shared).over_ssh:
        return False
    if shared["ssh_config_include"] or service.ssh_config_included():
        return True
    import sys

    if not sys.stdin.isatty():
        return False
    return click.confirm(f"Add an Include line for {service.ssh_config_path} to ~/.ssh/config, so the docker "
                         "CLI can reach this machine's engine over SSH?", default=True)
