"""The quick tier (``cli/quick.py``) against the full click CLI, byte for byte.

Each case runs twice from the same files: once as the console script runs (``main``), once with the
quick tier switched off so click and the core answer. Both must print the same stdout and stderr,
exit with the same code and leave docker's config dir the same. Each case also names which tier
answered, so a fall-through case really falls through and a record case really stays light.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from clirun import run

# Who answered: the quick tier from the record, the quick tier through the handler and the core service
# (without click), or the click application.
RECORD, CORE, CLICK = "record", "core", "click"

# argv[1] picks the path; the rest is the command line. Reports which tier ran through $TIER_PROBE.
RUNNER = """
import os, sys
from provision.cli import main, quick
if sys.argv.pop(1) == "full":
    quick.run_quick = lambda args, scanned: None
try:
    code = main.main(sys.argv[1:])
finally:
    sys.stdout.flush()
    tier = "click" if "click" in sys.modules else "core" if "provision.machines" in sys.modules else "record"
    with open(os.environ["TIER_PROBE"], "w") as probe:
        probe.write(tier)
sys.exit(code)
"""

HEAVY = ("typer", "click", "rich", "cryptography", "paramiko", "boto3", "botocore", "google",
         "provision.machines", "provision.record", "provision.store", "provision.contexts", "provision.driver",
         "typing", "dataclasses")  # the last two: what shellenv, filerules and flagparse avoid on purpose


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


URL = f"tcp://127.0.0.1:{_closed_port()}"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with one ready machine ``dev`` (and its context) and machines the quick tier must refuse."""
    root = tmp_path_factory.mktemp("light")
    env = _env(root)
    subprocess.run([sys.executable, "-c", "from provision.cli.main import main; raise SystemExit(main())",
                    "create", "-d", "none", "--url", URL, "dev"], env=env, check=True, capture_output=True)
    dev = json.loads((root / "store/machines/dev/machine.json").read_text())
    _machine(root, "stale", {**dev, "lifecycle": "error", "url": "tcp://127.0.0.1:1"})
    _machine(root, "newer", {**dev, "schema_version": 2})
    _machine(root, "nourl", {**dev, "url": None})
    _machine(root, "broken", None)
    return root


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT", "SHELL")}
    return {**env, "HOME": str(root), "PROVISION_STORAGE_PATH": str(root / "store"),
            "DOCKER_CONFIG": str(root / "docker"), "SHELL": "/bin/bash", **extra}


def _machine(root: Path, name: str, record: dict[str, object] | None) -> None:
    directory = root / "store" / "machines" / name
    if directory.exists():
        shutil.rmtree(directory)
    shutil.copytree(root / "store" / "machines" / "dev", directory)
    text = "{ not json" if record is None else json.dumps({**record, "name": name})
    (directory / "machine.json").write_text(text)


def _config(root: Path, data: object) -> None:
    (root / "docker" / "config.json").write_text(data if isinstance(data, str) else json.dumps(data))


def _context(root: Path, name: str, meta: str) -> None:
    from provision.filerules import context_meta_path

    path = Path(context_meta_path(str(root / "docker"), name))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(meta)


