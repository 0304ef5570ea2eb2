"""Secure by default, checked on the store a create leaves: private files, no CA key copied, no key on
the screen under --debug, and a client that speaks TLS 1.2 or newer only."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from clirun import run
from storecheck import assert_store_is_private


def test_none_machine_store_is_private_and_debug_prints_no_key() -> None:
    created = run("--debug", "create", "-d", "none", "--url", "tcp://127.0.0.1:23770", "plain", check=True)
    listed = run("--debug", "ls", check=True)
    store = Path(os.environ["PROVISION_STORAGE_PATH"])
    checked = assert_store_is_private(store, Path(os.environ["DOCKER_CONFIG"]))
    assert {"certs/ca-key.pem", "machines/plain/machine.json", "machines/plain/key.pem"} <= set(checked)
    printed = created.stdout + created.stderr + listed.stdout + listed.stderr
    assert "PRIVATE KEY" not in printed
    for key in (store / "certs" / "key.pem", store / "certs" / "ca-key.pem"):
        assert key.read_bytes().splitlines()[1].decode() not in printed


def test_the_client_never_speaks_below_tls_1_2() -> None:
    from provision.probe import TLSFiles, ssl_context

    run("create", "-d", "none", "--url", "tcp://127.0.0.1:23771", "tls", check=True)
    machine = Path(os.environ["PROVISION_STORAGE_PATH"]) / "machines" / "tls"
    context = ssl_context(TLSFiles(machine / "ca.pem", machine / "cert.pem", machine / "key.pem"))
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
