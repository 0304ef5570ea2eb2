"""Docker Machine's behaviour that scripts rely on (issue 9, section 3), through the installed command.

What Docker Machine did was read in its source (docker/machine: commands/env.go, ssh.go, rm.go,
inspect.go, commands.go, commands/mcndirs); each test below holds provision to one such fact.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from clirun import provision_bin, run, shell_env

URL = "tcp://127.0.0.1:23762"
IP = "127.0.0.1"


def _store() -> Path:
    return Path(os.environ["PROVISION_STORAGE_PATH"])


@pytest.fixture
def dev() -> str:
    run("create", "-d", "none", "--url", URL, "dev", check=True)
    return str(_store() / "machines" / "dev")


def _stopped(name: str) -> None:
    """A machine as `provision stop` leaves its record: no URL."""
    run("create", "-d", "none", "--url", URL, name, check=True)
    path = _store() / "machines" / name / "machine.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "url": None}))


# -- a stopped machine ----------------------------------------------------------------------------
def test_version_of_a_stopped_machine_is_host_not_running_without_a_connection() -> None:
    _stopped("halted")
    started = time.monotonic()
    result = run("version", "halted")
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "Host is not running\n")
    assert time.monotonic() - started < 10  # answered from the record, not after a connect timeout
    assert run("version", check=True).stdout.startswith("provision version ")  # no NAME: the tool's own


# -- env --no-proxy --------------------------------------------------------------------------------
# One line per shell, as Docker Machine's template printed it for VAR=VALUE (set) or VAR (unset).
SET_LINE = {"bash": 'export {v}="{x}"\n', "fish": 'set -gx {v} "{x}";\n', "powershell": '$Env:{v} = "{x}"\n',
            "cmd": "SET {v}={x}\n", "tcsh": 'setenv {v} "{x}";\n', "emacs": '(setenv "{v}" "{x}")\n'}
UNSET_LINE = {"bash": "unset {v}\n", "fish": "set -e {v};\n", "powershell": "Remove-Item Env:\\\\{v}\n",
              "cmd": "SET {v}=\n", "tcsh": "unsetenv {v};\n", "emacs": '(setenv "{v}" nil)\n'}

# (environment, the variable Docker Machine writes, its value): no_proxy when set, else NO_PROXY.
PROXY_CASES = [
    ({}, "NO_PROXY", IP),
    ({"NO_PROXY": "corp.example"}, "NO_PROXY", f"corp.example,{IP}"),
    ({"no_proxy": "corp.example"}, "no_proxy", f"corp.example,{IP}"),
    ({"NO_PROXY": "upper.example", "no_proxy": "lower.example"}, "no_proxy", f"lower.example,{IP}"),
    ({"NO_PROXY": f"{IP},x"}, "NO_PROXY", f"{IP},x"),  # already there: unchanged
]


@pytest.mark.parametrize("shell", sorted(SET_LINE))
@pytest.mark.parametrize("environ,var,value", PROXY_CASES)
def test_no_proxy_variable_and_value_in_every_shell(shell: str, environ: dict[str, str], var: str, value: str,
                                                    dev: str) -> None:
    out = run("env", "--shell", shell, "--no-proxy", "dev", env=environ, check=True).stdout
    machine_line = SET_LINE[shell].format(v="DOCKER_MACHINE_NAME", x="dev")
    assert machine_line + SET_LINE[shell].format(v=var, x=value) in out
    rest = out.replace(dev, "")  # the test's own temp path may spell no_proxy
    assert rest.count("NO_PROXY") + rest.count("no_proxy") == 1  # one variable; the hint says --no-proxy
    unset = run("env", "--shell", shell, "--unset", "--no-proxy", env=environ, check=True).stdout
    assert UNSET_LINE[shell].format(v="DOCKER_MACHINE_NAME") + UNSET_LINE[shell].format(v=var) in unset


@pytest.mark.parametrize("shell,script", [
    ("bash", 'eval "$(provision env --no-proxy dev)"; printf "%s|%s" "$NO_PROXY" "$no_proxy"'),
    ("fish", 'provision env --shell fish --no-proxy dev | source; printf "%s|%s" "$NO_PROXY" "$no_proxy"'),
    ("tcsh", 'eval `provision env --shell tcsh --no-proxy dev`; printf "%s|" "$NO_PROXY"'),
])
def test_a_real_shell_gets_NO_PROXY_when_neither_is_set(shell: str, script: str, dev: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    argv = [shell, "-f", "-c", script] if shell == "tcsh" else [shell, "-c", script]
    done = subprocess.run(argv, capture_output=True, text=True, env=shell_env(SHELL=f"/bin/{shell}"), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("|")[0] == IP


def test_the_tcsh_hint_runs_in_tcsh(dev: str) -> None:
    """Docker Machine's tcsh hint: ':' lines (a no-op where '#' is no comment) and backquotes (tcsh has no $())."""
    if shutil.which("tcsh") is None:
        pytest.skip("tcsh is not installed")
    out = run("env", "--shell", "tcsh", "dev", check=True).stdout
    hint = out.splitlines()[-2:]
    assert hint == [": Run this command to configure your shell: ", ": eval `provision env --shell tcsh dev`"]
    command = hint[1].removeprefix(": ")  # what the user copies
    done = subprocess.run(["tcsh", "-f", "-c", command + "; printenv DOCKER_MACHINE_NAME"], capture_output=True,
                          text=True, env=shell_env(), timeout=60)
    assert (done.returncode, done.stdout) == (0, "dev\n"), done.stderr