Setup = Callable[[Path], object]
CASES: list[tuple[str, list[str], dict[str, str], Setup | None, str]] = [
    # env
    ("env", ["env", "--shell", "bash", "dev"], {}, None, RECORD),
    ("env-fish-no-proxy", ["env", "--shell=fish", "--no-proxy", "dev"], {"NO_PROXY": "corp"}, None, RECORD),
    ("env-shell-from-SHELL", ["env", "dev"], {"SHELL": "/usr/bin/fish"}, None, RECORD),
    ("env-unset", ["env", "-u", "--shell", "powershell"], {}, None, RECORD),
    ("env-unset-no-proxy", ["env", "--unset", "--no-proxy"], {"no_proxy": "a"}, None, RECORD),
    ("env-unknown-shell", ["env", "--shell", "nushell", "dev"], {}, None, RECORD),
    ("env-double-dash", ["env", "--", "dev"], {}, None, RECORD),
    ("env-relative-storage", ["-s", "./store/", "env", "dev"], {}, None, RECORD),
    ("env-default", ["env"], {}, lambda r: _machine(r, "default", {**_dev(r), "name": "default"}), RECORD),
    ("env-missing", ["env", "nope"], {}, None, CORE),
    ("env-broken", ["env", "broken"], {}, None, CORE),
    ("env-newer-schema", ["env", "newer"], {}, None, CORE),
    ("env-not-ready", ["env", "stale"], {}, None, CORE),
    ("env-no-url", ["env", "nourl"], {}, None, CORE),
    ("env-no-driver", ["env", "nodriver"], {}, lambda r: _machine(r, "nodriver", _without(_dev(r), "driver")), CORE),
    ("env-no-default", ["env"], {}, None, CORE),
    ("env-invalid-name", ["env", "bad_name!"], {}, None, CORE),
    ("env-two-names", ["env", "dev", "stale"], {}, None, CLICK),
    ("env-unknown-flag", ["env", "--bogus", "dev"], {}, None, CLICK),
    ("env-missing-value", ["env", "dev", "--shell"], {}, None, CLICK),
    ("env-flag-with-value", ["env", "--unset=yes"], {}, None, CLICK),
    ("env-help", ["env", "--help"], {}, None, CLICK),
    ("env-debug", ["--debug", "env", "dev"], {}, None, CLICK),
    # Docker Machine's behaviour that scripts rely on (issue 9, section 3)
    ("env-unset-name", ["env", "-u", "dev"], {}, None, CORE),
    ("env-unset-missing-name", ["env", "--unset", "--shell", "fish", "nope"], {}, None, CORE),
    ("env-unset-two-names", ["env", "-u", "dev", "stale"], {}, None, CLICK),
    ("env-no-proxy-neither-set", ["env", "--no-proxy", "dev"], {}, None, RECORD),
    ("env-no-proxy-both-set", ["env", "--no-proxy", "--shell", "cmd", "dev"], {"NO_PROXY": "a", "no_proxy": "b"},
     None, RECORD),
    ("env-unset-no-proxy-neither-set", ["env", "-u", "--no-proxy", "--shell", "emacs"], {}, None, RECORD),
    ("env-tcsh", ["env", "--shell", "tcsh", "dev"], {}, None, RECORD),
    ("env-native-ssh", ["--native-ssh", "env", "dev"], {}, None, RECORD),
    ("env-MACHINE_STORAGE_PATH", ["env", "dev"], {"PROVISION_STORAGE_PATH": "", "MACHINE_STORAGE_PATH": "store"},
     None, RECORD),
    ("env-MACHINE_STORAGE_PATH-missing", ["env", "dev"],
     {"PROVISION_STORAGE_PATH": "", "MACHINE_STORAGE_PATH": "elsewhere"}, None, CORE),
    # url and config
    ("url", ["url", "dev"], {}, None, RECORD),
    ("url-storage-flag", ["--storage-path=store", "url", "dev"], {}, None, RECORD),
    ("url-default", ["url"], {}, lambda r: _machine(r, "default", {**_dev(r), "name": "default"}), RECORD),
    ("url-missing", ["url", "nope"], {}, None, CORE),
    ("url-broken", ["url", "broken"], {}, None, CORE),
    ("url-no-default", ["url"], {}, None, CORE),
    ("url-default-broken", ["url"], {}, lambda r: _machine(r, "default", None), CORE),
    ("url-both-storage-paths", ["url", "dev"], {"MACHINE_STORAGE_PATH": "elsewhere"}, None, RECORD),
    ("url-native-ssh-storage-flag", ["--native-ssh", "-s", "store", "url", "dev"],
     {"PROVISION_STORAGE_PATH": "", "MACHINE_STORAGE_PATH": "elsewhere"}, None, RECORD),
    ("config", ["config", "dev"], {}, None, RECORD),
    ("config-missing", ["config", "nope"], {}, None, CORE),
    ("config-not-ready", ["config", "stale"], {}, None, CORE),
    ("config-no-default", ["config"], {}, None, CORE),
    ("config-MACHINE_STORAGE_PATH", ["config", "dev"], {"PROVISION_STORAGE_PATH": "", "MACHINE_STORAGE_PATH": "store"},
     None, RECORD),
    # active
    ("active-current-context", ["active"], {}, lambda r: _config(r, {"currentContext": "dev"}), RECORD),
    ("active-DOCKER_CONTEXT", ["active"], {"DOCKER_CONTEXT": "dev"}, None, RECORD),
    ("active-DOCKER_HOST", ["active"], {"DOCKER_HOST": URL}, None, RECORD),
    ("active-DOCKER_HOST-earlier-not-ready", ["active"], {"DOCKER_HOST": URL},
     lambda r: _machine(r, "aaa", {**_dev(r), "lifecycle": "creating"}), CORE),
    ("active-DOCKER_HOST-unknown", ["active"], {"DOCKER_HOST": "tcp://10.9.9.9:2376"}, None, CORE),
    ("active-none", ["active"], {}, None, CORE),
    ("active-foreign-context", ["active"], {"DOCKER_CONTEXT": "theirs"},
     lambda r: _context(r, "theirs", '{"Name": "theirs", "Metadata": {}}'), CORE),
    ("active-owner-gone", ["active"], {"DOCKER_CONTEXT": "gone"},
     lambda r: _context(r, "gone", '{"Name": "gone", "Metadata": {"ProvisionMachine": "gone"}}'), CORE),
    ("active-config-invalid", ["active"], {}, lambda r: _config(r, "{ nope"), CORE),
    ("active-config-not-object", ["active"], {}, lambda r: _config(r, "[1]"), CORE),
    ("active-meta-invalid", ["active"], {"DOCKER_CONTEXT": "dev"}, lambda r: _context(r, "dev", "{ nope"), CORE),
    ("active-meta-not-object", ["active"], {"DOCKER_CONTEXT": "dev"}, lambda r: _context(r, "dev", "[1]"), CORE),
    ("active-extra-argument", ["active", "dev"], {}, None, CLICK),
    ("active-MACHINE_STORAGE_PATH", ["active"],
     {"PROVISION_STORAGE_PATH": "", "MACHINE_STORAGE_PATH": "store", "DOCKER_CONTEXT": "dev"}, None, RECORD),
    # use
    ("use", ["use", "dev"], {}, lambda r: _config(r, {"auths": {"x": {}}, "currentContext": "other"}), RECORD),
    ("use-no-config", ["use", "dev"], {}, None, RECORD),
    ("use-DOCKER_HOST", ["use", "dev"], {"DOCKER_HOST": "tcp://x:1", "DOCKER_CONTEXT": "y"}, None, RECORD),
    ("use-context-missing", ["use", "dev"], {}, lambda r: shutil.rmtree(r / "docker" / "contexts"), CORE),
    ("use-foreign-context", ["use", "dev"], {}, lambda r: _context(r, "dev", '{"Name": "dev", "Metadata": {}}'), CORE),
    ("use-config-invalid", ["use", "dev"], {}, lambda r: _config(r, "{ nope"), CORE),
    ("use-unset", ["use", "--unset"], {}, lambda r: _config(r, {"currentContext": "dev", "k": 1}), CORE),
    ("use-missing", ["use", "nope"], {}, None, CORE),
    ("use-not-ready", ["use", "stale"], {}, None, CORE),
    ("use-no-name", ["use"], {}, None, CORE),
    ("use-two-names", ["use", "dev", "stale"], {}, None, CLICK),
    ("use-MACHINE_STORAGE_PATH", ["use", "dev"], {"PROVISION_STORAGE_PATH": "", "MACHINE_STORAGE_PATH": "store"},
     None, RECORD),
    # ls (always the core, without click when the flags are simple)
    ("ls", ["ls"], {}, None, CORE),
    ("ls-quiet", ["ls", "-q"], {}, None, CORE),
    ("ls-format-filter", ["ls", "--format", "{{.Name}} {{.DriverName}}", "-f", "name=d.*", "--filter=driver=none"],
     {}, None, CORE),
    ("ls-json-timeout", ["ls", "--json", "-t", "3"], {}, None, CORE),
    ("ls-bad-timeout", ["ls", "--timeout", "soon"], {}, None, CLICK),
    ("ls-argument", ["ls", "dev"], {}, None, CLICK),
    ("ls-MACHINE_STORAGE_PATH", ["ls", "-q"], {"PROVISION_STORAGE_PATH": "", "MACHINE_STORAGE_PATH": "store"},
     None, CORE),
]


