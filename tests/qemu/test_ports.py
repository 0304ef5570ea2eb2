"""Published ports follow containers: a local machine's host agent (QEMU forwards over QMP), and
`provision ports NAME --forward` over SSH for a machine that is not a local VM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import portsrv
from clirun import ctrl_c_as_at_a_terminal, provision_bin, run, shell_env
from fixtures_sshd import free_port
from fixtures_vm import forward_same_port
from provision.ports import Published, published


def docker(context: str, *args: str, timeout: float = 300) -> str:
    done = subprocess.run(["docker", "--context", context, *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
    return done.stdout


def agent_processes(store: Path) -> list[str]:
    """Command lines of the port agents (supervisor and worker) of machines in ``store``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (b"provision.agent" in argv or b"provision.forwarding" in argv) and str(store).encode() in argv:
            found.append(" ".join(a.decode() for a in argv if a))
    return found


def ports_table(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads(run("ports", name, "--json", check=True).stdout)


def forward_state(name: str, port: int, protocol: str = "tcp") -> str:
    for entry in ports_table(name)["forwards"]:
        if entry["port"] == port and entry["protocol"] == protocol:
            return str(entry["state"])
    return "absent"


COMPOSE_FILE = f"""version: "2.4"
services:
  web:
    image: {portsrv.IMAGE}
    command: ["/portsrv"]
    ports: ["18680:8000", "18681:8001/udp"]
  copier:
    image: {portsrv.IMAGE}
    command: ["/portsrv", "copy", "/data/hello.txt", "/data/copy.txt"]
    volumes: ["./data:/data"]
"""


def compose(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Debian's docker-compose (v1) pointed at the machine the Docker Machine way, `eval $(provision env)`.
    Its requests library lets REQUESTS_CA_BUNDLE replace the machine's CA, so that is left out here."""
    env = {k: v for k, v in shell_env().items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    command = 'eval "$(provision env pt)" && exec docker-compose ' + " ".join(args)
    return subprocess.run(["bash", "-c", command], cwd=project, env=env, capture_output=True, text=True,
                          timeout=600)


def test_what_the_engine_publishes_is_what_is_forwarded() -> None:
    """The shapes of GET /containers/json and GET /services (Docker Engine API v1.41)."""
    containers = [
        {"Names": ["/web"], "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                                      {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                                      {"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 5353, "Type": "udp"},
                                      {"PrivatePort": 443, "Type": "tcp"}]},
        {"Names": ["/local"], "Ports": [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 9090, "Type": "tcp"}]},
        {"Names": ["/sctp"], "Ports": [{"IP": "0.0.0.0", "PrivatePort": 9, "PublicPort": 9999, "Type": "sctp"}]},
    ]
    services = [{"ID": "x", "Spec": {"Name": "api"},
                 "Endpoint": {"Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080,
                                         "PublishMode": "ingress"},
                                        {"Protocol": "tcp", "TargetPort": 81, "PublishedPort": 8181,
                                         "PublishMode": "host"}]}}]
    wanted, notes = published(containers, services)
    assert wanted == {Published("tcp", 8080): ["web", "service api"], Published("udp", 5353): ["web"]}
    assert notes == ["local: 127.0.0.1:9090/tcp is bound to one address in the machine"]


