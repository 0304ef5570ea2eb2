"""``export`` / ``import`` between two stores, and ``export --docker-context`` with the real docker CLI.

The owner's store and the teammate's store are two PROVISION_STORAGE_PATH / DOCKER_CONFIG pairs; the
teammate reaches the test dockerd with the client certificate issued for the export, never the owner's.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from cryptography import x509

from clirun import run
from fixtures_dockerd import Engine
from provision import paths
from provision.bundle import HEADER_SIZE, decrypt

PASSPHRASE = "correct horse battery staple"


def docker(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DOCKER_CONFIG": str(config)})


def server_version(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["Server"]["Version"]


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content: to show that nothing was written."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def owner(engine: Engine) -> dict[str, str]:
    """The owner's store (the test's default environment) with machine "live" on the test dockerd."""
    run("create", "-d", "none", "--url", engine.url, "live", check=True)
    return {}


@pytest.fixture
def teammate(tmp_path: Path) -> dict[str, str]:
    """Another computer: its own store and docker config, and the passphrase in a file."""
    (tmp_path / "mate").mkdir()
    (tmp_path / "pass").write_text(PASSPHRASE + "\n")
    return {"PROVISION_STORAGE_PATH": str(tmp_path / "mate" / "store"),
            "DOCKER_CONFIG": str(tmp_path / "mate" / "docker")}


def export(tmp_path: Path, *extra: str, name: str = "live") -> Path:
    target = tmp_path / "live.provision"
    run("export", name, "-o", str(target), "--passphrase-file", str(tmp_path / "pass"), *extra, check=True)
    return target


def test_round_trip_reaches_the_engine_with_a_new_certificate(owner, teammate, engine: Engine,
                                                              tmp_path: Path) -> None:
    store = Path(os.environ["PROVISION_STORAGE_PATH"])
    result = run("export", "live", "-o", str(tmp_path / "live.provision"), "--for", "alice laptop",
                 "--passphrase-file", str(tmp_path / "pass"), check=True)
    assert "import it with `provision import" in result.stdout
    # 127.0.0.1 is this computer only: the owner is told so.
    assert "on this computer only" in result.stderr
    bundle = tmp_path / "live.provision"
    assert bundle.stat().st_mode & 0o777 == 0o600

    # Decrypted here: the owner's client key and the CA key are not in it; the certificate is new.
    payload = json.loads(decrypt(bundle.read_bytes(), PASSPHRASE.encode()))
    secrets = [(store / paths.CERTS_DIR / f).read_text() for f in (paths.CLIENT_KEY, paths.CA_KEY)]
    secrets.append((store / paths.MACHINES_DIR / "live" / paths.CLIENT_KEY).read_text())
    text = json.dumps(payload)
    for secret in secrets:
        body = "".join(secret.strip().splitlines()[1:-1])
        assert body not in text.replace("\\n", "")
    assert payload["cert"] != (store / paths.CERTS_DIR / paths.CLIENT_CERT).read_text()
    cert = x509.load_pem_x509_certificate(payload["cert"].encode())
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "alice laptop"
    assert "ssh" not in payload

    # The owner's record says what was issued.
    record = json.loads((store / paths.MACHINES_DIR / "live" / paths.RECORD).read_text())
    [issued] = record["exports"]
    assert issued["for"] == "alice laptop" and issued["kind"] == "bundle"
    assert issued["serial"] == format(cert.serial_number, "x")

    imported = run("import", str(bundle), "--passphrase-file", str(tmp_path / "pass"), env=teammate, check=True)
    assert 'Imported machine "live"' in imported.stdout
    mate_store = Path(teammate["PROVISION_STORAGE_PATH"])
    machine_dir = mate_store / paths.MACHINES_DIR / "live"
    assert (machine_dir / paths.CLIENT_CERT).read_text() == payload["cert"]
    assert (machine_dir / paths.CLIENT_KEY).stat().st_mode & 0o777 == 0o600
    assert not (mate_store / paths.CERTS_DIR / paths.CA_KEY).exists()

    # The real docker CLI on the teammate's side, through the context and through `env`.
    assert server_version(docker("--context", "live", "version", "--format", "{{json .}}",
                                 config=Path(teammate["DOCKER_CONFIG"]))) == engine.version
    assert run("url", "live", env=teammate, check=True).stdout == f"{engine.url}\n"
    rows = run("ls", env=teammate, check=True).stdout.splitlines()[1:]
    assert rows[0].split()[:4] == ["live", "-", "imported", "Running"] and f"v{engine.version}" in rows[0]

    # What the export left out is refused in one line; nothing acts on the owner's machine.
    provisioning = ('the imported driver does not provision its engine; "live" cannot be re-provisioned or get '
                    'new certificates here (it was imported: the CA key its engine trusts stays with its owner)')
    refusals = {
        ("ssh", "live"): 'the imported driver offers no SSH access to "live" (it was exported without --with-ssh; '
                         'ask its owner for an export made with it)',
        ("stop", "live"): 'the imported driver cannot stop machine "live" (it was imported: its owner can stop it '
                          'with their provision)',
        ("start", "live"): 'the imported driver cannot start machine "live" (it was imported: its owner can start '
                           'it with their provision)',
        ("regenerate-certs", "-f", "live"): provisioning,
        ("provision", "live"): provisioning,
    }
    for command, message in refusals.items():
        assert one_line(run(*command, env=teammate)) == message
    # The teammate cannot pass it on: the CA key stayed with the owner.
    line = one_line(run("export", "live", "-o", str(tmp_path / "again"), "--passphrase-file",
                        str(tmp_path / "pass"), env=teammate))
    assert "only its owner can issue certificates" in line
    assert not (tmp_path / "again").exists()

    # rm forgets it here; the owner's engine is untouched.
    run("rm", "-y", "live", env=teammate, check=True)
    assert docker("context", "inspect", "live", config=Path(teammate["DOCKER_CONFIG"])).returncode != 0
    assert run("version", "live", check=True).stdout.strip() == engine.version


def test_import_under_another_name(owner, teammate, engine: Engine, tmp_path: Path) -> None:
    bundle = export(tmp_path)
    run("import", str(bundle), "--name", "shared", "--passphrase-file", str(tmp_path / "pass"),
        env=teammate, check=True)
    assert server_version(docker("--context", "shared", "version", "--format", "{{json .}}",
                                 config=Path(teammate["DOCKER_CONFIG"]))) == engine.version


def test_docker_context_export_imports_into_the_real_docker_cli(owner, teammate, engine: Engine,
                                                                tmp_path: Path) -> None:
    target = tmp_path / "live.dockercontext"
    result = run("export", "--docker-context", "live", "-o", str(target), "--for", "bob", check=True)
    assert "unencrypted" in result.stdout
    with tarfile.open(target) as tar:
        names = tar.getnames()
    assert names[0] == "meta.json"
    assert {"tls/docker/ca.pem", "tls/docker/cert.pem", "tls/docker/key.pem"} <= set(names)
    store = Path(os.environ["PROVISION_STORAGE_PATH"])
    with tarfile.open(target) as tar:
        carried = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())
    for secret in (store / paths.CERTS_DIR / paths.CLIENT_KEY, store / paths.CERTS_DIR / paths.CA_KEY):
        assert secret.read_bytes().strip() not in carried
    assert (store / paths.CERTS_DIR / paths.CLIENT_CERT).read_bytes().strip() not in carried
    config = Path(teammate["DOCKER_CONFIG"])
    imported = docker("context", "import", "bobs-engine", str(target), config=config)
    assert imported.returncode == 0, imported.stderr
    assert server_version(docker("--context", "bobs-engine", "version", "--format", "{{json .}}",
                                 config=config)) == engine.version
    record = json.loads((Path(os.environ["PROVISION_STORAGE_PATH"]) / paths.MACHINES_DIR / "live" /
                         paths.RECORD).read_text())
    assert [(e["for"], e["kind"]) for e in record["exports"]] == [("bob", "docker-context")]


def test_bad_inputs_are_one_line_and_write_nothing(owner, teammate, tmp_path: Path) -> None:
    bundle = export(tmp_path)
    blob = bundle.read_bytes()
    mate = Path(teammate["PROVISION_STORAGE_PATH"]).parent
    (tmp_path / "wrong").write_text("not the passphrase\n")

    def refused(path: Path, passfile: str = "pass", *extra: str) -> str:
        before = tree(mate)
        line = one_line(run("import", str(path), "--passphrase-file", str(tmp_path / passfile), *extra,
                            env=teammate))
        assert tree(mate) == before
        return line

    assert refused(bundle, "wrong") == f"wrong passphrase for {bundle} (or its header was changed)"
    truncated = tmp_path / "truncated"
    truncated.write_bytes(blob[:-40])
    assert refused(truncated) == f"{truncated} is damaged: truncated or changed after export"
    short = tmp_path / "short"
    short.write_bytes(blob[:HEADER_SIZE - 3])
    assert refused(short) == f"{short} is truncated"
    # The ciphertext, the tag, the version byte, an scrypt parameter, the salt, the nonce.
    for offset in (HEADER_SIZE + 10, len(blob) - 1, 16, 17, 30, HEADER_SIZE - 1):
        tampered = tmp_path / f"tampered-{offset}"
        changed = bytearray(blob)
        changed[offset] ^= 0x01
        tampered.write_bytes(bytes(changed))
        line = refused(tampered)
        assert any(w in line for w in ("damaged", "version 0 bundle", "header was changed")), line
    assert refused(tmp_path / "pass") == f"{tmp_path / 'pass'} is not a provision bundle"

    # A name clash: the one already here is kept as it was.
    run("create", "-d", "none", "--url", "tcp://127.0.0.1:9", "live", env=teammate, check=True)
    line = refused(bundle)
    assert line == 'Docker machine "live" already exists (import it under another name with --name)'
    # A docker context of the user's own under that name: refused before anything is written.
    context_dir = Path(teammate["DOCKER_CONFIG"])
    assert docker("context", "create", "mine", "--docker", "host=tcp://127.0.0.1:9",
                  config=context_dir).returncode == 0
    line = refused(bundle, "pass", "--name", "mine")
    assert 'docker context "mine" already exists' in line


def test_export_refuses_an_existing_file_and_a_short_passphrase(owner, teammate, tmp_path: Path) -> None:
    target = tmp_path / "exists"
    target.write_text("keep me")
    line = one_line(run("export", "live", "-o", str(target), "--passphrase-file", str(tmp_path / "pass")))
    assert "already exists" in line and target.read_text() == "keep me"
    (tmp_path / "short").write_text("abc\n")
    result = run("export", "live", "-o", str(tmp_path / "new"), "--passphrase-file", str(tmp_path / "short"))
    assert result.returncode == 2 and "too short" in result.stderr
    assert not (tmp_path / "new").exists()
    record = json.loads((Path(os.environ["PROVISION_STORAGE_PATH"]) / paths.MACHINES_DIR / "live" /
                         paths.RECORD).read_text())
    assert "exports" not in record


def test_an_engine_provision_does_not_configure_gets_an_export_that_cannot_be_revoked(owner, teammate,
                                                                                      tmp_path: Path) -> None:
    """The none driver: provision cannot change what the engine trusts, so the export is signed by the store's
    CA (as before revocation existed), the owner is told, and --revoke says why not in one line."""
    result = run("export", "live", "-o", str(tmp_path / "a.provision"), "--for", "alice", "--passphrase-file",
                 str(tmp_path / "pass"), check=True)
    assert "cannot be revoked" in result.stderr and "--revoke" not in result.stdout
    payload = json.loads(decrypt((tmp_path / "a.provision").read_bytes(), PASSPHRASE.encode()))
    assert payload["format"] == 1 and "issuer" not in payload  # what provision before revocation reads
    store = Path(os.environ["PROVISION_STORAGE_PATH"])
    ca = x509.load_pem_x509_certificate((store / paths.CERTS_DIR / paths.CA_CERT).read_bytes())
    x509.load_pem_x509_certificate(payload["cert"].encode()).verify_directly_issued_by(ca)
    line = one_line(run("export", "--revoke", "alice", "live"))
    assert line.startswith('the export for "alice" of machine "live" cannot be revoked: its certificate was '
                           "signed by the store's CA itself") and "expires on 20" in line
    assert one_line(run("export", "--revoke", "nobody", "live")) == (
        'machine "live" has no export for "nobody"; `provision inspect live` lists its exports')
    # One live export per label: --revoke LABEL names one certificate.
    again = one_line(run("export", "live", "-o", str(tmp_path / "b.provision"), "--for", "alice",
                         "--passphrase-file", str(tmp_path / "pass")))
    assert 'already has a live export for "alice"' in again and not (tmp_path / "b.provision").exists()
    inspect = json.loads(run("inspect", "live", check=True).stdout)
    [shown] = inspect["exports"]
    assert (shown["for"], shown["state"], shown["revocable"]) == ("alice", "live", False)
    # Without --for each export still gets a label of its own, even two within one second.
    for n in range(2):
        run("export", "live", "-o", str(tmp_path / f"d{n}.provision"), "--passphrase-file", str(tmp_path / "pass"),
            check=True)
    labels = [e["for"] for e in json.loads(run("inspect", "live", check=True).stdout)["exports"]]
    assert len(set(labels)) == 3 and all(x.startswith("live export 20") for x in labels[1:])
    usage = run("export", "--revoke", "alice", "-o", str(tmp_path / "c"), "live")
    assert usage.returncode == 2 and "--revoke takes only the machine's name" in usage.stderr


def test_a_record_with_exports_round_trips() -> None:
    from provision.record import MachineRecord

    record = MachineRecord(name="m", driver="none", exports=({"for": "a", "kind": "bundle", "serial": "1f"},))
    assert MachineRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    assert "exports" not in MachineRecord(name="m", driver="none").to_dict()


def _on_a_terminal(argv: list[str], answers: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as its controlling terminal, typing ``answers`` at each prompt."""
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its terminal
        os.execv(argv[0], argv)
    output, pending = b"", list(answers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if pending and output.endswith(b": "):  # click's hidden prompt: echo is off once ": " is out
                os.write(fd, pending.pop(0).encode() + b"\n")
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_the_passphrase_is_asked_twice_on_a_terminal(owner, teammate, engine: Engine, tmp_path: Path) -> None:
    from clirun import provision_bin

    target = tmp_path / "typed.provision"
    code, output = _on_a_terminal([provision_bin(), "export", "live", "-o", str(target)],
                                  [PASSPHRASE, PASSPHRASE])
    assert code == 0, output
    assert "Repeat for confirmation" in output and PASSPHRASE not in output
    assert json.loads(decrypt(target.read_bytes(), PASSPHRASE.encode()))["machine"] == "live"
    # Without a terminal and without --passphrase-file: refused, nothing written.
    result = run("export", "live", "-o", str(tmp_path / "none"), input="")
    assert result.returncode == 2 and "--passphrase-file" in result.stderr
    assert not (tmp_path / "none").exists()
    # A machine that does not exist is said before any prompt.
    code, output = _on_a_terminal([provision_bin(), "export", "nosuch", "-o", str(tmp_path / "x")], [])
    assert code == 1 and "Passphrase" not in output and 'Docker machine "nosuch" does not exist' in output


def test_a_header_asking_for_gigabytes_of_scrypt_memory_is_refused_before_deriving() -> None:
    from provision.bundle import BundleError, decrypt, encrypt

    blob = bytearray(encrypt(b"{}", b"a passphrase"))
    blob[17], blob[18] = 20, 16  # log2(N) and r within their own bounds, together 2 GiB of memory
    with pytest.raises(BundleError, match="key-derivation parameters are out of range"):
        decrypt(bytes(blob), b"a passphrase")
