"""A wheel built from the tree, installed into a fresh virtualenv, runs every command and finds every template."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "dist"), str(REPO)],
                   check=True, capture_output=True, timeout=600)
    wheel = next((work / "dist").glob("provision_machine-*.whl"))
    import zipfile

    # Only names of our own: "provision" for the core, "provision_drivers" for the drivers (a top-level
    # "drivers" package would collide with another PyPI project's).
    top = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in name}
    assert top == {"provision", "provision_drivers"}, top
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True, timeout=300)
    subprocess.run([str(work / "venv" / "bin" / "pip"), "install", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=900)
    return work / "venv"


def test_wheel_runs_commands_and_finds_templates(venv: Path, tmp_path: Path) -> None:
    bin_dir = venv / "bin"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    def cli(*args: str) -> str:
        result = subprocess.run([str(bin_dir / "provision"), *args], capture_output=True, text=True, env=env,
                                timeout=120, cwd=tmp_path)
        assert result.returncode == 0, f"{args}: {result.stderr}"
        return result.stdout

    assert cli("version").startswith("provision version ")
    drivers = cli("drivers")
    for name in ("none", "generic", "local", "amazonec2", "google"):
        assert f"{name} (built-in)" in drivers
    for command in ("create", "ls", "env", "use", "active", "ssh", "scp", "start", "stop", "restart", "kill", "rm",
                    "ip", "url", "status", "inspect", "config", "regenerate-certs", "provision", "upgrade",
                    "version", "drivers"):
        assert "Usage" in cli(command, "--help")
    cli("create", "-d", "none", "--url", "tcp://127.0.0.1:23764", "wheel-test")
    assert "wheel-test" in cli("ls", "-q")
    assert 'DOCKER_HOST="tcp://127.0.0.1:23764"' in cli("env", "--shell", "bash", "wheel-test")
    cli("rm", "-y", "wheel-test")
    # The project file's JSON Schema ships in the package: a bad key is caught with its line.
    (tmp_path / "provision.yml").write_text("machines:\n  web:\n    driver: none\n    cuont: 2\n")
    bad = subprocess.run([str(bin_dir / "provision"), "plan"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("provision.yml:2: machines.web: unknown key cuont"), bad.stderr
    # Every template of the tree ships in the wheel and renders from the installed package, not the checkout.
    names = sorted(str(p.relative_to(REPO / "templates")) for p in (REPO / "templates").rglob("*")
                   if p.is_file() and not p.name.startswith("."))
    assert names
    probe = ("import sys, provision.templating as t; d = t.templates_dir(); "
             "assert str(d).startswith(sys.prefix), d; "
             "missing = [n for n in sys.argv[1:] if not (d / n).is_file()]; assert not missing, missing; "
             "t._environment().get_template(sys.argv[1])")
    result = subprocess.run([str(bin_dir / "python"), "-c", probe, *names], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
