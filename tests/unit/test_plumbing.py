"""The one waiting helper and the one subprocess runner, with real clocks and real programs."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pytest

from provision import waiting
from provision.errors import CommandError, CommandTimedOut, DriverError, TimeoutExpired
from provision.run import run

# -- waiting.wait_for ---------------------------------------------------------------------------------


class FakeClock:
    """Stands in for ``time`` inside ``waiting``: a sleep moves the clock by exactly what was asked, so the
    pacing tests read the loop's own arithmetic, not how late a busy machine woke them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(waiting, "time", fake)
    return fake


def test_wait_returns_the_first_answer_and_stops_looking() -> None:
    answers = iter([None, False, "ready", "never asked"])
    assert waiting.wait_for("see it ready", lambda: next(answers), timeout=5, interval=0.01) == "ready"
    assert next(answers) == "never asked"


def test_wait_runs_out_at_its_bound_and_says_what_how_long_and_why() -> None:
    def check() -> None:
        raise waiting.NotYet("state: pending")

    started = time.monotonic()
    with pytest.raises(TimeoutExpired) as caught:
        waiting.wait_for("see the thing running", check, timeout=0.3, interval=0.05)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 1.5
    assert str(caught.value) == "Timed out after 0.3s waiting to see the thing running (last seen: state: pending)"
    assert isinstance(caught.value.__cause__, waiting.NotYet)


def test_wait_retries_only_the_given_errors_and_lets_others_through() -> None:
    calls = []

    def flaky() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("refused")
        return True

    assert waiting.wait_for("connect", flaky, timeout=5, interval=0.01, retry_on=(OSError,)) is True
    assert len(calls) == 3

    def broken() -> bool:
        raise ValueError("final")

    started = time.monotonic()
    with pytest.raises(ValueError, match="final"):
        waiting.wait_for("connect", broken, timeout=5, interval=0.01, retry_on=(OSError,))
    assert time.monotonic() - started < 1


def test_wait_builds_the_callers_error_from_the_facts(clock: FakeClock) -> None:
    def refused() -> None:
        raise OSError("connection refused")

    with pytest.raises(DriverError) as caught:
        waiting.wait_for("reach it", refused, timeout=0.25, interval=0.0625, retry_on=(OSError,),
                         error=lambda e: DriverError(f"{e.what}: {e.attempts} attempts in {e.timeout}s: {e.reason}",
                                                     hint="is it on?"))
    assert caught.value.message.startswith("reach it: ")
    assert caught.value.message.endswith("attempts in 0.25s: connection refused")
    assert int(caught.value.message.split(": ")[1].split()[0]) == 5  # every 1/16 s up to the bound
    assert caught.value.hint == "is it on?"
    assert isinstance(caught.value.__cause__, OSError)


def test_wait_looks_once_more_at_the_deadline_and_never_after(clock: FakeClock) -> None:
    seen: list[float] = []
    started = clock.now

    def slow_to_change() -> None:
        seen.append(clock.now - started)

    with pytest.raises(TimeoutExpired, match="last seen: no answer"):
        waiting.wait_for("see a change", slow_to_change, timeout=0.25, interval=10)
    # The long interval is cut at the deadline: one look at the start, one at the bound.
    assert seen == [0.0, 0.25]


def test_wait_backs_off_up_to_its_cap(clock: FakeClock) -> None:
    seen: list[float] = []

    def check() -> None:
        seen.append(clock.now)

    with pytest.raises(TimeoutExpired):
        waiting.wait_for("see it", check, timeout=1.0, interval=0.0625, backoff=2.0, max_interval=0.25)
    pauses = [b - a for a, b in zip(seen, seen[1:])]
    # doubling up to the cap and no further; the last pause is cut at the deadline (sixteenths: exact floats)
    assert pauses == [0.0625, 0.125, 0.25, 0.25, 0.25, 0.0625]


def test_wait_shares_a_deadline_with_its_check_and_can_start_later() -> None:
    deadline = waiting.Deadline(5)
    budgets: list[float] = []

    def check() -> bool:
        budgets.append(deadline.remaining())
        return True

    started = time.monotonic()
    waiting.wait_for("see it", check, timeout=deadline, start_after=0.2)
    assert time.monotonic() - started >= 0.2
    assert 4 < budgets[0] <= 4.81