def _dev(root: Path) -> dict[str, object]:
    return json.loads((root / "store/machines/dev/machine.json").read_text())


def _without(record: dict[str, object], key: str) -> dict[str, object]:
    return {k: v for k, v in record.items() if k != key}


def _run(path: str, work: Path, args: list[str], env: dict[str, str]) -> tuple[object, ...]:
    probe = work.parent / "tier"
    result = subprocess.run([sys.executable, "-c", RUNNER, path, *args], capture_output=True, text=True,
                            cwd=work, env={**_env(work, **env), "TIER_PROBE": str(probe)}, timeout=120)
    config = work / "docker" / "config.json"
    contexts = sorted(str(p.relative_to(work)) for p in (work / "docker").rglob("*"))
    state = (config.read_text() if config.exists() else None, contexts)
    stdout = re.sub(r'"ResponseTime": \d+', '"ResponseTime": N', result.stdout)  # `ls --json` timing
    return stdout, result.stderr, result.returncode, state, probe.read_text()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_quick_tier_says_what_the_full_cli_says(case: tuple[str, list[str], dict[str, str], Setup | None, str],
                                                base: Path, tmp_path: Path) -> None:
    _, args, env, setup, tier = case
    work, snapshot = tmp_path / "w", tmp_path / "snapshot"
    shutil.copytree(base, snapshot, symlinks=True)
    if setup:
        setup(snapshot)
    shutil.copytree(snapshot, work, symlinks=True)
    *quick, quick_tier = _run("quick", work, args, env)
    shutil.rmtree(work)
    shutil.copytree(snapshot, work, symlinks=True)
    *full, full_tier = _run("full", work, args, env)
    assert quick == full
    assert (quick_tier, full_tier) == (tier, CLICK)


