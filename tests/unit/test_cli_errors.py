"""Bad input: one clear line on stderr, a non-zero exit, and nothing already stored is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clirun import provision_bin, run

URL = "tcp://127.0.0.1:23762"


def store() -> Path:
    return Path(os.environ["PROVISION_STORAGE_PATH"])


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "no error message"
    assert "Traceback" not in result.stderr
    return lines[-1]


def test_version_flag_needs_no_store() -> None:
    from provision import __version__

    for flag in ("--version", "-v"):
        result = run(flag)
        assert result.returncode == 0 and result.stdout == f"provision version {__version__}\n"
    assert not store().exists() or not (store() / "machines").exists()


@pytest.mark.parametrize("name", ["-bad", "bad_name", "bad name", "ümlaut", ".dot", "x" * 64])
def test_invalid_names(name: str) -> None:
    result = run("create", "-d", "none", "--url", URL, "--", name)
    assert result.returncode == 2
    # A leading dash reads as a flag before it can read as a name; either way it is refused.
    expected = "No such option: -bad" if name.startswith("-") else f'Invalid machine name "{name}"'
    assert one_line_error(result).startswith(expected)
    assert not (store() / "machines").exists() or not any((store() / "machines").iterdir())


def test_existing_name_keeps_the_first_record() -> None:
    run("create", "-d", "none", "--url", URL, "m1", check=True)
    before = (store() / "machines" / "m1" / "machine.json").read_text()
    result = run("create", "-d", "none", "--url", "tcp://127.0.0.1:1", "m1")
    assert one_line_error(result) == 'Docker machine "m1" already exists'
    assert (store() / "machines" / "m1" / "machine.json").read_text() == before


@pytest.mark.parametrize("command", [["env", "ghost"], ["url", "ghost"], ["config", "ghost"], ["ip", "ghost"],
                                     ["inspect", "ghost"], ["status", "ghost"], ["rm", "-y", "ghost"],
                                     ["use", "ghost"], ["stop", "ghost"], ["ssh", "ghost"]])
def test_unknown_machine(command: list[str]) -> None:
    result = run(*command)
    assert result.returncode == 1
    assert 'Docker machine "ghost" does not exist' in one_line_error(result)


def test_unknown_driver() -> None:
    result = run("create", "-d", "virtualbox", "m")
    assert result.returncode == 2
    assert one_line_error(result).startswith('Driver "virtualbox" not found. Known drivers:')


def test_missing_url() -> None:
    result = run("create", "-d", "none", "m")
    assert result.returncode == 2
    assert one_line_error(result) == 'driver "none" needs --url (or set NONE_URL)'
    assert not (store() / "machines" / "m").exists()


def test_bad_url_leaves_nothing() -> None:
    result = run("create", "-d", "none", "--url", "http://x", "m")
    assert result.returncode == 2 and "--url must look like tcp://HOST:PORT" in one_line_error(result)
    assert not (store() / "machines" / "m").exists()


def test_unknown_flag_is_usage_error() -> None:
    result = run("create", "-d", "none", "--url", URL, "--bogus", "m")
    assert result.returncode == 2 and one_line_error(result) == "No such option: --bogus"


def test_driver_flag_from_environment() -> None:
    run("create", "-d", "none", "m", env={"NONE_URL": URL}, check=True)
    assert run("url", "m", check=True).stdout == URL + "\n"


def test_shared_flags_from_environment_and_defaults() -> None:
    run("create", "m", "--engine-label", "team=a", env={"MACHINE_DRIVER": "none", "NONE_URL": URL,
                                                        "MACHINE_DOCKER_INSTALL_URL": "none"}, check=True)
    run("create", "-d", "none", "--url", URL, "n", check=True)
    engines = {name: json.loads((store() / "machines" / name / "machine.json").read_text())["engine"]
               for name in ("m", "n")}
    assert engines["m"]["install_url"] == "none" and engines["m"]["labels"] == ["team=a"]
    assert engines["n"] == {"install_url": "distro", "opts": [], "labels": [], "insecure_registries": [],
                            "registry_mirrors": [], "storage_driver": None, "env": [], "tls_san": []}


def test_create_help_lists_driver_flags() -> None:
    out = run("create", "-d", "none", "--help", check=True).stdout
    assert "--url VALUE" in out and "env: NONE_URL" in out and "--engine-install-url" in out
    drivers = run("drivers", check=True).stdout
    assert "none (built-in)" in drivers and "--url" in drivers


def test_corrupt_record_shows_in_ls_and_is_not_overwritten() -> None:
    run("create", "-d", "none", "--url", URL, "good", check=True)
    run("create", "-d", "none", "--url", URL, "bad", check=True)
    record = store() / "machines" / "bad" / "machine.json"
    record.write_text('{"schema_version": 1, "name": "bad", ')
    ls = run("ls", "--timeout", "2")
    assert ls.returncode == 0
    rows = {line.split()[0]: line for line in ls.stdout.splitlines()[1:]}
    assert "not valid JSON" in rows["bad"] and "good" in rows
    for command in (["env", "bad"], ["url", "bad"], ["inspect", "bad"]):
        result = run(*command)
        assert result.returncode == 1 and "not valid JSON" in one_line_error(result)
    assert run("url", "good", check=True).stdout == URL + "\n"
    again = run("create", "-d", "none", "--url", URL, "bad")
    assert one_line_error(again) == 'Docker machine "bad" already exists'
    assert record.read_text() == '{"schema_version": 1, "name": "bad", '
    assert run("rm", "-y", "bad").returncode == 1  # not silently: needs -f
    assert run("rm", "-y", "-f", "bad", check=True).returncode == 0


def test_unreadable_record() -> None:
    if os.geteuid() == 0:
        # root reads any file: make the record a directory instead, which no one can read as a file.
        run("create", "-d", "none", "--url", URL, "odd", check=True)
        record = store() / "machines" / "odd" / "machine.json"
        record.unlink()
        record.mkdir()
    else:
        run("create", "-d", "none", "--url", URL, "odd", check=True)
        (store() / "machines" / "odd" / "machine.json").chmod(0)
    result = run("env", "odd")
    assert result.returncode == 1 and "cannot read" in one_line_error(result)


def test_newer_schema_is_refused() -> None:
    run("create", "-d", "none", "--url", URL, "future", check=True)
    path = store() / "machines" / "future" / "machine.json"
    data = json.loads(path.read_text())
    data["schema_version"] = 99
    path.write_text(json.dumps(data))
    result = run("url", "future")
    assert "schema version 99" in one_line_error(result)


def test_docker_config_kept_and_foreign_context_not_overwritten() -> None:
    docker_config = Path(os.environ["DOCKER_CONFIG"])
    subprocess.run(["docker", "context", "create", "mine", "--docker", "host=tcp://127.0.0.1:1"],
                   check=True, capture_output=True, env=os.environ.copy())
    (docker_config / "config.json").write_text(json.dumps({"auths": {}, "currentContext": "mine",
                                                           "detachKeys": "ctrl-x"}))
    result = run("create", "-d", "none", "--url", URL, "mine")
    assert "already exists and was not created by provision" in one_line_error(result)
    assert not (store() / "machines" / "mine").exists()
    inspect = subprocess.run(["docker", "context", "inspect", "mine"], capture_output=True, text=True)
    assert json.loads(inspect.stdout)[0]["Endpoints"]["docker"]["Host"] == "tcp://127.0.0.1:1"
    assert json.loads((docker_config / "config.json").read_text())["detachKeys"] == "ctrl-x"


def test_broken_docker_config_is_a_clear_error() -> None:
    run("create", "-d", "none", "--url", URL, "m", check=True)
    config = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    config.write_text("{not json")
    result = run("use", "m")
    assert "is not valid JSON" in one_line_error(result)
    assert config.read_text() == "{not json"


def test_short_and_reserved_names_get_prefixed_contexts() -> None:
    run("create", "-d", "none", "--url", URL, "a", check=True)
    run("create", "-d", "none", "--url", URL, "default", check=True)
    assert run("use", "a", check=True).stdout == 'Current context is now "provision-a"\n'
    assert run("active", check=True).stdout == "a\n"
    assert run("use", "default", check=True).stdout == 'Current context is now "provision-default"\n'


def test_twenty_concurrent_creates() -> None:
    procs = [subprocess.Popen([provision_bin(), "create", "-d", "none", "--url", URL, f"c{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(20)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    names = run("ls", "-q", check=True).stdout.split()
    assert sorted(names) == sorted(f"c{i}" for i in range(20))
    for i in range(20):
        data = json.loads((store() / "machines" / f"c{i}" / "machine.json").read_text())
        assert data["name"] == f"c{i}" and data["lifecycle"] == "ready"
    # one CA for all: every machine's ca.pem is the same
    cas = {(store() / "machines" / f"c{i}" / "ca.pem").read_bytes() for i in range(20)}
    assert len(cas) == 1


def test_no_traceback_on_unexpected_usage() -> None:
    result = subprocess.run([sys.executable, "-m", "provision.cli.main", "ls", "--timeout", "abc"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
