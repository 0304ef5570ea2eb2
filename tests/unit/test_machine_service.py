"""The machine service's seams: steps registered under ``provision.before_remove`` run inside ``rm``, after
it has read what it needs and before it removes anything, and one that refuses stops the rm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provision import registry
from provision.errors import ProvisionError
from provision.machines import CreateRequest, Machines


def _machine(tmp_path: Path, name: str = "web") -> Machines:
    service = Machines.open(tmp_path / "store")
    service.create(CreateRequest(name=name, driver="none", driver_flags={"url": "tcp://127.0.0.1:1"}))
    return service


def test_the_swarm_drains_a_member_through_the_declared_hook() -> None:
    from provision.swarm import leave_before_remove

    assert leave_before_remove in registry.before_remove_hooks()


def test_before_remove_hooks_run_once_with_the_machine_still_there(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    service = _machine(tmp_path)
    seen: list[tuple[Any, str, bool, bool]] = []

    def hook(svc: Machines, name: str, force: bool) -> None:
        seen.append((svc, name, force, svc.store.exists(name)))

    monkeypatch.setattr(registry, "before_remove_hooks", lambda: [hook])
    assert service.remove("web", force=True) == []
    assert seen == [(service, "web", True, True)]
    assert not service.store.exists("web")


def test_a_hook_that_refuses_stops_the_rm_and_keeps_everything(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    service = _machine(tmp_path)
    before = service.store.load("web")

    def refuse(svc: Machines, name: str, force: bool) -> None:
        raise ProvisionError(f"{name} is the last manager of a swarm with workers")

    monkeypatch.setattr(registry, "before_remove_hooks", lambda: [refuse])
    with pytest.raises(ProvisionError, match="last manager"):
        service.remove("web")
    assert service.store.load("web") == before
    assert service.docker.owner("web") == "web"


def test_a_machine_outside_any_swarm_passes_the_swarm_hook_untouched(tmp_path: Path) -> None:
    service = _machine(tmp_path)
    from provision.swarm import leave_before_remove

    from provision.errors import MachineNotFound

    leave_before_remove(service, "web", False)  # not a member: nothing to drain, nothing dialled
    assert service.store.exists("web")
    with pytest.raises(MachineNotFound):  # the one line `rm gone` gives
        leave_before_remove(service, "gone", False)


def test_an_ssh_wait_that_fails_names_the_console_s_last_line(tmp_path: Path) -> None:
    """A machine whose create fails is removed with its console log: the error keeps the log's last line."""
    import socket
    from types import SimpleNamespace

    from provision.driver import SSHEndpoint
    from provision.errors import SSHError
    from provision.sshkeys import generate_ed25519

    service = _machine(tmp_path)
    key = tmp_path / "id_ed25519"
    generate_ed25519(key, "test")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    console = "[    1.2] Booting\n\x1b[0;32m[  OK  ]\x1b[0m Reached target\tMulti-User System.\x07\n\n"
    driver = SimpleNamespace(capabilities=SimpleNamespace(ssh=True, keys_at_boot=False), boot_timeout=0.0,
                             ssh_endpoint=lambda: SSHEndpoint("127.0.0.1", port, "root", key),
                             host_key=lambda: None, boot_log=lambda: console)
    with pytest.raises(SSHError) as failed:
        service.core.session(service.store.load("web"), driver, timeout=0.5)  # type: ignore[arg-type]
    message = failed.value.message
    assert message.startswith(f"cannot reach SSH on 127.0.0.1:{port}")
    assert message.endswith("; the machine's console last printed: [  OK  ] Reached target Multi-User System.")
    assert message.isprintable()


def test_members_leaving_at_once_close_their_driver_s_cluster_doors_once(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A fleet's down removes workers in parallel: exactly one of a driver's last members must be told it is
    the last (its cluster firewall or network goes), never none (a leak) and never two."""
    import threading
    import time

    from provision.swarm import Swarm

    service = _machine(tmp_path, "w1")
    service.create(CreateRequest(name="w2", driver="none", driver_flags={"url": "tcp://127.0.0.1:2"}))
    for name in ("w1", "w2"):
        with service.store.edit(name) as record:
            service.store.save(record.evolve(cluster="c", swarm_role="worker", swarm_manager="m"))
    told: list[tuple[str, bool]] = []

    class Doors:
        def __init__(self, name: str) -> None:
            self.name = name

        def leave_cluster(self, cluster: str, *, last: bool) -> None:
            time.sleep(0.2)  # a cloud API call: long enough for the other thread to look meanwhile
            told.append((self.name, last))

    monkeypatch.setattr(service, "driver_for", lambda record, data=None: Doors(record.name))
    records = [service.store.load(n) for n in ("w1", "w2")]
    threads = [threading.Thread(target=Swarm(service)._forget, args=(r, [])) for r in records]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(last for _, last in told) == [False, True]
    assert all(service.store.load(n).cluster is None for n in ("w1", "w2"))
