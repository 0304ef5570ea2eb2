"""Revocation (DESIGN §13): one issuing certificate per export, the engine's client CA file, and what a real
dockerd and the real docker CLI make of it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from fixtures_dockerd import running_dockerd
from provision.bundle import Bundle, BundleError, _verify
from provision.probe import TLSFiles
from provision.tls import CertificateAuthority, issue_export
from provision.trust import client_trust, describe, find, state


def _pems(blob: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(blob)


def test_an_export_gets_its_own_issuer_that_signs_it_alone(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "certs")
    ca.ensure()
    before = {p: p.read_bytes() for p in (tmp_path / "certs").iterdir()}
    made = issue_export("alice laptop")
    issuer = x509.load_pem_x509_certificate(made.issuer_pem)
    leaf = x509.load_pem_x509_certificate(made.client.cert_pem)
    constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    issuer.verify_directly_issued_by(issuer)
    leaf.verify_directly_issued_by(issuer)
    with pytest.raises((InvalidSignature, ValueError)):
        leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.ca_cert_path.read_bytes()))
    assert issuer.subject.rfc4514_string() == "CN=provision export alice laptop,O=provision"
    assert leaf.subject.rfc4514_string() == "CN=alice laptop,O=provision"
    assert issuer.not_valid_after_utc == leaf.not_valid_after_utc  # the issuer dies with its one certificate
    # Nothing was written: the store is as it was (the issuing key only ever lived in memory).
    assert {p: p.read_bytes() for p in (tmp_path / "certs").iterdir()} == before
    # Two exports never share an issuer.
    assert issue_export("alice laptop").issuer_pem != made.issuer_pem


def _entry(label: str, issuer: bytes | None, **extra: str) -> dict[str, object]:
    entry: dict[str, object] = {"for": label, "kind": "bundle", "serial": label.encode().hex(),
                                "not_after": (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()}
    if issuer:
        entry["issuer"] = issuer.decode()
    return {**entry, **extra}


def test_the_engine_trusts_the_owner_and_each_live_revocable_export(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "certs")
    ca.ensure()
    ca_pem = ca.ca_cert_path.read_bytes()
    # A machine that never had a revocable export keeps its file byte for byte: no restart on re-provision.
    assert client_trust(ca_pem, []) == ca_pem
    assert client_trust(ca_pem, [_entry("old", None)]) == ca_pem
    a, b, c, d = (issue_export(x).issuer_pem for x in "abcd")
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
    exports = [_entry("a", a), _entry("b", b, revoked_at=yesterday), _entry("c", c, not_after=yesterday),
               _entry("d", d), _entry("legacy", None)]
    assert [state(e) for e in exports] == ["live", "revoked", "expired", "live", "live"]
    assert _pems(client_trust(ca_pem, exports)) == _pems(ca_pem + a + d)
    assert [describe(e)["revocable"] for e in exports] == [True, True, True, True, False]
    assert "issuer" not in describe(exports[0]) and len(describe(exports[0])["issuer_sha256"]) == 64
    assert find(exports, "d") == [3] and find(exports, exports[1]["serial"]) == [1] and find(exports, "x") == []


def test_import_checks_a_revocable_export_against_its_own_issuer(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "certs")
    ca.ensure()
    made, other = issue_export("alice"), issue_export("mallory")

    def bundle(cert: bytes, key: bytes, issuer: bytes | None) -> Bundle:
        return Bundle(machine="m", url="tcp://192.0.2.1:2376", label="alice", exported_at="now", serial="1",
                      ca=ca.ca_cert_path.read_text(), cert=cert.decode(), key=key.decode(),
                      issuer=issuer.decode() if issuer else None)

    good = bundle(made.client.cert_pem, made.client.key_pem, made.issuer_pem)
    _verify(good, "b")
    assert Bundle.from_dict(json.loads(json.dumps(good.to_dict())), "b") == good
    assert good.to_dict()["format"] == 2
    for wrong in (bundle(made.client.cert_pem, made.client.key_pem, other.issuer_pem),  # another export's issuer
                  bundle(made.client.cert_pem, made.client.key_pem, None),  # claims the store's CA signed it
                  bundle(made.client.cert_pem, other.client.key_pem, made.issuer_pem),  # someone else's key
                  bundle(made.client.cert_pem, made.client.key_pem, made.client.cert_pem)):  # a leaf as issuer
        with pytest.raises(BundleError, match="certificates do not fit together"):
            _verify(wrong, "b")


def _docker_version(url: str, certs: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": url, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(certs)}
    return subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True,
                          timeout=60, env=env)


def _client_dir(root: Path, name: str, ca_pem: bytes, cert: bytes, key: bytes) -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "ca.pem").write_bytes(ca_pem)
    (directory / "cert.pem").write_bytes(cert)
    (directory / "key.pem").write_bytes(key)
    return directory


def test_a_real_dockerd_refuses_exactly_the_export_dropped_from_its_ca_file() -> None:
    """The model on this host's dockerd with the real docker CLI: the owner's CA plus two exports' issuers admit
    all three; the file without one export's issuer, read at the next start (SIGHUP does not reload it), refuses
    that one and nobody else."""
    work = Path(tempfile.mkdtemp(prefix="pvr-", dir="/tmp"))  # short: dockerd's sockets live under it
    ca = CertificateAuthority(work / "certs")
    ca.ensure()
    ca_pem = ca.ca_cert_path.read_bytes()
    server = ca.issue_server("revoke-engine", ["127.0.0.1"])
    a, b = issue_export("alice"), issue_export("bob")
    exports = [_entry("alice", a.issuer_pem), _entry("bob", b.issuer_pem)]
    trust_file = work / "client-ca.pem"
    trust_file.write_bytes(client_trust(ca_pem, exports))
    owner = TLSFiles(ca.ca_cert_path, ca.client_cert_path, ca.client_key_path)
    clients = work / "clients"
    clients.mkdir()
    owner_dir = _client_dir(clients, "owner", ca_pem, ca.client_cert_path.read_bytes(),
                            ca.client_key_path.read_bytes())
    alice = _client_dir(clients, "alice", ca_pem, a.client.cert_pem, a.client.key_pem)
    bob = _client_dir(clients, "bob", ca_pem, b.client.cert_pem, b.client.key_pem)
    stranger_made = issue_export("stranger")
    stranger = _client_dir(clients, "stranger", ca_pem, stranger_made.client.cert_pem, stranger_made.client.key_pem)
    try:
        with running_dockerd(work, trust_file, server, owner) as url:
            for who in (owner_dir, alice, bob):
                assert _docker_version(url, who).returncode == 0, who
            assert _docker_version(url, stranger).returncode != 0
            exports[0]["revoked_at"] = datetime.now(timezone.utc).isoformat()
            trust_file.write_bytes(client_trust(ca_pem, exports))
            pid = int((work / "docker.pid").read_text())
            os.kill(pid, signal.SIGHUP)  # dockerd's config reload: TLS files are not part of it
            deadline = time.monotonic() + 20
            while b"Reloaded configuration" not in (work / "dockerd.log").read_bytes():
                assert time.monotonic() < deadline, "dockerd did not log its reload"
                time.sleep(0.2)
            assert _docker_version(url, alice).returncode == 0, "dockerd 20.10 reloads no TLS file on SIGHUP"
        with running_dockerd(work, trust_file, server, owner) as url:
            refused = _docker_version(url, alice)
            assert refused.returncode != 0
            assert any(w in refused.stderr.lower() for w in ("tls", "certificate")), refused.stderr
            assert _docker_version(url, owner_dir).returncode == 0
            assert _docker_version(url, bob).returncode == 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- end to end: a generic machine on a real VM, the real docker CLI for the owner and two teammates --------------

def _private_keys_under(*roots: Path) -> list[bytes]:
    """The public key (DER) of every PEM private key in any file under ``roots``, JSON-escaped ones too."""
    import re

    from cryptography.hazmat.primitives import serialization

    pattern = re.compile(rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.S)
    found = []
    for root in roots:
        for path in (p for p in root.rglob("*") if p.is_file()):
            for match in pattern.finditer(path.read_bytes().replace(b"\\n", b"\n")):
                try:
                    key = serialization.load_pem_private_key(match.group(0), None)
                except (ValueError, TypeError):
                    key = serialization.load_ssh_private_key(match.group(0), None)
                found.append(key.public_key().public_bytes(serialization.Encoding.DER,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
    return found


PASSPHRASE = "correct horse battery staple"


def docker(config: Path | str, *args: str, context: str = "rv") -> subprocess.CompletedProcess[str]:
    """The real docker CLI with the docker config ``config`` (the owner's, or a teammate's)."""
    return subprocess.run(["docker", "--context", context, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DOCKER_CONFIG": str(config)})


def answers(config: Path | str, context: str = "rv") -> bool:
    return docker(config, "version", "--format", "{{.Server.Version}}", context=context).returncode == 0


def context_import(config: Path, name: str, export: Path) -> None:
    config.mkdir(parents=True, exist_ok=True)
    imported = subprocess.run(["docker", "context", "import", name, str(export)], capture_output=True, text=True,
                              env={**os.environ, "DOCKER_CONFIG": str(config)})
    assert imported.returncode == 0, imported.stderr


@pytest.mark.qemu
def test_revoke_one_export_of_a_machine_on_a_vm(docker_debian_vm, tmp_path: Path) -> None:
    from clirun import run
    from fixtures_sshd import free_port
    from fixtures_vm import forward_same_port
    from provision.bundle import decrypt
    from provision.machines import Machines

    vm = docker_debian_vm
    engine_port = free_port()
    forward_same_port(vm, engine_port)
    run("create", "-d", "generic", "--generic-ip-address", "127.0.0.1", "--generic-ssh-port", str(vm.port),
        "--generic-ssh-user", vm.user, "--generic-ssh-key", str(vm.key_path), "--generic-engine-port",
        str(engine_port), "rv", timeout=900, check=True)
    store = Path(os.environ["PROVISION_STORAGE_PATH"])
    (tmp_path / "pass").write_text(PASSPHRASE + "\n")
    alice_env = {"PROVISION_STORAGE_PATH": str(tmp_path / "alice" / "store"),
                 "DOCKER_CONFIG": str(tmp_path / "alice" / "docker")}
    bob_config = tmp_path / "bob" / "docker"

    owner = os.environ["DOCKER_CONFIG"]
    alice, bob = alice_env["DOCKER_CONFIG"], bob_config

    # Alice: an encrypted bundle with SSH access; Bob: docker's own context export. Both revocable.
    exported = run("export", "rv", "-o", str(tmp_path / "alice.provision"), "--for", "alice", "--with-ssh",
                   "--passphrase-file", str(tmp_path / "pass"), timeout=300, check=True)
    assert "export --revoke alice rv" in exported.stdout
    run("import", str(tmp_path / "alice.provision"), "--passphrase-file", str(tmp_path / "pass"), env=alice_env,
        check=True)
    run("export", "--docker-context", "rv", "-o", str(tmp_path / "bob.dockercontext"), "--for", "bob",
        timeout=300, check=True)
    context_import(bob_config, "rv", tmp_path / "bob.dockercontext")
    assert answers(owner) and answers(alice) and answers(bob)

    # The issuing keys were never written: no private key anywhere matches an issuer, while the scan does
    # find the export's own client key where it belongs.
    payload = json.loads(decrypt((tmp_path / "alice.provision").read_bytes(), PASSPHRASE.encode()))
    assert payload["format"] == 2
    (tmp_path / "payload").mkdir()
    (tmp_path / "payload" / "alice.json").write_text(json.dumps(payload))
    with tarfile.open(tmp_path / "bob.dockercontext") as tar:
        tar.extractall(tmp_path / "payload" / "bob", filter="data")
    keys = _private_keys_under(tmp_path)  # the owner's HOME, store and docker config, the teammates', the files
    record = json.loads((store / "machines" / "rv" / "machine.json").read_text())
    issuers = [x509.load_pem_x509_certificate(e["issuer"].encode()).public_key() for e in record["exports"]]
    from cryptography.hazmat.primitives import serialization

    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert len(issuers) == 2 and not {i.public_bytes(*spki) for i in issuers} & set(keys)
    alice_leaf = x509.load_pem_x509_certificate(payload["cert"].encode())
    assert alice_leaf.public_key().public_bytes(*spki) in keys

    # A container started before the revocation keeps running through it.
    with Machines.open().remote("rv") as session:
        session.run("tar -C / -ch usr/bin/sleep usr/lib/x86_64-linux-gnu/libc.so.6 lib/x86_64-linux-gnu/libc.so.6 "
                    "lib64/ld-linux-x86-64.so.2 | docker import - provision-tiny:1", sudo=True)
    started = docker(owner, "run", "-d", "provision-tiny:1", "/usr/bin/sleep", "100000")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    pid = docker(owner, "inspect", "--format", "{{.State.Pid}}", cid).stdout.strip()

    clock = time.monotonic()
    revoked = run("export", "--revoke", "alice", "rv", timeout=300, check=True)
    revoke_s = time.monotonic() - clock
    assert 'Revoked the export for "alice"' in revoked.stdout
    assert "carried the SSH key of rv" in revoked.stderr  # what revocation does not take back, said
    refused = docker(alice, "version", "--format", "{{.Server.Version}}")
    assert refused.returncode != 0 and any(w in refused.stderr.lower() for w in ("tls", "certificate")), \
        refused.stderr
    assert answers(owner) and answers(bob)
    assert docker(owner, "inspect", "--format", "{{.State.Running}} {{.State.Pid}}", cid).stdout.split() == \
        ["true", pid]
    shown = {e["for"]: (e["state"], e["revocable"]) for e in json.loads(run("inspect", "rv", check=True).stdout)
             ["exports"]}
    assert shown == {"alice": ("revoked", True), "bob": ("live", True)}

    def one_line(result: subprocess.CompletedProcess[str]) -> str:
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        return result.stderr.strip()

    assert one_line(run("export", "--revoke", "nobody", "rv")) == (
        'machine "rv" has no export for "nobody"; `provision inspect rv` lists its exports')
    assert one_line(run("export", "--revoke", "alice", "rv")).startswith(
        'the export for "alice" of machine "rv" was already revoked on 20')

    # Every later write of the engine's CA file keeps the list: regenerate-certs and a re-provision.
    regen = time.monotonic()
    run("regenerate-certs", "-f", "rv", timeout=600, check=True)
    regen_s = time.monotonic() - regen
    assert answers(owner) and answers(bob) and not answers(alice)
    run("provision", "rv", timeout=900, check=True)
    assert answers(owner) and answers(bob) and not answers(alice)
    assert docker(owner, "inspect", "--format", "{{.State.Running}} {{.State.Pid}}", cid).stdout.split() == \
        ["true", pid]
    # Bob's turn: then only the owner is left.
    run("export", "--revoke", "bob", "rv", timeout=300, check=True)
    assert answers(owner) and not answers(bob) and not answers(alice)
    # Back to back, more dockerd restarts within a minute than docker.service's start limit (3) allows.
    for n in range(2):
        run("export", "--docker-context", "rv", "-o", str(tmp_path / f"carol{n}"), "--for", f"carol{n}",
            timeout=300, check=True)
        run("export", "--revoke", f"carol{n}", "rv", timeout=300, check=True)
    assert answers(owner)
    docker(owner, "rm", "-f", cid)
    said = revoked.stdout.strip().rsplit("(", 1)[-1].rstrip(")")
    print(f"\nexport --revoke on a VM (TCG): {revoke_s:.1f}s wall clock ({said} by its own clock); "
          f"regenerate-certs: {regen_s:.1f}s")
    run("rm", "-f", "-y", "rv", check=True)


def test_export_and_revoke_of_a_machine_that_does_not_answer_say_host_is_not_running(tmp_path: Path) -> None:
    """A generic machine whose SSH port is closed: neither issues nor records anything (nothing is queued)."""
    from clirun import run
    from fixtures_sshd import free_port
    from provision.machines import Machines
    from provision.record import Lifecycle, MachineRecord

    service = Machines.open()
    service.ca.ensure()
    port = free_port()
    data = {"ip": "127.0.0.1", "ssh_user": "root", "ssh_port": port, "engine_port": port, "ssh_key_file": "id_ed25519"}
    made = issue_export("alice")
    record = MachineRecord(name="gone", driver="generic", lifecycle=Lifecycle.READY, driver_data=data,
                           url=f"tcp://127.0.0.1:{port}", host_key="ssh-ed25519 AAAA",
                           exports=(_entry("alice", made.issuer_pem),))
    service.store.claim(record)
    service.store.save(record)
    service.provisioning.install_client_certs("gone")
    (tmp_path / "pass").write_text("a good passphrase\n")
    before = (service.store.machine_dir("gone") / "machine.json").read_bytes()
    for argv in (["export", "gone", "-o", str(tmp_path / "b"), "--passphrase-file", str(tmp_path / "pass")],
                 ["export", "--docker-context", "gone", "-o", str(tmp_path / "c")],
                 ["export", "--revoke", "alice", "gone"]):
        result = run(*argv)
        assert (result.returncode, result.stderr.strip()) == (1, "Host is not running"), argv
    assert (service.store.machine_dir("gone") / "machine.json").read_bytes() == before
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


@pytest.mark.qemu
def test_a_revoked_export_of_a_local_machine_stays_refused_after_stop_and_start(tmp_path: Path) -> None:
    """provision's own image writes the engine's files from its seed at first boot only: a later boot keeps
    the CA file the last export or revoke wrote."""
    from clirun import run

    run("create", "-d", "local", "--local-image", "debian-docker", "--local-memory", "1536", "lv", timeout=1800,
        check=True)
    owner = os.environ["DOCKER_CONFIG"]
    configs = {who: tmp_path / who for who in ("dan", "erin")}
    try:
        for who, config in configs.items():
            exported = run("export", "--docker-context", "lv", "-o", str(tmp_path / f"{who}.dockercontext"),
                           "--for", who, timeout=300, check=True)
            assert "on this computer only" in exported.stderr  # the forwarded port on 127.0.0.1
            context_import(config, "lv", tmp_path / f"{who}.dockercontext")
        assert all(answers(c, "lv") for c in (owner, *configs.values()))
        run("export", "--revoke", "dan", "lv", timeout=300, check=True)
        assert answers(owner, "lv") and answers(configs["erin"], "lv") and not answers(configs["dan"], "lv")
        run("stop", "lv", timeout=300, check=True)
        run("start", "lv", timeout=900, check=True)
        assert answers(owner, "lv") and answers(configs["erin"], "lv") and not answers(configs["dan"], "lv")
    finally:
        run("rm", "-f", "-y", "lv", timeout=300)
