"""The SSH layer against a real OpenSSH sshd on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from fixtures_sshd import SSHD, SSHLogin, free_port, keygen
from readback import read_remote
from provision.driver import SSHEndpoint
from provision.errors import HostKeyMismatch, RemoteCommandError, SSHError, TimeoutExpired, UsageError
from provision.ssh import (RemotePath, RemoteSession, fingerprint, interactive_argv, known_hosts_line, rsync_argv,
                           scp_argv)

pytestmark = pytest.mark.sshd


def ssh_keygen_fingerprint(public_line: str, tmp: Path) -> str:
    """The fingerprint as OpenSSH itself computes it, to check ours against."""
    path = tmp / "fp.pub"
    path.write_text(public_line + "\n")
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return out.split()[1]


def test_first_contact_records_host_key_and_later_contacts_verify_it(sshd_root: SSHLogin) -> None:
    with RemoteSession.connect(sshd_root.endpoint(), known_host_key=None, machine="m1", timeout=10) as s:
        pinned = s.host_key
    assert pinned == sshd_root.sshd.host_key
    with RemoteSession.connect(sshd_root.endpoint(), known_host_key=pinned, machine="m1", timeout=10) as s:
        assert s.run(["echo", "ok"]).out == "ok\n"


def test_changed_host_key_is_refused_naming_machine_and_both_fingerprints(sshd_root: SSHLogin,
                                                                          tmp_path: Path) -> None:
    old = sshd_root.sshd.host_key
    sshd_root.sshd.restart(new_host_key=True)
    new = sshd_root.sshd.host_key
    assert old != new
    started = time.monotonic()
    with pytest.raises(HostKeyMismatch) as info:
        RemoteSession.connect(sshd_root.endpoint(), known_host_key=old, machine="m1", timeout=30)
    assert time.monotonic() - started < 5, "a mismatch is final, not retried"
    message = str(info.value)
    assert '"m1"' in message
    assert ssh_keygen_fingerprint(old, tmp_path) in message
    assert ssh_keygen_fingerprint(new, tmp_path) in message
    assert fingerprint(new) == ssh_keygen_fingerprint(new, tmp_path)


def test_pinned_key_is_asked_for_when_server_has_several(sshd_root: SSHLogin, tmp_path: Path) -> None:
    # A server with an ECDSA and an ed25519 key: pinning the ECDSA one must not read as a change.
    server = sshd_root.sshd
    ecdsa = server.workdir / "ssh_host_ecdsa_key"
    keygen(ecdsa, "ecdsa")
    server.extra_config = f"HostKey {ecdsa}\n"
    server.restart()
    pinned = " ".join(Path(f"{ecdsa}.pub").read_text().split()[:2])
    with RemoteSession.connect(sshd_root.endpoint(), known_host_key=pinned, machine="m", timeout=10) as s:
        assert s.host_key == pinned


def test_wrong_key_fails_at_once_with_a_clear_error(sshd_root: SSHLogin, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    keygen(stranger)
    endpoint = SSHEndpoint("127.0.0.1", sshd_root.sshd.port, "root", stranger)
    started = time.monotonic()
    with pytest.raises(SSHError) as info:
        RemoteSession.connect(endpoint, known_host_key=None, machine="m2", timeout=60)
    assert not isinstance(info.value, HostKeyMismatch)
    assert time.monotonic() - started < 5, "authentication failures are not retried"
    assert "authentication" in str(info.value) and '"root"' in str(info.value) and str(stranger) in str(info.value)
    assert info.value.hint


def test_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    endpoint = SSHEndpoint("127.0.0.1", free_port(), "root", tmp_path / "nope")
    with pytest.raises(SSHError, match="does not exist"):
        RemoteSession.connect(endpoint, known_host_key=None, machine="m", timeout=1)


def test_closed_port_gives_up_in_bounded_time(client_key: Path) -> None:
    endpoint = SSHEndpoint("127.0.0.1", free_port(), "root", client_key)
    started = time.monotonic()
    with pytest.raises(SSHError) as info:
        RemoteSession.connect(endpoint, known_host_key=None, machine="m3", timeout=3)
    elapsed = time.monotonic() - started
    assert 2 <= elapsed < 6
    assert "connection refused" in str(info.value) and "m3" in str(info.value)


def test_waits_for_an_sshd_that_starts_late(sshd_root: SSHLogin) -> None:
    server = sshd_root.sshd
    server.stop()
    timer = threading.Timer(2.0, server.start)
    timer.start()
    try:
        started = time.monotonic()
        with RemoteSession.connect(sshd_root.endpoint(), known_host_key=None, machine="m", timeout=20) as s:
            assert s.run("echo up").out == "up\n"
        assert time.monotonic() - started >= 1.5
    finally:
        timer.join()


def test_run_results_errors_input_output_and_timeout(sshd_root: SSHLogin) -> None:
    logged: list[str] = []
    with RemoteSession.connect(sshd_root.endpoint(), known_host_key=None, machine="m", timeout=10,
                               log=logged.append) as s:
        r = s.run("echo out; echo err >&2; exit 3", check=False)
        assert (r.out, r.err, r.rc) == ("out\n", "err\n", 3)
        with pytest.raises(RemoteCommandError) as info:
            s.run(["sh", "-c", "echo boom >&2; exit 4"])
        assert info.value.remote_exit_code == 4 and "boom" in str(info.value)
        assert s.run(["cat"], input=b"piped\n").out == "piped\n"
        assert s.run(["printf", "%s", "it's $HOME"]).out == "it's $HOME"  # a list is quoted, not expanded
        lines: list[str] = []
        s.run("for i in 1 2 3; do echo line$i; sleep 0.1; done", on_output=lines.append)
        assert lines == ["line1", "line2", "line3"]
        big = s.run("head -c 3000000 /dev/zero | tr '\\0' x; head -c 200000 /dev/zero | tr '\\0' y >&2")
        assert len(big.out) == 3_000_000 and len(big.err) == 200_000
        started = time.monotonic()
        with pytest.raises(TimeoutExpired):
            s.run("sleep 30", timeout=1)
        assert time.monotonic() - started < 5
        assert s.run("echo still usable").rc == 0
    assert "+ echo out; echo err >&2; exit 3" in logged
    assert "+ cat" in logged


def test_write_and_read_files(sshd_root: SSHLogin, tmp_path: Path) -> None:
    target_dir = Path(tempfile.mkdtemp(prefix="provision-ssh-files-"))
    try:
        payload = bytes(range(256)) * 4096
        target = target_dir / "sub dir" / "f.bin"
        target.parent.mkdir()
        with RemoteSession.connect(sshd_root.endpoint(), known_host_key=None, machine="m", timeout=10) as s:
            s.write_file(str(target), payload, mode=0o600)
            assert target.read_bytes() == payload
            assert target.stat().st_mode & 0o777 == 0o600
            assert read_remote(s, str(target)) == payload
            s.write_file(str(target), b"replaced\n", mode=0o644)
            assert target.read_bytes() == b"replaced\n" and target.stat().st_mode & 0o777 == 0o644
            assert sorted(p.name for p in target.parent.iterdir()) == ["f.bin"], "no temp file left behind"
            with pytest.raises(RemoteCommandError):
                read_remote(s, str(target_dir / "missing"))
    finally:
        shutil.rmtree(target_dir)


def test_socket_has_tcp_nodelay_and_commands_are_fast(sshd_user: SSHLogin) -> None:
    # Measured as a user whose login shell is /bin/sh: root's shell on a developer machine may run a
    # heavy ~/.bashrc for every command (bash sources it under sshd), which measures that file, not us.
    with RemoteSession.connect(sshd_user.endpoint(), known_host_key=None, machine="m", timeout=10) as s:
        assert s.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        s.run("true")
        durations = []
        for _ in range(30):
            started = time.perf_counter()
            s.run(["true"])
            durations.append(time.perf_counter() - started)
        assert s.commands_run == 31
    median = statistics.median(durations)
    print(f"per-command latency over one connection: median {median * 1000:.1f} ms, max {max(durations) * 1000:.1f} ms")
    assert median < 0.1


def test_non_root_without_sudo_gets_a_clear_error(sshd_user: SSHLogin) -> None:
    with RemoteSession.connect(sshd_user.endpoint(), known_host_key=None, machine="m4", timeout=10) as s:
        assert s.run(["id", "-un"]).out.strip() == sshd_user.user
        assert s.command_line(["id"], sudo=True) == "sudo -n id"
        with pytest.raises(SSHError, match="passwordless sudo") as info:
            s.run(["id", "-u"], sudo=True)
        assert "m4" in str(info.value) and sshd_user.user in str(info.value)
        with pytest.raises(SSHError, match="passwordless sudo"):
            s.write_file("/etc/provision-test-never", b"x")
        assert not Path("/etc/provision-test-never").exists()
        # Without sudo the user's own files work.
        s.write_file("notes.txt", b"mine\n", sudo=False)
        assert read_remote(s, "notes.txt") == b"mine\n"


def test_non_root_with_passwordless_sudo(sshd_user: SSHLogin) -> None:
    rule = Path(f"/etc/sudoers.d/{sshd_user.user}")
    rule.write_text(f"{sshd_user.user} ALL=(ALL) NOPASSWD:ALL\n")
    rule.chmod(0o440)
    target_dir = Path(tempfile.mkdtemp(prefix="provision-ssh-sudo-"))
    try:
        os.chmod(target_dir, 0o700)  # only root can write here
        with RemoteSession.connect(sshd_user.endpoint(), known_host_key=None, machine="m", timeout=10) as s:
            assert s.run(["id", "-u"], sudo=True).out.strip() == "0"
            assert s.run("id -u; echo $((1+1))", sudo=True).out.split() == ["0", "2"]
            s.write_file(str(target_dir / "key.pem"), b"secret", mode=0o600)
            assert read_remote(s, str(target_dir / "key.pem"), sudo=True) == b"secret"
            with pytest.raises(RemoteCommandError):
                read_remote(s, str(target_dir / "key.pem"))  # not readable by the user itself
        assert (target_dir / "key.pem").stat().st_uid == 0
    finally:
        rule.unlink()
        shutil.rmtree(target_dir)


def test_known_hosts_line_forms() -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOa0"
    assert known_hosts_line("10.0.0.5", 22, key + " comment") == f"10.0.0.5 {key}"
    assert known_hosts_line("127.0.0.1", 2222, key) == f"[127.0.0.1]:2222 {key}"


def _known_hosts(login: SSHLogin, tmp_path: Path, name: str = "known_hosts") -> Path:
    path = tmp_path / name
    path.write_text(known_hosts_line(login.sshd.host, login.sshd.port, login.sshd.host_key) + "\n")
    return path


def test_interactive_argv_runs_real_ssh_with_the_pinned_key(sshd_root: SSHLogin, tmp_path: Path) -> None:
    known = _known_hosts(sshd_root, tmp_path)
    argv = interactive_argv(sshd_root.endpoint(), known, ["echo", "hello"])
    assert argv[argv.index("--") + 1] == "127.0.0.1"
    done = subprocess.run(argv, capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello\n"
    sshd_root.sshd.restart(new_host_key=True)
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert refused.returncode == 255
    assert "HOST IDENTIFICATION HAS CHANGED" in refused.stderr or "Host key verification failed" in refused.stderr


def test_scp_both_directions_and_between_two_machines(sshd_root: SSHLogin, tmp_path: Path) -> None:
    other = SSHD(Path(tempfile.mkdtemp(prefix="provision-sshd-b-")))
    other.authorize(Path(f"{sshd_root.key_path}.pub").read_text())
    other.start()
    remote_dir = Path(tempfile.mkdtemp(prefix="provision-scp-"))
    try:
        a = RemotePath(sshd_root.endpoint(), _known_hosts(sshd_root, tmp_path, "kh_a"), "")
        login_b = SSHLogin(other, "root", sshd_root.key_path)
        b = RemotePath(login_b.endpoint(), _known_hosts(login_b, tmp_path, "kh_b"), "")
        local = tmp_path / "local.txt"
        local.write_text("payload\n")

        def at(remote: RemotePath, path: Path) -> RemotePath:
            return RemotePath(remote.endpoint, remote.known_hosts, str(path))

        def scp(*argv_parts: object, **kw: bool) -> None:
            argv = scp_argv(*argv_parts, **kw)  # type: ignore[arg-type]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            assert done.returncode == 0, (argv, done.stderr)

        scp(str(local), at(a, remote_dir / "up.txt"))
        assert (remote_dir / "up.txt").read_text() == "payload\n"
        scp(at(a, remote_dir / "up.txt"), str(tmp_path / "down.txt"))
        assert (tmp_path / "down.txt").read_text() == "payload\n"
        scp(at(a, remote_dir / "up.txt"), at(b, remote_dir / "across.txt"))
        assert (remote_dir / "across.txt").read_text() == "payload\n"
        tree = tmp_path / "tree"
        (tree / "sub").mkdir(parents=True)
        (tree / "sub" / "f").write_text("deep\n")
        scp(str(tree), at(a, remote_dir / "tree"), recursive=True)
        assert (remote_dir / "tree" / "sub" / "f").read_text() == "deep\n"
        # A relative path is relative to the login directory, as with scp's host:path.
        scp(str(local), at(a, Path("provision-scp-rel.txt")))
        home_copy = Path("/root/provision-scp-rel.txt")
        assert home_copy.read_text() == "payload\n"
        home_copy.unlink()
        if shutil.which("rsync"):
            argv = rsync_argv(str(local), at(a, remote_dir / "delta.txt"))
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            assert done.returncode == 0, done.stderr
            assert (remote_dir / "delta.txt").read_text() == "payload\n"
            argv = rsync_argv(at(a, remote_dir / "tree"), str(tmp_path / "tree-back"), recursive=True)
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            assert done.returncode == 0, done.stderr
            # rsync semantics: a source without a trailing slash lands as a directory inside DST.
            assert (tmp_path / "tree-back" / "tree" / "sub" / "f").read_text() == "deep\n"
        with pytest.raises(UsageError):
            rsync_argv(at(a, remote_dir / "x"), at(b, remote_dir / "y"))
    finally:
        other.stop()
        shutil.rmtree(other.workdir, ignore_errors=True)
        shutil.rmtree(remote_dir, ignore_errors=True)


def test_auth_retry_waits_for_a_key_authorized_late(sshd_root: SSHLogin, tmp_path: Path) -> None:
    late = tmp_path / "late"
    keygen(late)
    endpoint = SSHEndpoint("127.0.0.1", sshd_root.sshd.port, "root", late)
    started = time.monotonic()
    with pytest.raises(SSHError, match="authentication"):
        RemoteSession.connect(endpoint, known_host_key=None, machine="m", timeout=30, auth_retry=2)
    assert 1.0 <= time.monotonic() - started < 6, "retried, and bounded by auth_retry"
    timer = threading.Timer(1.5, sshd_root.sshd.authorize, args=[Path(f"{late}.pub").read_text()])
    timer.start()
    try:
        with RemoteSession.connect(endpoint, known_host_key=None, machine="m", timeout=30, auth_retry=20) as s:
            assert s.run(["echo", "in"]).out == "in\n"
    finally:
        timer.join()
