"""`--engine-endpoint ssh`: no engine TCP port anywhere; the docker CLI reaches the engine over SSH with
the store's ssh config (the machine's key, its pinned host key, StrictHostKeyChecking yes), included from
~/.ssh/config only with consent, and taken out again with the last such machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from clirun import run, shell_env
from provision import sshconfig
from provision.provisioner import engine
from provision.record import EngineSettings
from provision.addresses import url_host
from provision.shellenv import config_flags, env_script

URL = "ssh://provision@127.0.0.1:2222"


def test_dockerd_listens_on_its_socket_only() -> None:
    args = [a for f in engine.dockerd_flags("local", 2376, EngineSettings(endpoint="ssh"), live_restore=True)
            for a in f.args]
    assert args[:2] == ["-H", "unix:///var/run/docker.sock"]
    assert not any(a.startswith("tcp://") or a.startswith("--tls") for a in args)
    tcp = [a for f in engine.dockerd_flags("local", 2376, EngineSettings(), live_restore=True) for a in f.args]
    assert "tcp://0.0.0.0:2376" in tcp and "--tlsverify" in tcp


@pytest.mark.parametrize(("shell", "expected"), [
    ("bash", 'unset DOCKER_TLS_VERIFY\nunset DOCKER_CERT_PATH\nexport DOCKER_HOST="ssh://provision@127.0.0.1:2222"\n'
             'export DOCKER_MACHINE_NAME="dev"\n'),
    ("fish", 'set -e DOCKER_TLS_VERIFY;\nset -e DOCKER_CERT_PATH;\nset -gx DOCKER_HOST "ssh://provision@127.0.0.1:2222";\n'
             'set -gx DOCKER_MACHINE_NAME "dev";\n'),
])
def test_env_points_at_the_ssh_url_without_tls_variables(shell: str, expected: str) -> None:
    text = env_script(shell=shell, unset=False, no_proxy=False, command_line="provision env dev", environ={},
                      connection=("dev", URL, url_host(URL), "/store/machines/dev"))
    assert text.startswith(expected)
    assert config_flags(ca="a", cert="b", key="c", url=URL) == f"-H={URL}\n"
    assert url_host(URL) == "127.0.0.1" and url_host("ssh://u@[::1]:22") == "::1"


def test_include_line_is_added_once_at_the_top_and_removed_cleanly(tmp_path: Path) -> None:
    user_config = tmp_path / ".ssh" / "config"
    user_config.parent.mkdir()
    user_config.write_text("Host work\n    User me\n")
    ours = tmp_path / "store" / "ssh_config"
    assert sshconfig.add_include(user_config, ours) and not sshconfig.add_include(user_config, ours)
    lines = user_config.read_text().splitlines()
    assert lines[1] == f'Include "{ours}"' and lines[-2:] == ["Host work", "    User me"]
    assert oct(user_config.stat().st_mode & 0o777) == "0o600"
    assert sshconfig.remove_include(user_config, ours)
    assert user_config.read_text() == "Host work\n    User me\n"
    assert not sshconfig.remove_include(user_config, ours)


def test_the_real_ssh_client_picks_each_machines_key_by_host_user_and_port(tmp_path: Path) -> None:
    """`ssh -G` prints the configuration OpenSSH would use: our blocks must select the right machine."""
    path = tmp_path / "ssh_config"
    machines = [sshconfig.SSHMachine(name, "127.0.0.1", port, "provision", tmp_path / name / "id_ed25519",
                                     tmp_path / name / "known_hosts") for name, port in (("a", 2201), ("b", 2202))]
    sshconfig.write(path, machines)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    for machine in machines:
        result = subprocess.run(["ssh", "-F", str(path), "-G", "-p", str(machine.port), "-l", "provision",
                                 "127.0.0.1"], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        settings = result.stdout.lower().splitlines()
        assert f"identityfile {machine.key}".lower() in settings
        assert f"userknownhostsfile {machine.known_hosts}".lower() in settings
        assert "stricthostkeychecking true" in settings or "stricthostkeychecking yes" in settings
    sshconfig.write(path, [])
    assert not path.exists()


def test_a_driver_without_ssh_cannot_take_the_ssh_endpoint() -> None:
    result = run("create", "-d", "none", "--url", "tcp://127.0.0.1:23790", "--engine-endpoint", "ssh", "nope")
    assert result.returncode == 2 and "--engine-endpoint ssh needs a driver" in result.stderr
    bad = run("create", "-d", "none", "--url", "tcp://127.0.0.1:23790", "--engine-endpoint", "udp", "nope")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


@pytest.mark.qemu
@pytest.mark.timeout(2400)
def test_docker_cli_reaches_a_local_machine_over_ssh_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISION_LOCAL_ACCEL", "tcg")
    home = Path(os.environ["HOME"])
    user_config = home / ".ssh" / "config"
    user_config.parent.mkdir(mode=0o700)
    user_config.write_text("Host elsewhere\n    User someone\n")
    store = Path(os.environ["PROVISION_STORAGE_PATH"])
    # OpenSSH reads ~/.ssh/config from the passwd entry's home, not $HOME: point the real client at the
    # test's own home, as a user's login would.
    wrapper = home / "bin" / "ssh"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F "$HOME/.ssh/config" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{os.environ['PATH']}")
    created = run("create", "-d", "local", "--local-memory", "768", "--engine-endpoint", "ssh",
                  "--ssh-config-include", "quiet", timeout=1800)
    try:
        assert created.returncode == 0, created.stderr
        record = __import__("json").loads((store / "machines" / "quiet" / "machine.json").read_text())
        assert "host_engine_port" not in record["driver_data"]  # nothing forwarded to an engine port
        url = run("url", "quiet", check=True).stdout.strip()
        assert url == f"ssh://provision@127.0.0.1:{record['driver_data']['ssh_port']}"
        assert user_config.read_text().splitlines()[1] == f'Include "{store / "ssh_config"}"'

        version = subprocess.run(["docker", "--context", "quiet", "version", "--format", "{{.Server.Version}}"],
                                 capture_output=True, text=True, timeout=300, env=shell_env())
        assert version.returncode == 0 and version.stdout.strip(), version.stderr
        evaluated = subprocess.run(["bash", "-c", 'eval "$(provision env quiet)" && '
                                    'docker version --format "{{.Server.Version}} $DOCKER_TLS_VERIFY"'],
                                   capture_output=True, text=True, timeout=300, env=shell_env(DOCKER_TLS_VERIFY="1"))
        assert evaluated.stdout == version.stdout.strip() + " \n", evaluated.stderr  # TLS variables unset
        # No engine TCP port inside the machine either: dockerd listens on its socket only.
        listening = run("ssh", "quiet", "ss", "-ltnH", check=True).stdout
        assert ":2376" not in listening and ":22" in listening
    finally:
        removed = run("rm", "-f", "-y", "quiet", timeout=600)
    assert removed.returncode == 0, removed.stderr
    assert user_config.read_text() == "Host elsewhere\n    User someone\n"  # our Include line went with it
    assert not (store / "ssh_config").exists()


def _ssh_endpoint_record(store: Path, name: str, port: int) -> None:
    from provision.record import EngineSettings, Lifecycle, MachineRecord

    record = MachineRecord(name=name, driver="generic", lifecycle=Lifecycle.READY,
                           driver_options={"generic_ip_address": "127.0.0.1"},
                           driver_data={"ip": "127.0.0.1", "ssh_port": port, "ssh_user": "provision",
                                        "ssh_key_file": "id_ed25519"},
                           engine=EngineSettings(endpoint="ssh"), url=f"ssh://provision@127.0.0.1:{port}")
    directory = store / "machines" / name
    directory.mkdir(parents=True, mode=0o700)
    (directory / "machine.json").write_text(json.dumps(record.to_dict()))


def test_the_include_line_follows_a_moved_store(tmp_path: Path) -> None:
    """A store moved after the user agreed to the Include: the next write of its ssh config moves the line."""
    home = Path(os.environ["HOME"])
    user_config = home / ".ssh" / "config"
    user_config.parent.mkdir(mode=0o700, exist_ok=True)
    user_config.write_text("Host elsewhere\n    User someone\n")
    old, new = tmp_path / "old-store", tmp_path / "moved" / "store"
    for name, port in (("a1", 2201), ("a2", 2202)):
        _ssh_endpoint_record(old, name, port)
    sshconfig.agree_to_include(user_config, old / sshconfig.FILE, old / sshconfig.INCLUDED)
    new.parent.mkdir()
    old.rename(new)

    assert run("-s", str(new), "rm", "-f", "a2").returncode == 0
    lines = user_config.read_text().splitlines()
    assert lines[1] == f'Include "{new / sshconfig.FILE}"' and str(old) not in user_config.read_text()
    assert (new / sshconfig.INCLUDED).read_text().strip() == str(new / sshconfig.FILE)
    # The real client, reading ~/.ssh/config, takes the moved store's key and known_hosts for a1.
    settings = subprocess.run(["ssh", "-F", str(user_config), "-G", "-p", "2201", "-l", "provision", "127.0.0.1"],
                              capture_output=True, text=True, timeout=30).stdout.lower().splitlines()
    assert f"identityfile {new / 'machines' / 'a1' / 'id_ed25519'}".lower() in settings

    assert run("-s", str(new), "rm", "-f", "a1").returncode == 0
    assert user_config.read_text() == "Host elsewhere\n    User someone\n"
    assert not (new / sshconfig.INCLUDED).exists() and not (new / sshconfig.FILE).exists()
