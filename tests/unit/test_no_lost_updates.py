"""No lost updates: every read-modify-write of a record reads it under the machine's lock, the shared
client certificate is rewritten once and never read half-written, and a machine stopped by provision
hands out no engine address."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from clirun import run
from provision.record import Lifecycle, MachineRecord
from provision.store import Store
from provision.tls import CertificateAuthority


def test_edit_reads_the_record_after_the_lock_and_keeps_what_the_holder_saved(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.claim(MachineRecord(name="m", driver="none", lifecycle=Lifecycle.READY, url="tcp://192.0.2.1:2376"))
    seen: list[str | None] = []

    def second_writer() -> None:  # e.g. regenerate-certs while start records a new address
        with store.edit("m") as record:
            seen.append(record.url)
            store.save(record.evolve(facts={"regenerated": True}))

    with store.edit("m") as record:
        other = threading.Thread(target=second_writer)
        other.start()
        time.sleep(0.5)
        assert other.is_alive() and not seen  # it waits for the lock instead of reading a stale record
        store.save(record.evolve(url="tcp://192.0.2.2:2376"))
    other.join(10)
    assert seen == ["tcp://192.0.2.2:2376"]
    final = store.load("m")
    assert (final.url, final.facts) == ("tcp://192.0.2.2:2376", {"regenerated": True})


def test_client_key_always_matches_its_certificate_under_concurrent_regeneration(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    ca = CertificateAuthority(tmp_path / "certs")
    ca.ensure()
    mismatches: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            _, cert_pem, key_pem = ca.client_files()
            cert_key = x509.load_pem_x509_certificate(cert_pem).public_key()
            key = serialization.load_pem_private_key(key_pem, None).public_key()
            fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            if cert_key.public_bytes(*fmt) != key.public_bytes(*fmt):
                mismatches.append(1)
            time.sleep(0.01)  # a reader that never lets go of the lock would starve the writers

    readers = [threading.Thread(target=reader) for _ in range(3)]
    writers = [threading.Thread(target=lambda: [ca.regenerate_client() for _ in range(5)]) for _ in range(3)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join(60)
    stop.set()
    for thread in readers:
        thread.join(10)
    assert mismatches == []


@pytest.mark.parametrize("command", [["url"], ["ip"], ["env"], ["env", "--shell", "fish"], ["config"]])
def test_a_stopped_machine_hands_out_no_address(command: list[str]) -> None:
    """What provision records at stop (no URL) is what env, url, ip and config answer from: Docker Machine's
    "Host is not running", exit 1, on the light start-up path and in the core alike."""
    run("create", "-d", "none", "--url", "tcp://127.0.0.1:23750", "halted", check=True)
    record_path = Path(os.environ["PROVISION_STORAGE_PATH"]) / "machines" / "halted" / "machine.json"
    data = json.loads(record_path.read_text())
    data["url"] = None  # as `provision stop` leaves it
    record_path.write_text(json.dumps(data))
    result = run(*command, "halted")
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "Host is not running\n")