@pytest.mark.qemu
@pytest.mark.timeout(2400)
def test_a_local_machines_published_ports_answer_on_this_computer(tmp_path: Path) -> None:
    store = Path(os.environ["PROVISION_STORAGE_PATH"])
    created = run("create", "-d", "local", "--local-memory", "1024", "pt", timeout=1800)
    assert created.returncode == 0, created.stderr
    try:
        status = json.loads(run("inspect", "-f", "{{json .port_agent}}", "pt", check=True).stdout)
        assert status["running"]
        portsrv.wait_for(lambda: str(len(agent_processes(store))), "2", 30)  # the supervisor starts its worker
        portsrv.load("pt", portsrv.image_tar(tmp_path))

        # TCP and UDP, answered on 127.0.0.1 soon after `docker run` returns.
        docker("pt", "run", "-d", "--name", "web", "-p", "18480:8000", "-p", "18481:8001/udp", portsrv.IMAGE, "/portsrv")
        seconds = portsrv.wait_for(lambda: portsrv.tcp(18480), "tcp-ok", 30)
        # UDP's forward follows TCP's in a monitor call of its own, and a lost datagram is not an answer.
        portsrv.wait_for(lambda: portsrv.udp(18481), "udp-ok", 30)
        print(f"\npublished TCP port answered {seconds:.2f}s after docker run returned")
        def forwards() -> str:  # the agent records a forward just after making it
            return repr(sorted((e["port"], e["protocol"], e["state"], tuple(e["sources"]))
                               for e in ports_table("pt")["forwards"]))

        portsrv.wait_for(forwards, repr([(18480, "tcp", "forwarded", ("web",)), (18481, "udp", "forwarded", ("web",))]),
                         30)

        # Debian's docker-compose: a two-service file with `ports:` and a bind mount of a folder under the
        # home directory, which the machine shares at the same path.
        project = Path(os.environ["HOME"]) / "project"
        (project / "data").mkdir(parents=True)
        (project / "data" / "hello.txt").write_text("from the host\n")
        (project / "docker-compose.yml").write_text(COMPOSE_FILE)
        compose_up = compose(project, "up", "-d")
        assert compose_up.returncode == 0, compose_up.stderr
        portsrv.wait_for(lambda: portsrv.tcp(18680), "tcp-ok", 30)
        portsrv.wait_for(lambda: portsrv.udp(18681), "udp-ok", 30)
        copied = project / "data" / "copy.txt"
        try:
            portsrv.wait_for(lambda: copied.read_text() if copied.exists() else "", "from the host\n", 60)
        except AssertionError as exc:  # say what the machine saw
            seen = run("ssh", "pt", "ls", "-la", str(project / "data"), ";", "findmnt", "-t", "9p").stdout
            raise AssertionError(f"{exc}\n{docker('pt', 'ps', '-a')}\n{seen}") from exc
        assert copied.stat().st_uid == os.getuid()  # the user QEMU runs as owns what a container writes
        compose_down = compose(project, "down")
        assert compose_down.returncode == 0, compose_down.stderr
        portsrv.wait_for(lambda: "refused" if "refused" in portsrv.tcp(18680) else "open", "refused", 30)

        # A host port taken here: one line in the log and in `ports`; the other ports keep working.
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 18490))
            holder.listen()
            docker("pt", "run", "-d", "--name", "taken", "-p", "18490:8000", portsrv.IMAGE, "/portsrv")
            portsrv.wait_for(lambda: forward_state("pt", 18490), "failed", 30)
            entry = next(e for e in ports_table("pt")["forwards"] if e["port"] == 18490)
            assert "already in use" in entry["detail"]
            log = (store / "machines" / "pt" / "agent.log").read_text()
            assert log.count("cannot forward 127.0.0.1:18490/tcp") == 1
            assert portsrv.tcp(18480) == "tcp-ok"
        # Freed, the port is taken up at the next look (within one events window).
        portsrv.wait_for(lambda: portsrv.tcp(18490), "tcp-ok", 30)

        # Stopped, the container's port closes.
        docker("pt", "stop", "web")
        portsrv.wait_for(lambda: "refused" if "refused" in portsrv.tcp(18480) else "open", "refused", 30)
        # The agent records the change just after making it.
        portsrv.wait_for(lambda: forward_state("pt", 18480), "absent", 30)

        # A worker that dies is started again, and the forwards come back.
        docker("pt", "run", "-d", "--restart", "always", "--name", "always", "-p", "18482:8000", portsrv.IMAGE,
               "/portsrv")
        portsrv.wait_for(lambda: portsrv.tcp(18482), "tcp-ok", 30)
        worker = next(int(p.split("/")[2]) for p in _pids_with(store, "provision.forwarding"))
        os.kill(worker, signal.SIGKILL)
        log = store / "machines" / "pt" / "agent.log"
        portsrv.wait_for(lambda: str("the worker ended (-9); starting it again" in log.read_text()), "True", 30)
        portsrv.wait_for(lambda: str([int(p.split("/")[2]) != worker for p in _pids_with(store, "provision.forwarding")]),
                         "[True]", 30)  # a new worker, and only one
        portsrv.wait_for(lambda: log.read_text().count("forwarding 127.0.0.1:18482/tcp"), 2, 30)
        portsrv.wait_for(lambda: portsrv.tcp(18482), "tcp-ok", 30)

        # After a restart the --restart always container's port answers again.
        assert run("restart", "pt", timeout=1200).returncode == 0
        portsrv.wait_for(lambda: portsrv.tcp(18482), "tcp-ok", 60)
        listing = run("ls", check=True).stdout
        assert "port agent" not in listing

        # An agent killed outright is an ERRORS entry in ls; start brings it back.
        supervisor = int((store / "machines" / "pt" / "agent.pid").read_text())
        os.killpg(supervisor, signal.SIGKILL)
        portsrv.wait_for(lambda: str(len(agent_processes(store))), "0", 30)
        assert "port agent is not running" in run("ls", check=True).stdout
        assert run("start", "pt", timeout=600).returncode == 0
        portsrv.wait_for(lambda: portsrv.tcp(18482), "tcp-ok", 30)

        # stop and kill leave no agent and no forward.
        assert run("stop", "pt", timeout=600).returncode == 0
        assert agent_processes(store) == [] and "refused" in portsrv.tcp(18482)
        assert not (store / "machines" / "pt" / "agent.pid").exists()
        # `upgrade` of a stopped machine starts it first, as Docker Machine's did (and the agent with it).
        upgraded = run("upgrade", "pt", timeout=1200)
        assert upgraded.returncode == 0 and "pt is not running; starting it first" in upgraded.stderr, upgraded.stderr
        portsrv.wait_for(lambda: portsrv.tcp(18482), "tcp-ok", 60)
        assert run("kill", "pt", timeout=600).returncode == 0
        assert agent_processes(store) == [] and "refused" in portsrv.tcp(18482)
    finally:
        removed = run("rm", "-f", "pt", timeout=600)
    assert removed.returncode == 0, removed.stderr
    assert agent_processes(store) == []


