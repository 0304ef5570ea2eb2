"""Every local program provision runs goes through ``run``: an argument list (never a shell), stdin from
/dev/null, a bound on time, and one error for every way it can fail.

``+ command`` (``shlex.join``) goes to this module's logger at DEBUG level before the program starts;
the CLI shows it under ``--debug``, and library code never prints.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from provision.errors import CommandError, CommandTimedOut

log = logging.getLogger(__name__)

# What a failed streaming step keeps of its output for the error.
TAIL_LINES = 20


def run(argv: Sequence[str], *, timeout: float, what: str | None = None, missing_hint: str | None = None,
        on_line: Callable[[str], None] | None = None) -> str:
    """Run ``argv`` and return its stdout.

    With ``on_line``, stderr joins stdout and every line goes to ``on_line`` as it comes, so a long
    step can show progress. A missing program raises ``CommandError`` "... is not installed" with
    ``missing_hint``, chained to the ``FileNotFoundError``; a non-zero exit raises ``CommandError``
    with the last line of stderr; a program still running after ``timeout`` seconds is killed and
    raises ``CommandTimedOut``. ``what`` names the step in those messages (default: the program).
    """
    argv = [str(arg) for arg in argv]
    what = what or argv[0]
    log.debug("+ %s", shlex.join(argv))
    try:
        if on_line is None:
            out, err, returncode, expired = _captured(argv, timeout)
        else:
            out, err, returncode, expired = _streamed(argv, timeout, on_line)
    except FileNotFoundError as exc:
        raise CommandError(f"{argv[0]} is not installed", argv=argv, hint=missing_hint) from exc
    if expired:
        raise CommandTimedOut(f"{what} did not finish within {timeout:g} s", argv=argv, stderr=err)
    if returncode != 0:
        last = next((line for line in reversed(err.splitlines()) if line.strip()), "no output")
        raise CommandError(f"{what} failed ({returncode}): {last.strip()}", argv=argv, returncode=returncode,
                           stderr=err)
    return out


def _captured(argv: list[str], timeout: float) -> tuple[str, str, int, bool]:
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:  # run() has killed it
        return "", _text(exc.stderr), -9, True
    return done.stdout, done.stderr, done.returncode, False


def _streamed(argv: list[str], timeout: float, on_line: Callable[[str], None]) -> tuple[str, str, int, bool]:
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")
    # A step that hangs without printing must still end: the watchdog kills it at the deadline.
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        proc.kill()

    watchdog = threading.Timer(timeout, expire)
    watchdog.start()
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            on_line(lines[-1])
        returncode = proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:  # on_line raised: do not leave the step running
            proc.kill()
            proc.wait()
    return "\n".join(lines), "\n".join(lines[-TAIL_LINES:]), returncode, expired.is_set()


def _text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def spawn(argv: Sequence[str], *, output: object = subprocess.DEVNULL, new_session: bool = False,
          cwd: str | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in the background (a host agent, an ssh master connection) and return it: stdin from
    /dev/null, stdout and stderr to ``output``; ``new_session`` gives it a process group of its own, so it
    outlives this command and ends with its group."""
    log.debug("+ %s &", shlex.join(argv))
    try:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=output, stderr=output,  # type: ignore[arg-type]
                                start_new_session=new_session, close_fds=True, cwd=cwd)
    except FileNotFoundError as exc:
        raise CommandError(f"{argv[0]} is not installed", argv=list(argv)) from exc


def replace_process(argv: Sequence[str], *, missing_hint: str) -> None:
    """Become ``argv`` (``provision ssh`` is the ssh client from here on: its terminal, signals and exit
    code are the user's); returns only if it could not be started."""
    import shutil

    if shutil.which(argv[0]) is None:
        raise CommandError(f"{argv[0]} is not installed; {missing_hint}", argv=list(argv))
    log.debug("+ exec %s", shlex.join(argv))
    os.execvp(argv[0], list(argv))


# -- processes provision started and left running (a VM, a host agent) ------------------------------
def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int, marker: str | None = None) -> bool:
    """True when ``pid`` runs and, on Linux, is the process whose command line holds ``marker``.

    The marker check keeps a recycled pid (after a host reboot) from reading as our process; a zombie
    has an empty command line and reads as gone.
    """
    if not process_exists(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if marker is None or not Path("/proc/self/cmdline").exists():
        return True
    try:
        return marker.encode() in cmdline.read_bytes()
    except OSError:
        return False


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
