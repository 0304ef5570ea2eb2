"""The start-up path (``cli/fast.py``, ``cli/light.py``) against the full typer CLI, byte for byte.

Each case runs twice from the same files: once as the console script runs (``main``), once with the
fast path switched off so typer and the core answer. Both must print the same stdout and stderr,
exit with the same code and leave docker's config dir the same. Each case also names which tier
answered, so a fall-through case really falls through and a light case really stays light.
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

LIGHT, FAST, TYPER = "light", "fast", "typer"  # who answered: lean tier, core without typer, typer

# argv[1] picks the path; the rest is the command line. Reports which tier ran through $TIER_PROBE.
RUNNER = """
import os, sys
from provision.cli import fast, main
if sys.argv.pop(1) == "full":
    fast.run_fast = lambda args: None
try:
    code = main.main(sys.argv[1:])
finally:
    sys.stdout.flush()
    tier = "typer" if "typer" in sys.modules else "fast" if "provision.machines" in sys.modules else "light"
    with open(os.environ["TIER_PROBE"], "w") as probe:
        probe.write(tier)
sys.exit(code)
"""

HEAVY = ("typer", "click", "rich", "cryptography", "paramiko", "boto3", "botocore", "google",
         "provision.machines", "provision.record", "provision.store", "provision.contexts", "provision.driver",
         "typing", "dataclasses")  # the last two: what shellenv, lean and flagparse avoid on purpose


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


URL = f"tcp://127.0.0.1:{_closed_port()}"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with one ready machine ``dev`` (and its context) and machines the light path must refuse."""
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
    from provision.lean import context_meta_path

    path = Path(context_meta_path(str(root / "docker"), name))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(meta)


