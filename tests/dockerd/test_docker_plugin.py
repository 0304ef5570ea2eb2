"""`docker machine …` through the real docker CLI, once `provision install-docker-plugin` has written the
plugin into $DOCKER_CONFIG/cli-plugins."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from clirun import run

DOCKER = shutil.which("docker") or "docker"


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=60, env=os.environ.copy())


def test_docker_machine_ls_lists_the_machines(tmp_path: Path) -> None:
    plugin = Path(os.environ["DOCKER_CONFIG"]) / "cli-plugins" / "docker-machine"
    assert "docker machine" not in docker("--help").stdout
    installed = run("install-docker-plugin", check=True)
    assert installed.stdout == f"Installed {plugin}: try `docker machine ls`.\n"
    assert os.access(plugin, os.X_OK)
    run("create", "-d", "none", "--url", "tcp://127.0.0.1:1", "web1", check=True)
    run("create", "-d", "none", "--url", "tcp://127.0.0.1:2", "web2", check=True)

    listed = docker("machine", "ls")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "ACTIVE", "DRIVER"]
    assert [row.split()[0] for row in rows] == ["web1", "web2"]
    assert docker("machine", "ls", "-q").stdout == "web1\nweb2\n"
    assert docker("machine", "url", "web2").stdout == "tcp://127.0.0.1:2\n"
    # The docker CLI lists the plugin from its metadata, and errors keep provision's wording and exit code.
    info = docker("info", "--format", "{{json .ClientInfo.Plugins}}")
    plugins = {p["Name"]: p for p in json.loads(info.stdout)}
    assert plugins["machine"]["Vendor"] == "provision" and plugins["machine"]["Path"] == str(plugin)
    assert "machine*" in docker("--help").stdout
    missing = docker("machine", "inspect", "nosuch")
    assert missing.returncode == 1 and 'Docker machine "nosuch" does not exist' in missing.stderr
    meta = subprocess.run([str(plugin), "docker-cli-plugin-metadata"], capture_output=True, text=True, check=True)
    assert json.loads(meta.stdout)["SchemaVersion"] == "0.1.0"

    assert run("install-docker-plugin", "--uninstall", check=True).stdout == f"Removed {plugin}\n"
    assert not plugin.exists()
    assert docker("machine", "ls").returncode != 0


def test_a_docker_machine_that_is_not_ours_is_never_overwritten(tmp_path: Path) -> None:
    plugin = Path(os.environ["DOCKER_CONFIG"]) / "cli-plugins" / "docker-machine"
    plugin.parent.mkdir(parents=True)
    plugin.write_text("#!/bin/sh\necho someone else's\n")
    refused = run("install-docker-plugin")
    assert refused.returncode == 1
    assert refused.stderr == f"Error: {plugin} exists and was not written by provision; move it away first\n"
    assert run("install-docker-plugin", "--uninstall").returncode == 1
    assert plugin.read_text() == "#!/bin/sh\necho someone else's\n"
