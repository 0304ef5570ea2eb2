"""Broken docker files, a broken record, a missing lock file: one line on stderr, and either all of `rm` or
none of it (plain), or all that provision provably made (`rm -f`) with a line for what it could not read.

Each refusal is checked byte for byte: the store and the docker config dir are as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from clirun import run
from snapshots import messages, snapshot

URL = "tcp://127.0.0.1:23762"


def store() -> Path:
    return Path(os.environ["PROVISION_STORAGE_PATH"])


def docker_dir() -> Path:
    return Path(os.environ["DOCKER_CONFIG"])


def context_dirs(context: str) -> tuple[Path, Path]:
    ident = hashlib.sha256(context.encode()).hexdigest()
    return docker_dir() / "contexts" / "meta" / ident, docker_dir() / "contexts" / "tls" / ident


def config() -> dict[str, object]:
    return json.loads((docker_dir() / "config.json").read_text())


def everything() -> dict[str, str]:
    return snapshot(store(), docker_dir())


@pytest.fixture
def web() -> Path:
    """A ready machine `web` whose context is docker's current one: its meta.json."""
    run("create", "-d", "none", "--url", URL, "web", check=True)
    run("use", "web", check=True)
    assert config()["currentContext"] == "web"
    return context_dirs("web")[0] / "meta.json"