# -- env -u NAME ----------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["-u", "dev"], ["--unset", "dev"], ["-u", "nope"], ["dev", "-u", "--shell", "fish"],
                                  ["-u", "dev", "other"]])
def test_env_unset_with_a_name_is_an_error(args: list[str], dev: str) -> None:
    result = run("env", *args)
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", "Error: Expected no machine name when the -u flag is present\n")


# -- inspect -f prettyjson ------------------------------------------------------------------------
def test_inspect_prettyjson_is_json_indented_by_four(dev: str) -> None:
    whole = json.loads(run("inspect", "dev", check=True).stdout)
    pretty = run("inspect", "-f", "{{prettyjson .Driver}}", "dev", check=True).stdout
    assert pretty == json.dumps(whole["Driver"], indent=4) + "\n"
    assert '\n    "IPAddress": "127.0.0.1"' in pretty
    assert json.loads(run("inspect", "--format", "{{ prettyjson . }}", "dev", check=True).stdout) == whole
    assert run("inspect", "-f", "{{json .Driver.IPAddress}} {{prettyjson .Name}}", "dev",
               check=True).stdout == '"127.0.0.1" "dev"\n'


# -- rm -------------------------------------------------------------------------------------------
def _exists(name: str) -> bool:
    return (_store() / "machines" / name).exists()


def test_rm_f_implies_y(dev: str) -> None:
    result = run("rm", "-f", "dev", timeout=30)
    assert (result.returncode, result.stdout) == (0, "Successfully removed dev\n"), result.stderr
    assert not _exists("dev")


