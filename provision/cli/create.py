"""``provision create``: shared flags and the chosen driver's flags, both parsed from their OptionSpecs."""

from __future__ import annotations

import typer

from provision import options, registry
from provision.createflags import DRIVER_OPTION, SHARED_CREATE_OPTIONS, engine_settings
from provision.errors import UsageError
from provision.machines import CreateRequest, Machines

from . import flagparse
from .app import app, machines, out, warn

SHORT = {"-d": "driver", "-n": "count"}
USAGE = "Usage: provision create [OPTIONS] -d DRIVER [DRIVER OPTIONS] NAME\n"


def _driver_name(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg in ("-d", "--driver") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--driver="):
            return arg.split("=", 1)[1]
    return None


def create_help(driver: str | None) -> str:
    text = USAGE + "\n  Create a machine, install Docker Engine on it with mutual TLS, and write its docker context.\n"
    text += "\nOptions:\n" + flagparse.describe(SHARED_CREATE_OPTIONS, SHORT)
    text += "  -h, --help  Show this message (with -d DRIVER: that driver's options too)\n"
    if driver:
        cls = registry.load(driver)
        text += f"\nOptions of the {driver} driver ({cls.description}):\n"
        text += flagparse.describe(cls.options) if cls.options else "  (none)\n"
    else:
        text += "\nDrivers: " + ", ".join(registry.available()) + "\n"
    return text


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
    help="Create a machine (see `provision create -d DRIVER --help` for the driver's flags)",
)
def create(ctx: typer.Context) -> None:
    argv = list(ctx.args)
    driver_name = _driver_name(argv)
    if "-h" in argv or "--help" in argv:
        out(create_help(driver_name))
        raise typer.Exit(0)
    service = machines(ctx)
    driver_name = options.value(DRIVER_OPTION, driver_name, service.environ, "provision create")
    driver_cls = registry.load(driver_name)
    values, positional = flagparse.parse(argv, SHARED_CREATE_OPTIONS + driver_cls.options, SHORT)
    if not positional and values.get("swarm"):
        positional = [str(values["swarm"])]  # `create -n 3 --swarm web`: machines web-1 … web-3
    if len(positional) != 1:
        raise UsageError("Error: provision create needs exactly one machine NAME" if not positional
                         else f"Error: unexpected arguments: {' '.join(positional[1:])}")
    shared_keys = {spec.key for spec in SHARED_CREATE_OPTIONS}
    shared = options.resolve_options(SHARED_CREATE_OPTIONS, {k: v for k, v in values.items() if k in shared_keys},
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
        raise typer.Exit(1)


def _include_consent(service: Machines, shared: dict[str, object]) -> bool:
    """--ssh-config-include, else a yes at a terminal; never asked without one (scripts must not hang)."""
    if not engine_settings(shared).over_ssh:
        return False
    if shared["ssh_config_include"] or service.ssh_config_included():
        return True
    import sys

    if not sys.stdin.isatty():
        return False
    return typer.confirm(f"Add an Include line for {service.ssh_config_path} to ~/.ssh/config, so the docker "
                         "CLI can reach this machine's engine over SSH?", default=True)
