"""The ``none`` driver: record an engine that already exists and trusts the store's CA."""

from __future__ import annotations

from typing import Any, ClassVar

from provision import addresses
from provision.errors import UsageError

from provision.driver import Capabilities, Driver, MachineState, OptionSpec


class NoneDriver(Driver):
    name = "none"
    description = "An existing Docker engine, reached at --url; nothing is created or provisioned"
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec("url", "URL of the Docker engine (tcp://HOST:PORT)", required=True, envvar="NONE_URL"),
    )
    capabilities = Capabilities()  # nothing to start, stop or reach: the engine is someone else's

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        cls._url(options)

    @classmethod
    def _url(cls, options: dict[str, Any]) -> str:
        url = str(options.get("url") or "")
        if not url.startswith("tcp://"):
            raise UsageError(f'--url must look like tcp://HOST:PORT, not {url!r}')
        try:  # Docker Machine took tcp://HOST as the engine port
            _, _, host, port = addresses.split_url(url, tcp_port=addresses.DEFAULT_ENGINE_PORT)
        except addresses.BadAddress as exc:
            raise UsageError(f"--url must look like tcp://HOST:PORT: {exc.message}") from exc
        return addresses.tcp_url(host, port)

    def create(self) -> None:
        self.ctx.data["url"] = self._url(self.ctx.options)

    def remove(self) -> None:
        """Nothing was created, so nothing is removed but the record."""

    def state(self) -> MachineState:
        # As in Docker Machine: the engine is presumed up; `ls` shows the probe's error when it is not.
        return MachineState.RUNNING

    def engine_url(self) -> str:
        return str(self.ctx.data.get("url") or self.ctx.option("url"))
