"""The create flags every driver shares (Docker Machine's ``--engine-*`` set), declared as data like
driver options so the CLI parses, resolves and documents both the same way."""

from __future__ import annotations

from typing import Any

from provision.optionspec import OptionSpec

from .record import EngineSettings

_ENGINE_DEFAULTS = EngineSettings()
DRIVER_OPTION = OptionSpec("driver", "Driver that creates the machine (see `provision drivers`)",
                           envvar="MACHINE_DRIVER", default="none", short="-d")
# Each field of EngineSettings and the flag that sets it.
ENGINE_OPTIONS: dict[str, OptionSpec] = {
    "install_url": OptionSpec(
        "engine-install-url", 'How Docker Engine is installed: "distro" (the OS packages), an install script URL, '
        'or "none" to skip', envvar="MACHINE_DOCKER_INSTALL_URL", default=_ENGINE_DEFAULTS.install_url),
    "opts": OptionSpec("engine-opt", "dockerd flag as key=value (repeatable)", multiple=True),
    "labels": OptionSpec("engine-label", "Engine label as key=value (repeatable)", multiple=True),
    "insecure_registries": OptionSpec("engine-insecure-registry", "Insecure registry host[:port] (repeatable)",
                                      multiple=True),
    "registry_mirrors": OptionSpec("engine-registry-mirror", "Registry mirror URL (repeatable)", multiple=True),
    "storage_driver": OptionSpec("engine-storage-driver", "Storage driver for the engine"),
    "env": OptionSpec("engine-env", "Environment variable for dockerd as KEY=VALUE (repeatable)", multiple=True),
    "tls_san": OptionSpec("tls-san", "Extra name or address for the server certificate (repeatable)", multiple=True),
    "endpoint": OptionSpec(
        "engine-endpoint", "How the docker CLI reaches the engine: tcp (mutual TLS on port 2376) or ssh (no engine "
        "port at all: docker runs over the machine's SSH, through an ssh config file in the store)",
        default=_ENGINE_DEFAULTS.endpoint, choices=("tcp", "ssh")),
}
SSH_CONFIG_INCLUDE = OptionSpec(
    "ssh-config-include", "With --engine-endpoint ssh: add an Include line for the store's ssh config file to "
    "~/.ssh/config without asking (rm of the last such machine takes it out)", type=bool, default=False)
KEEP_ON_FAILURE = OptionSpec("keep-on-failure", "Keep a machine whose create failed, for inspection (remove it "
                             "with rm)", type=bool, default=False)
# Several machines and Swarm mode at create (provision.fleet).
CLUSTER_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("count", "Create N machines NAME-1 … NAME-N concurrently", int, 1, short="-n"),
    OptionSpec("parallel", "With -n: create at most this many at a time", int, 4),
    OptionSpec("swarm", "With -n: form a new Swarm mode cluster of this name (NAME-1 the manager, the rest workers)"),
    OptionSpec("swarm-managers", "With --swarm: the first K machines are managers", int, 1),
    OptionSpec("swarm-join", "Join the Swarm mode cluster this manager machine manages"),
    OptionSpec("swarm-manager", "With --swarm-join: join as a manager (default: a worker)", bool, False),
    OptionSpec("swarm-advertise-addr", "Address the other members reach the machine at (default: the driver's "
               "cluster address; generic and none: the SSH address)"),
)
SHARED_CREATE_OPTIONS: tuple[OptionSpec, ...] = (DRIVER_OPTION, *ENGINE_OPTIONS.values(), KEEP_ON_FAILURE,
                                                  SSH_CONFIG_INCLUDE, *CLUSTER_OPTIONS)


def engine_settings(resolved: dict[str, Any]) -> EngineSettings:
    """The engine settings from the resolved shared options (``options.resolve_options``)."""
    values = {name: resolved[spec.key] for name, spec in ENGINE_OPTIONS.items()}
    return EngineSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
