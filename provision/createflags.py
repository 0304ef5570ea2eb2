"""The create flags every driver shares (Docker Machine's ``--engine-*`` set), declared as data like
driver options so the CLI parses and documents both the same way."""

from __future__ import annotations

from typing import Any

from provision.driver import OptionSpec

from .record import EngineSettings

SHARED_CREATE_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("driver", "Driver that creates the machine (see `provision drivers`)", envvar="MACHINE_DRIVER",
               default="none"),
    OptionSpec("engine-install-url", 'How Docker Engine is installed: "distro" (the OS packages), an install '
               'script URL, or "none" to skip', envvar="MACHINE_DOCKER_INSTALL_URL", default="distro"),
    OptionSpec("engine-opt", "dockerd flag as key=value (repeatable)", multiple=True),
    OptionSpec("engine-label", "Engine label as key=value (repeatable)", multiple=True),
    OptionSpec("engine-insecure-registry", "Insecure registry host[:port] (repeatable)", multiple=True),
    OptionSpec("engine-registry-mirror", "Registry mirror URL (repeatable)", multiple=True),
    OptionSpec("engine-storage-driver", "Storage driver for the engine"),
    OptionSpec("engine-env", "Environment variable for dockerd as KEY=VALUE (repeatable)", multiple=True),
    OptionSpec("tls-san", "Extra name or address for the server certificate (repeatable)", multiple=True),
    OptionSpec("keep-on-failure", "Keep a machine whose create failed, for inspection (remove it with rm)",
               type=bool, default=False),
)


def engine_settings(values: dict[str, Any]) -> EngineSettings:
    return EngineSettings(
        install_url=values.get("engine_install_url") or "distro",
        opts=tuple(values.get("engine_opt") or ()),
        labels=tuple(values.get("engine_label") or ()),
        insecure_registries=tuple(values.get("engine_insecure_registry") or ()),
        registry_mirrors=tuple(values.get("engine_registry_mirror") or ()),
        storage_driver=values.get("engine_storage_driver") or None,
        env=tuple(values.get("engine_env") or ()),
        tls_san=tuple(values.get("tls_san") or ()),
    )