def spoil(path: Path, how: str) -> None:
    """Make a docker file hostile, as a messy user or an attacker left it."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if how == "fifo":
        os.mkfifo(path)
    elif how == "directory":
        path.mkdir()
    else:
        path.write_text(how)


HOSTILE = ["[]", '"web"', "not json {", "[" * 100_000, '{"Metadata": "web"}', '{"Name": "web", "Metadata": []}', "fifo",
           "directory", "\xff\xfe binary"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", HOSTILE)
def test_plain_rm_refuses_a_context_it_cannot_read_and_changes_nothing(web: Path, how: str) -> None:
    spoil(web, how)
    before = everything()
    result = run("rm", "-y", "web", timeout=30)
    assert result.returncode == 1
    lines = messages(result)
    assert len(lines) == 1 and str(web) in lines[0] and f"fix it or remove the directory {web.parent}" in lines[0]
    assert everything() == before


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", HOSTILE)
def test_rm_f_removes_a_context_whose_tls_files_are_the_machines(web: Path, how: str) -> None:
    spoil(web, how)
    result = run("rm", "-f", "web", timeout=30)
    assert result.returncode == 0, result.stderr
    lines = messages(result)
    assert len(lines) == 1 and lines[0].startswith("Warning: ") and str(web) in lines[0]
    assert "removed all the same: its TLS files are this machine's" in lines[0]
    assert not any(p.exists() for p in context_dirs("web")) and not (store() / "machines" / "web").exists()
    assert "currentContext" not in config()


def test_rm_f_leaves_a_context_it_cannot_prove_is_its_own(web: Path) -> None:
    spoil(web, "[]")
    (context_dirs("web")[1] / "docker" / "key.pem").write_text("someone else's key")
    result = run("rm", "-f", "web")
    assert result.returncode == 0
    lines = messages(result)
    assert len(lines) == 1 and "left in place, since nothing shows provision made it" in lines[0]
    assert web.read_text() == "[]" and not (store() / "machines" / "web").exists()
    assert config()["currentContext"] == "web"  # not provably ours: not provision's to reset


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["[]", "not json {", "fifo", "directory"])
def test_a_corrupt_config_json_stops_plain_rm_before_any_change(web: Path, how: str) -> None:
    path = docker_dir() / "config.json"
    spoil(path, how)
    before = everything()
    result = run("rm", "-y", "web", timeout=30)
    assert result.returncode == 1
    lines = messages(result)
    assert len(lines) == 1 and str(path) in lines[0] and "fix or remove it" in lines[0]
    assert everything() == before

    forced = run("rm", "-f", "web", timeout=30)
    assert forced.returncode == 0
    lines = messages(forced)
    assert len(lines) == 1 and str(path) in lines[0] and "may still name the removed context 'web'" in lines[0]
    assert not any(p.exists() for p in context_dirs("web")) and not (store() / "machines" / "web").exists()
    after = everything()
    assert {k: v for k, v in after.items() if k.startswith(str(path))} == \
        {k: v for k, v in before.items() if k.startswith(str(path))}  # what it could not read it left alone


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["{", "[]", "fifo", "directory"])
def test_rm_f_of_a_broken_record_leaves_no_context(web: Path, how: str) -> None:
    record = store() / "machines" / "web" / "machine.json"
    spoil(record, how)
    before = everything()
    refused = run("rm", "-y", "web", timeout=30)
    assert refused.returncode == 1 and len(messages(refused)) == 1 and everything() == before
    result = run("rm", "-f", "web", timeout=30)
    assert result.returncode == 0
    lines = messages(result)
    assert len(lines) == 1 and str(record) in lines[0] and lines[0].endswith("removed all the same")
    assert not any(p.exists() for p in context_dirs("web")) and not (store() / "machines" / "web").exists()
    assert "currentContext" not in config()


def test_rm_f_of_machine_a_gets_its_prefixed_context(tmp_path: Path) -> None:
    run("create", "-d", "none", "--url", URL, "a", check=True)
    assert all(p.exists() for p in context_dirs("provision-a"))
    (store() / "machines" / "a" / "machine.json").write_text("{")
    assert run("rm", "-f", "a").returncode == 0
    assert not any(p.exists() for p in context_dirs("provision-a"))


def test_a_missing_lock_file_does_not_break_rm(web: Path) -> None:
    (store() / "machines" / "web" / ".lock").unlink(missing_ok=True)
    result = run("rm", "-y", "web")
    assert result.returncode == 0 and messages(result) == []
    assert not (store() / "machines" / "web").exists() and not web.exists()


def test_config_json_through_a_symlink_stays_a_symlink(web: Path, tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    link = docker_dir() / "config.json"
    target = dotfiles / "docker-config.json"
    target.write_text(json.dumps({"auths": {"registry.example": {}}, "currentContext": "web"}))
    target.chmod(0o640)
    link.unlink()
    link.symlink_to(target)

    def check(current: str | None) -> None:
        assert link.is_symlink() and os.readlink(link) == str(target)
        data = json.loads(target.read_text())
        assert data.get("currentContext") == current and data["auths"] == {"registry.example": {}}
        assert target.stat().st_mode & 0o777 == 0o640

    run("use", "--unset", check=True)
    check(None)
    run("use", "web", check=True)  # the quick path: the context is there
    check("web")
    shutil.rmtree(context_dirs("web")[0])
    run("use", "--unset", check=True)
    run("use", "web", check=True)  # the core: it writes the context again first
    check("web")
    run("rm", "-y", "web", check=True)
    check(None)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["[]", "not json {", "fifo"])
@pytest.mark.parametrize("command", [["use", "web"], ["active"]])
def test_use_and_active_say_which_context_file_is_broken(web: Path, how: str, command: list[str]) -> None:
    spoil(web, how)
    before = everything()
    result = run(*command, timeout=30)
    assert result.returncode == 1
    lines = messages(result)
    assert len(lines) == 1 and str(web) in lines[0]
    assert everything() == before
    listing = run("ls", "-q", timeout=30)  # the other commands keep working
    assert listing.returncode == 0 and listing.stdout == "web\n"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["[]", "not json {", "fifo"])
@pytest.mark.parametrize("command", [["use", "web"], ["use", "--unset"], ["active"]])
def test_a_broken_config_json_is_one_line(web: Path, how: str, command: list[str]) -> None:
    path = docker_dir() / "config.json"
    spoil(path, how)
    before = everything()
    result = run(*command, timeout=30)
    assert result.returncode == 1
    lines = messages(result)
    assert len(lines) == 1 and str(path) in lines[0] and "fix or remove it" in lines[0]
    assert everything() == before


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["[]", "not json {", "fifo"])
def test_create_over_a_broken_context_leaves_nothing(how: str) -> None:
    meta = context_dirs("web")[0] / "meta.json"
    meta.parent.mkdir(parents=True)
    spoil(meta, how)
    run("create", "-d", "none", "--url", URL, "other", check=True)  # the CA and the store exist already
    before = everything()
    result = run("create", "-d", "none", "--url", URL, "web", timeout=30)
    assert result.returncode == 1
    lines = messages(result)
    assert len(lines) == 1 and str(meta) in lines[0], lines
    assert everything() == before


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["fifo", "directory", "[]", "[" * 100_000, "huge", "\xff\xfe"])
@pytest.mark.parametrize("command", [["env", "web"], ["url", "web"], ["use", "web"], ["inspect", "web"]])
def test_a_hostile_record_is_one_line_and_ls_goes_on(web: Path, how: str, command: list[str]) -> None:
    record = store() / "machines" / "web" / "machine.json"
    if how == "huge":
        with open(record, "r+b") as handle:
            handle.truncate(64 << 20)  # sparse: never read whole
    else:
        spoil(record, how)
    before = everything()
    result = run(*command, timeout=30)
    assert result.returncode == 1
    lines = messages(result)
    assert len(lines) == 1 and lines[0].startswith('machine "web": ') and str(record) in lines[0], lines
    assert everything() == before
    listing = run("ls", "--format", "{{.Name}} {{.State}}", timeout=30)
    assert listing.returncode == 0 and listing.stdout == "web Error\n"