Setup = Callable[[Path], object]
CASES: list[tuple[str, list[str], dict[str, str], Setup | None, str]] = [
    # env
    ("env", ["env", "--shell", "bash", "dev"], {}, None, LIGHT),
    ("env-fish-no-proxy", ["env", "--shell=fish", "--no-proxy", "dev"], {"NO_PROXY": "corp"}, None, LIGHT),
    ("env-shell-from-SHELL", ["env", "dev"], {"SHELL": "/usr/bin/fish"}, None, LIGHT),
    ("env-unset", ["env", "-u", "--shell", "powershell"], {}, None, LIGHT),
    ("env-unset-no-proxy", ["env", "--unset", "--no-proxy"], {"no_proxy": "a"}, None, LIGHT),
    ("env-unknown-shell", ["env", "--shell", "nushell", "dev"], {}, None, LIGHT),
    ("env-double-dash", ["env", "--", "dev"], {}, None, LIGHT),
    ("env-relative-storage", ["-s", "./store/", "env", "dev"], {}, None, LIGHT),
    ("env-default", ["env"], {}, lambda r: _machine(r, "default", {**_dev(r), "name": "default"}), LIGHT),
    ("env-missing", ["env", "nope"], {}, None, FAST),
    ("env-broken", ["env", "broken"], {}, None, FAST),
    ("env-newer-schema", ["env", "newer"], {}, None, FAST),
    ("env-not-ready", ["env", "stale"], {}, None, FAST),
    ("env-no-url", ["env", "nourl"], {}, None, FAST),
    ("env-no-driver", ["env", "nodriver"], {}, lambda r: _machine(r, "nodriver", _without(_dev(r), "driver")), FAST),
    ("env-no-default", ["env"], {}, None, FAST),
    ("env-invalid-name", ["env", "bad_name!"], {}, None, FAST),
    ("env-two-names", ["env", "dev", "stale"], {}, None, TYPER),
    ("env-unknown-flag", ["env", "--bogus", "dev"], {}, None, TYPER),
    ("env-missing-value", ["env", "dev", "--shell"], {}, None, TYPER),
    ("env-flag-with-value", ["env", "--unset=yes"], {}, None, TYPER),
    ("env-help", ["env", "--help"], {}, None, TYPER),
    ("env-debug", ["--debug", "env", "dev"], {}, None, TYPER),
    # Docker Machine's behaviour that scripts rely on (issue 9, section 3)
    ("env-unset-name", ["env", "-u", "dev"], {}, None, FAST),
    ("env-unset-missing-name", ["env", "--unset", "--shell", "fish", "nope"], {}, None, FAST),
    ("env-unset-two-names", ["env", "-u", "dev", "stale"], {}, None, TYPER),
    ("env-no-proxy-neither-set", ["env", "--no-proxy", "dev"], {}, None, LIGHT),
    ("env-no-proxy-both-set", ["env", "--no-proxy", "--shell", "cmd", "dev"], {"NO_PROXY": "a", "no_proxy": "b"},
     None, LIGHT),
    ("env-unset-no-proxy-neither-set", ["env", "-u", "--no-proxy", "--shell", "emacs"], {}, None, LIGHT),
    ("env-tcsh", ["env", "--shell", "tcsh", "dev"], {}, None, LIGHT),
    ("env-native-ssh", ["--native-ssh", "env", "dev"], {}, None, LIGHT),
    ("env-MACHINE_STORAGE_PATH", ["env", "dev"], {"PROVISION_STORAGE_PATH": "", "MACHINE_STORAGE_PATH": "store"},
     None, LIGHT),
    ("env-MACHINE_STORAGE_PATH-missing", ["env", "dev"],
     {"PROVISION_STORAGE_PATH": "", "MACHINE_STORAGE_PATH": "elsewhere"}, None, FAST),
    # url and config
    ("url", ["url", "dev"], {}, None, LIGHT),
    ("url-storage-flag", ["--storage-path=store", "url", "dev"], {}, None, LIGHT),
    ("url-default", ["url"], {}, lambda r: _machine(r, "default", {**_dev(r), "name": "default"}), LIGHT),
    ("url-missing", ["url", "nope"], {}, None, FAST),
    ("url-broken", ["url", "broken"], {}, None, FAST),
    ("url-no-default", ["url"], {}, None, FAST),
    ("url-default-broken", ["url"], {}, lambda r: _machine(r, "default", None), FAST),
    ("url-both-storage-paths", ["url", "dev"], {"MACHINE_STORAGE_PATH": "elsewhere"}, None, LIGHT),
    ("url-native-ssh-storage-flag", ["--native-ssh", "-s", "store", "url", "dev"],
     {"PROVISION_STORAGE_PATH": "", "MACHINE_STORAGE_PATH": "elsewhere"}, None, LIGHT),
    ("config", ["config", "dev"], {}, None, LIGHT),
    ("config-missing", ["config", "nope"], {}, None, FAST),
    ("config-not-ready", ["config", "stale"], {}, None, FAST),
    ("config-no-default", ["config"], {}, None, FAST),
    ("config-MACHINE_STORAGE_PATH", ["config", "dev"], {"PROVISION_STORAGE_PATH": "", "MACHINE_STORAGE_PATH": "store"},
     None, LIGHT),
    # active
    ("active-current-context", ["active"], {}, lambda r: _config(r, {"currentContext": "dev"}), LIGHT),
    ("active-DOCKER_CONTEXT", ["active"], {"DOCKER_CONTEXT": "dev"}, None, LIGHT),
    ("active-DOCKER_HOST", ["active"], {"DOCKER_HOST": URL}, None, LIGHT),
    ("active-DOCKER_HOST-earlier-not-ready", ["active"], {"DOCKER_HOST": URL},
     lambda r: _machine(r, "aaa", {**_dev(r), "lifecycle": "creating"}), FAST),
    ("active-DOCKER_HOST-unknown", ["active"], {"DOCKER_HOST": "tcp://10.9.9.9:2376"}, None, FAST),
    ("active-none", ["active"], {}, None, FAST),
    ("active-foreign-context", ["active"], {"DOCKER_CONTEXT": "theirs"},
     lambda r: _context(r, "theirs", '{"Name": "theirs", "Metadata": {}}'), FAST),
    ("active-owner-gone", ["active"], {"DOCKER_CONTEXT": "gone"},
     lambda r: _context(r, "gone", '{"Name": "gone", "Metadata": {"ProvisionMachine": "gone"}}'), FAST),
    ("active-config-invalid", ["active"], {}, lambda r: _config(r, "{ nope"), FAST),
    ("active-config-not-object", ["active"], {}, lambda r: _config(r, "[1]"), FAST),
    ("active-meta-invalid", ["active"], {"DOCKER_CONTEXT": "dev"}, lambda r: _context(r, "dev", "{ nope"), FAST),
    ("active-meta-not-object", ["active"], {"DOCKER_CONTEXT": "dev"}, lambda r: _context(r, "dev", "[1]"), FAST),
    ("active-extra-argument", ["active", "dev"], {}, None, TYPER),
    ("active-MACHINE_STORAGE_PATH", ["active"],
     {"PROVISION_STORAGE_PATH": "", "MACHINE_STORAGE_PATH": "store", "DOCKER_CONTEXT": "dev"}, None, LIGHT),
    # use
    ("use", ["use", "dev"], {}, lambda r: _config(r, {"auths": {"x": {}}, "currentContext": "other"}), LIGHT),
    ("use-no-config", ["use", "dev"], {}, None, LIGHT),
    ("use-DOCKER_HOST", ["use", "dev"], {"DOCKER_HOST": "tcp://x:1", "DOCKER_CONTEXT": "y"}, None, LIGHT),
    ("use-context-missing", ["use", "dev"], {}, lambda r: shutil.rmtree(r / "docker" / "contexts"), FAST),
    ("use-foreign-context", ["use", "dev"], {}, lambda r: _context(r, "dev", '{"Name": "dev", "Metadata": {}}'), FAST),
    ("use-config-invalid", ["use", "dev"], {}, lambda r: _config(r, "{ nope"), FAST),
    ("use-unset", ["use", "--unset"], {}, lambda r: _config(r, {"currentContext": "dev", "k": 1}), FAST),
    ("use-missing", ["use", "nope"], {}, None, FAST),
    ("use-not-ready", ["use", "stale"], {}, None, FAST),
    ("use-no-name", ["use"], {}, None, FAST),
    ("use-two-names", ["use", "dev", "stale"], {}, None, TYPER),
    ("use-MACHINE_STORAGE_PATH", ["use", "dev"], {"PROVISION_STORAGE_PATH": "", "MACHINE_STORAGE_PATH": "store"},
     None, LIGHT),
    # ls (always the core, without typer when the flags are simple)
    ("ls", ["ls"], {}, None, FAST),
    ("ls-quiet", ["ls", "-q"], {}, None, FAST),
    ("ls-format-filter", ["ls", "--format", "{{.Name}} {{.DriverName}}", "-f", "name=d.*", "--filter=driver=none"],
     {}, None, FAST),
    ("ls-json-timeout", ["ls", "--json", "-t", "3"], {}, None, FAST),
    ("ls-bad-timeout", ["ls", "--timeout", "soon"], {}, None, TYPER),
    ("ls-argument", ["ls", "dev"], {}, None, TYPER),
    ("ls-MACHINE_STORAGE_PATH", ["ls", "-q"], {"PROVISION_STORAGE_PATH": "", "MACHINE_STORAGE_PATH": "store"},
     None, FAST),
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
def test_light_path_says_what_the_full_cli_says(case: tuple[str, list[str], dict[str, str], Setup | None, str],
                                                base: Path, tmp_path: Path) -> None:
    _, args, env, setup, tier = case
    work, snapshot = tmp_path / "w", tmp_path / "snapshot"
    shutil.copytree(base, snapshot, symlinks=True)
    if setup:
        setup(snapshot)
    shutil.copytree(snapshot, work, symlinks=True)
    *fast, fast_tier = _run("fast", work, args, env)
    shutil.rmtree(work)
    shutil.copytree(snapshot, work, symlinks=True)
    *full, full_tier = _run("full", work, args, env)
    assert fast == full
    assert (fast_tier, full_tier) == (tier, TYPER)


def test_every_light_command_is_covered() -> None:
    from provision.cli.fast import _FLAGS

    assert {case[0].split("-")[0] for case in CASES} == set(_FLAGS)
    assert {case[0].split("-")[0] for case in CASES if case[4] == LIGHT} == set(_FLAGS) - {"ls"}


@pytest.mark.parametrize("args", [["env", "dev"], ["url", "dev"], ["config", "dev"], ["active"], ["use", "dev"],
                                  ["env", "--unset"]])
def test_the_light_path_imports_nothing_heavy(args: list[str], base: Path, tmp_path: Path) -> None:
    """The start-up budget, held by a test instead of comments: a fresh interpreter, the real entry point."""
    work = tmp_path / "w"
    shutil.copytree(base, work, symlinks=True)
    _config(work, {"currentContext": "dev"})
    # What the interpreter loaded before provision (site hooks such as an editable install's finder) is
    # not the light path's doing: only modules that appear after it count.
    code = ("import sys; before = set(sys.modules); import provision.cli.main as m, provision.cli.fast; "
            f"loaded = [n for n in {HEAVY!r} if n in sys.modules]; code = m.main(sys.argv[1:]); "
            f"loaded += [n for n in {HEAVY!r} if n in sys.modules]; "
            "print(sorted(set(loaded) - before), code)")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=work,
                            env=_env(work), timeout=60)
    assert result.stdout.splitlines()[-1] == "[] 0", result.stdout + result.stderr


def test_console_script_uses_the_light_path(base: Path, tmp_path: Path) -> None:
    work = tmp_path / "w"
    shutil.copytree(base, work, symlinks=True)
    result = run("url", "dev", env=_env(work))
    assert (result.stdout, result.returncode) == (URL + "\n", 0)


@pytest.mark.parametrize("path", ["store", "./store/", "a/../b", "a//b/.", "/abs/./x/", "//net/x", "///x", "~", "~/s"])
def test_store_root_is_what_the_core_store_makes_of_it(path: str) -> None:
    from provision.lean import store_root
    from provision.store import Store

    assert store_root(path, {}) == str(Store(Path(path)).root)