def test_until_answers_true_or_false_within_its_bound() -> None:
    started = time.monotonic()
    assert waiting.until(lambda: time.monotonic() - started > 0.2, timeout=5, interval=0.05) is True
    started = time.monotonic()
    assert waiting.until(lambda: False, timeout=0.2, interval=0.05) is False
    assert 0.2 <= time.monotonic() - started < 1.5


# -- run ---------------------------------------------------------------------------------------------------


def test_run_returns_stdout_with_stdin_from_dev_null() -> None:
    out = run([sys.executable, "-c", "import sys; print(repr(sys.stdin.read())); print('out')"], timeout=30)
    assert out == "''\nout\n"


def test_run_never_uses_a_shell() -> None:
    assert run(["echo", "$HOME; exit 3", "*"], timeout=30) == "$HOME; exit 3 *\n"


def test_a_failing_program_becomes_a_command_error_with_its_facts() -> None:
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('first\\nthe reason\\n\\n'); sys.exit(3)"]
    with pytest.raises(CommandError) as caught:
        run(argv, what="the step", timeout=30)
    error = caught.value
    assert error.message == "the step failed (3): the reason"
    assert (error.argv, error.returncode, error.stderr) == (argv, 3, "first\nthe reason\n\n")
    assert error.exit_code == 1


def test_a_missing_program_says_so_with_the_hint_and_its_cause() -> None:
    with pytest.raises(CommandError) as caught:
        run(["provision-no-such-tool", "--version"], timeout=30, missing_hint="apt-get install it")
    assert caught.value.message == "provision-no-such-tool is not installed"
    assert caught.value.hint == "apt-get install it"
    assert isinstance(caught.value.__cause__, FileNotFoundError)  # drivers.local tells "missing" apart by this


@pytest.mark.parametrize("streamed", [False, True])
def test_a_hung_program_is_killed_at_its_bound(streamed: bool) -> None:
    started = time.monotonic()
    with pytest.raises(CommandTimedOut, match="sleep did not finish within 0.5 s") as caught:
        run(["sleep", "30"], timeout=0.5, on_line=(lambda line: None) if streamed else None)
    assert time.monotonic() - started < 5
    # Both a failed command (drivers catch CommandError) and a timeout (TimeoutExpired).
    assert isinstance(caught.value, CommandError) and isinstance(caught.value, TimeoutExpired)


def test_streamed_output_arrives_line_by_line_and_the_tail_explains_a_failure() -> None:
    lines: list[str] = []
    script = ("import sys\nfor i in range(30): print(f'I: step {i}', flush=True)\n"
              "sys.stderr.write('E: broke\\n')\nsys.exit(2)")
    with pytest.raises(CommandError) as caught:
        run([sys.executable, "-c", script], what="build", timeout=30, on_line=lines.append)
    assert lines[0] == "I: step 0" and lines[-1] == "E: broke" and len(lines) == 31
    assert caught.value.message == "build failed (2): E: broke"
    assert caught.value.stderr.splitlines() == lines[-20:]


def test_run_logs_the_command_line_for_debug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="provision.run"):
        run(["echo", "two words", "it's"], timeout=30)
    assert caplog.messages == ["+ echo 'two words' 'it'\"'\"'s'"]



# -- the port agent's supervisor -------------------------------------------------------------------


def test_the_agent_supervisor_waits_for_the_pid_file_its_starter_writes_after_it(tmp_path: Path) -> None:
    """``agent.ensure`` starts the supervisor and then writes its pid file; a supervisor that looked first
    used to find no file, take it for "stopped" and exit, leaving the machine with no agent."""
    import subprocess

    from provision import agent

    machine_dir = tmp_path / "machines" / "m"
    machine_dir.mkdir(parents=True)
    log = machine_dir / agent.LOG_FILE
    with log.open("ab") as out:
        supervisor = subprocess.Popen([sys.executable, "-m", agent.MARKER, str(tmp_path), "m"], stdout=out,
                                      stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(1.0)  # the supervisor is up and looking before the file exists, as on a slow disk
        assert supervisor.poll() is None, log.read_text()
        (machine_dir / agent.PID_FILE).write_text(f"{supervisor.pid}\n")
        # No machine "m" in this store: its worker ends, and the supervisor starting it again shows the loop runs.
        assert waiting.until(lambda: "starting it again" in log.read_text(), timeout=30, interval=0.1), log.read_text()
        agent.end(machine_dir)
        assert supervisor.wait(timeout=15) == 0
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
