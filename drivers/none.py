"""The ``none`` driver: record an engine that already exists and trusts the store's CA."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

from provision.errors import UsageError

from provision.driver import Capabilities, Driver, MachineState, OptionSpec


class NoneDriver(Driver):
    name = "none"
    description = "An existing Docker engine, reached at --url; nothing is created or provisioned"
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec("url", "URL of the Docker engine (tcp://HOST:PORT)", required=True, envvar="NONE_URL"),
    )
    capabilities = Capabilities()  # nothing to start, stop or reach: the engine is someone else's

    def create(self) -> None:
        url = str(self.ctx.option("url") or "")
        parts = urlsplit(url)
        if parts.scheme != "tcp" or not parts.hostname:
            raise UsageError(f'--url must look like tcp://HOST:PORT, not "{url}"')
        try:
            port = parts.port
        except ValueError as exc:
            raise UsageError(f'--url has an invalid port: "{url}"') from exc
        self.ctx.data["url"] = f"tcp://{parts.hostname}:{port or self.engine_port}"

    def remove(self) -> None:
        """Nothing was created, so nothing is removed but the record."""

    def state(self) -> MachineState:
        # As in Docker Machine: the engine is presumed up; `ls` shows the probe's error when it is not.
        return MachineState.RUNNING

    def engine_url(self) -> str:
        return str(self.ctx.data.get("url") or self.ctx.option("url"))