def test_every_quick_command_is_covered() -> None:
    from provision.cli.quick import QUICK

    assert {case[0].split("-")[0] for case in CASES} == set(QUICK)
    assert {case[0].split("-")[0] for case in CASES if case[4] == RECORD} == set(QUICK) - {"ls"}


@pytest.mark.parametrize("args", [["env", "dev"], ["url", "dev"], ["config", "dev"], ["active"], ["use", "dev"],
                                  ["env", "--unset"]])
def test_the_quick_tier_imports_nothing_heavy(args: list[str], base: Path, tmp_path: Path) -> None:
    """The start-up budget, held by a test instead of comments: a fresh interpreter, the real entry point."""
    work = tmp_path / "w"
    shutil.copytree(base, work, symlinks=True)
    _config(work, {"currentContext": "dev"})
    # What the interpreter loaded before provision (site hooks such as an editable install's finder) is
    # not the quick tier's doing: only modules that appear after it count.
    code = ("import sys; before = set(sys.modules); import provision.cli.main as m, provision.cli.quick; "
            f"loaded = [n for n in {HEAVY!r} if n in sys.modules]; code = m.main(sys.argv[1:]); "
            f"loaded += [n for n in {HEAVY!r} if n in sys.modules]; "
            "print(sorted(set(loaded) - before), code)")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=work,
                            env=_env(work), timeout=60)
    assert result.stdout.splitlines()[-1] == "[] 0", result.stdout + result.stderr


def test_console_script_uses_the_quick_tier(base: Path, tmp_path: Path) -> None:
    work = tmp_path / "w"
    shutil.copytree(base, work, symlinks=True)
    result = run("url", "dev", env=_env(work))
    assert (result.stdout, result.returncode) == (URL + "\n", 0)


@pytest.mark.parametrize("path", ["store", "./store/", "a/../b", "a//b/.", "/abs/./x/", "//net/x", "///x", "~", "~/s"])
def test_store_root_is_what_the_core_store_makes_of_it(path: str) -> None:
    from provision.filerules import store_root
    from provision.store import Store

    assert store_root(path, {}) == str(Store(Path(path)).root)