def _pids_with(store: Path, word: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if word.encode() in argv and str(store).encode() in argv:
                found.append(str(entry))
    return found


@pytest.mark.qemu
@pytest.mark.timeout(1200)
def test_ports_forward_over_ssh_follows_a_generic_machines_containers(docker_debian_vm, tmp_path: Path) -> None:
    vm = docker_debian_vm
    engine_port = free_port()
    forward_same_port(vm, engine_port)
    created = run("create", "-d", "generic", "--generic-ip-address", "127.0.0.1", "--generic-ssh-port", str(vm.port),
                  "--generic-ssh-user", vm.user, "--generic-ssh-key", str(vm.key_path),
                  "--generic-engine-port", str(engine_port), "fw", timeout=900)
    assert created.returncode == 0, created.stderr
    forwarder = None
    try:
        portsrv.load("fw", portsrv.image_tar(tmp_path))
        docker("fw", "run", "-d", "--name", "early", "-p", "18580:8000", portsrv.IMAGE, "/portsrv")
        # Not forwarded yet: `ports` lists what the engine publishes and how to forward it.
        entry = next(e for e in ports_table("fw")["forwards"] if e["port"] == 18580)
        assert entry["state"] == "not forwarded" and "--forward" in entry["detail"] and entry["sources"] == ["early"]
        assert "refused" in portsrv.tcp(18580)  # QEMU forwards nothing but SSH and the engine here

        forwarder = subprocess.Popen([provision_bin(), "ports", "fw", "--forward"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_as_at_a_terminal)
        portsrv.wait_for(lambda: portsrv.tcp(18580), "tcp-ok", 60)  # a container running before it started
        docker("fw", "run", "-d", "--name", "late", "-p", "18581:8000", "-p", "18582:8001/udp", portsrv.IMAGE,
               "/portsrv")
        portsrv.wait_for(lambda: portsrv.tcp(18581), "tcp-ok", 30)
        docker("fw", "rm", "-f", "late")
        portsrv.wait_for(lambda: "refused" if "refused" in portsrv.tcp(18581) else "open", "refused", 30)
        forwarder.send_signal(signal.SIGINT)
        _, err = forwarder.communicate(timeout=60)
        assert forwarder.returncode == 0, err
        assert "cannot forward 127.0.0.1:18582/udp (late): SSH carries TCP only" in err
        assert "refused" in portsrv.tcp(18580)  # Ctrl-C took the forwards down
    finally:
        if forwarder is not None and forwarder.poll() is None:
            forwarder.kill()
        run("rm", "-f", "fw", timeout=300)


@pytest.mark.parametrize("environ, flag, wanted", [({}, None, True), ({}, True, False),
                                                  ({"PROVISION_LOCAL_NO_FORWARD_PORTS": "1"}, None, False)])
def test_the_port_agent_can_be_turned_off(environ: dict[str, str], flag: bool | None, wanted: bool,
                                          tmp_path: Path) -> None:
    from fixtures_vm import make_context
    from provision.record import EngineSettings, MachineRecord
    from provision_drivers.local import LocalDriver
    from provision.machines import Machines

    overrides = {} if flag is None else {"local_no_forward_ports": flag}
    driver = LocalDriver(make_context(tmp_path / "m", "m", environ=environ, **overrides))
    record = MachineRecord(name="m", driver="local")
    service = Machines.open(tmp_path / "store")
    assert service.agent_wanted(record, driver) is wanted
    # An engine reached over SSH has no TLS endpoint to follow: no agent whatever the flag says.
    assert not service.agent_wanted(record.evolve(engine=EngineSettings(endpoint="ssh")), driver)