@pytest.mark.parametrize("stdin", ["devnull", "silent-pipe"])
def test_rm_without_y_and_without_a_terminal_refuses_at_once(stdin: str, dev: str) -> None:
    """No terminal and no answer: one line, exit 1, the machine kept, and no hang (a pipe nobody writes to)."""
    source = subprocess.DEVNULL if stdin == "devnull" else subprocess.PIPE
    started = time.monotonic()
    with subprocess.Popen([provision_bin(), "rm", "dev"], stdin=source, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        out, err = process.communicate(timeout=30) if stdin == "devnull" else _without_closing(process)
    assert time.monotonic() - started < 20
    assert process.returncode == 1
    assert err == ("Not removing dev: no answer on stdin, which is not a terminal; "
                   "pass -y (or -f) to remove without asking\n")
    assert out.startswith("About to remove dev\n")
    assert _exists("dev")


def _without_closing(process: subprocess.Popen[str]) -> tuple[str, str]:
    assert process.stdout is not None and process.stderr is not None
    process.wait(timeout=30)  # stdin stays open and silent, as a CI runner's can
    return process.stdout.read(), process.stderr.read()


def test_rm_takes_a_piped_answer_as_docker_machine_did(dev: str) -> None:
    declined = run("rm", "dev", input="n\n", timeout=30)
    assert declined.returncode == 1 and _exists("dev")
    accepted = run("rm", "dev", input="y\n", timeout=30)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.endswith("Successfully removed dev\n")
    assert not _exists("dev")


# -- MACHINE_STORAGE_PATH -------------------------------------------------------------------------
def test_machine_storage_path_is_the_store_when_ours_is_not_set(tmp_path: Path) -> None:
    theirs = tmp_path / "machine-store"
    env = {k: v for k, v in os.environ.items() if k != "PROVISION_STORAGE_PATH"}
    env["MACHINE_STORAGE_PATH"] = str(theirs)
    done = subprocess.run([provision_bin(), "create", "-d", "none", "--url", URL, "m1"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (theirs / "machines" / "m1" / "machine.json").exists()
    for args in (["url", "m1"], ["ls", "-q"], ["--debug", "url", "m1"]):  # quick tier from the record, core, click
        listed = subprocess.run([provision_bin(), *args], capture_output=True, text=True, env=env, timeout=60)
        assert listed.stdout == (URL + "\n" if "url" in args else "m1\n"), (args, listed.stderr)
    env["PROVISION_STORAGE_PATH"] = str(tmp_path / "ours")  # ours wins when both are set
    missing = subprocess.run([provision_bin(), "url", "m1"], capture_output=True, text=True, env=env, timeout=60)
    assert (missing.returncode, missing.stderr) == (1, 'Docker machine "m1" does not exist\n')


def test_store_root_precedence() -> None:
    from provision.filerules import store_root

    assert store_root("/flag", {"PROVISION_STORAGE_PATH": "/ours", "MACHINE_STORAGE_PATH": "/theirs"}) == "/flag"
    assert store_root(None, {"PROVISION_STORAGE_PATH": "/ours", "MACHINE_STORAGE_PATH": "/theirs"}) == "/ours"
    assert store_root(None, {"PROVISION_STORAGE_PATH": "", "MACHINE_STORAGE_PATH": "/theirs"}) == "/theirs"


# -- ssh NAME [ssh-flags] [CMD...] ---------------------------------------------------------------
@pytest.mark.parametrize("args,flags,command", [
    ([], [], []),
    (["uname", "-a"], [], ["uname", "-a"]),
    (["-L", "8080:localhost:80", "-C", "-A"], ["-L", "8080:localhost:80", "-C", "-A"], []),
    (["-L8080:localhost:80", "ls"], ["-L8080:localhost:80"], ["ls"]),
    (["-CL", "8080:localhost:80", "docker", "ps", "-a"], ["-CL", "8080:localhost:80"], ["docker", "ps", "-a"]),
    (["-o", "ServerAliveInterval=5", "-vv", "--", "-x"], ["-o", "ServerAliveInterval=5", "-vv"], ["-x"]),
    (["--", "-L", "x"], [], ["-L", "x"]),
    (["-p", "1", "-"], ["-p", "1"], ["-"]),
])
def test_ssh_client_flags_are_split_from_the_command(args: list[str], flags: list[str], command: list[str]) -> None:
    from provision.ssh import split_client_args

    assert split_client_args(args) == (flags, command)


def test_a_flag_without_its_value_is_a_usage_error() -> None:
    from provision.errors import UsageError
    from provision.ssh import split_client_args

    with pytest.raises(UsageError, match="-L needs a value"):
        split_client_args(["-C", "-L"])


@pytest.fixture
def box(sshd_root) -> object:  # type: ignore[no-untyped-def]
    """A ready generic machine ``box`` at the test sshd, with its key and pinned host key, as a create leaves it."""
    from provision.record import Lifecycle, MachineRecord
    from provision.ssh import known_hosts_line
    from provision.store import Store

    server = sshd_root.sshd
    store = Store(_store())
    record = MachineRecord(name="box", driver="generic", lifecycle=Lifecycle.READY, url=f"tcp://{server.host}:1",
                           host_key=server.host_key,
                           driver_data={"ip": server.host, "ssh_user": sshd_root.user, "ssh_port": server.port,
                                        "engine_port": 1, "ssh_key_file": "generic_ssh_key"})
    store.claim(record)
    store.write_file("box", "generic_ssh_key", sshd_root.key_path.read_text(), 0o600)
    store.write_file("box", "known_hosts", known_hosts_line(server.host, server.port, server.host_key) + "\n", 0o600)
    return sshd_root


def _ssh(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([provision_bin(), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=timeout)


@pytest.mark.sshd
def test_ssh_flags_reach_the_client_and_cannot_undo_the_pinning(box) -> None:  # type: ignore[no-untyped-def]
    port = box.sshd.port
    config = _ssh("ssh", "box", "-G", "-C", "-A", "-o", "ServerAliveInterval=7", "-L", "8080:localhost:80",
                  "-o", "StrictHostKeyChecking=no", "-p", "1", "-l", "nobody")
    assert config.returncode == 0, config.stderr
    lines = set(config.stdout.splitlines())
    assert {"compression yes", "forwardagent yes", "serveraliveinterval 7", "localforward 8080 [localhost]:80"} <= lines
    assert {"stricthostkeychecking true", f"port {port}", f"user {box.user}"} <= lines
    ended = _ssh("ssh", "box", "-G", "--", "-C")  # after --, a word is the command's, not a flag
    assert "compression no" in ended.stdout.splitlines()


@pytest.mark.sshd
def test_ssh_runs_the_command_after_the_flags(box) -> None:  # type: ignore[no-untyped-def]
    done = _ssh("--native-ssh", "ssh", "box", "-v", "-C", "-o", "ServerAliveInterval=5", "echo", "-L", "hi")
    assert (done.returncode, done.stdout) == (0, "-L hi\n"), done.stderr
    assert "debug1:" in done.stderr  # -v reached the client
    assert _ssh("ssh", "box", "--", "echo", "-v").stdout == "-v\n"
    assert _ssh("ssh", "box", "exit", "3").returncode == 3  # the remote command's exit code


@pytest.mark.sshd
def test_ssh_L_really_forwards_a_port(box) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()[1]
    # Forward a local port to the machine's own sshd and read its banner through the tunnel.
    process = subprocess.Popen([provision_bin(), "ssh", "box", "-o", "ExitOnForwardFailure=yes",
                                "-L", f"{local}:127.0.0.1:{box.sshd.port}", "sleep", "20"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        banner = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not banner:
            try:
                with socket.create_connection(("127.0.0.1", local), timeout=5) as tunnel:
                    banner = tunnel.recv(64)
            except OSError:
                assert process.poll() is None, process.communicate()
                time.sleep(0.2)
        assert banner.startswith(b"SSH-2.0-"), banner
    finally:
        process.kill()
        process.communicate()
