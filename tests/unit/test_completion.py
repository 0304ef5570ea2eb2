"""Shell completion for bash, zsh and fish: commands, and machine names read from the store when asked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from clirun import run, shell_env


@pytest.fixture
def two_machines() -> None:
    for name, port in (("web1", 1), ("db1", 2)):
        run("create", "-d", "none", "--url", f"tcp://127.0.0.1:{port}", name, check=True)


def test_bash_completes_commands_and_machine_names(tmp_path: Path, two_machines: None) -> None:
    script = tmp_path / "provision.bash"
    script.write_text(run("completion", "bash", check=True).stdout)

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in words)
        probe = (f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _provision; "
                 'printf "%s\\n" "${COMPREPLY[@]}"')
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, env=shell_env(), timeout=30)
        assert done.returncode == 0, done.stderr
        return sorted(done.stdout.split())

    assert complete("provision", "u") == ["up", "upgrade", "url", "use"]
    assert complete("provision", "rm", "") == ["db1", "web1"]
    assert complete("provision", "-s", "/x", "env", "w") == ["web1"]
    assert complete("provision", "create", "") == []  # a new name: nothing to offer


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_machine_names(tmp_path: Path, two_machines: None) -> None:
    script = tmp_path / "provision.fish"
    script.write_text(run("completion", "fish", check=True).stdout)
    done = subprocess.run(["fish", "--no-config", "-c", f"source {script}; complete -C 'provision ssh '"],
                          capture_output=True, text=True, env=shell_env(), timeout=30)
    assert done.returncode == 0, done.stderr
    assert sorted(line.split("\t")[0] for line in done.stdout.splitlines()) == ["db1", "web1"]
    commands = subprocess.run(["fish", "--no-config", "-c", f"source {script}; complete -C 'provision do'"],
                              capture_output=True, text=True, env=shell_env(), timeout=30).stdout
    assert commands.startswith("down\t")


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_script_loads_under_compinit(tmp_path: Path) -> None:
    script = tmp_path / "_provision"
    script.write_text(run("completion", "zsh", check=True).stdout)
    done = subprocess.run(["zsh", "-f", "-c", f"autoload -Uz compinit; compinit -u -D; source {script}; "
                                              "print -r -- ${_comps[provision]}"],
                          capture_output=True, text=True, env=shell_env(HOME=str(tmp_path)), timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "_provision"


def test_an_unknown_shell_is_a_usage_error() -> None:
    result = run("completion", "tcsh")
    assert result.returncode == 2 and result.stderr == "Error: no completion for 'tcsh': use one of bash, zsh, fish\n"
