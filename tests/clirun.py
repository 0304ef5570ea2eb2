"""Run the installed ``provision`` command as a user would: a subprocess with the test's environment."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path


def provision_bin() -> str:
    beside = Path(sys.executable).parent / "provision"
    found = str(beside) if beside.exists() else shutil.which("provision")
    assert found, "the provision console script is not installed (pip install -e .)"
    return found


def ctrl_c_as_at_a_terminal() -> None:
    """``preexec_fn`` for a child that a test sends SIGINT: Ctrl-C's default action, as a shell at a terminal
    leaves it. A test run started in the background of a script inherits SIGINT ignored, and so would the
    child, which would then never see the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def shell_env(**extra: str) -> dict[str, str]:
    """The test's environment with the ``provision`` under test first on PATH, as an activated venv has it:
    shells that run ``provision`` by name find this interpreter's script even when PATH lacks its dir."""
    bindir = str(Path(provision_bin()).parent)
    return {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 120,
        check: bool = False, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([provision_bin(), *args], capture_output=True, text=True, input=input,
                            env={**os.environ, **(env or {})}, timeout=timeout, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"provision {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result
