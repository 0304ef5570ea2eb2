"""Where a command's seconds go: the step clock."""

from __future__ import annotations

from provision.steps import StepClock


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_message_ends_the_step_before_it() -> None:
    clock, lines, shown = FakeClock(), [], []
    steps = StepClock("create m1", log=lines.append, clock=clock)
    progress = steps.wrap(shown.append)
    clock.now = 100.5  # work before the first message counts in the total, in no step
    progress("Waiting for SSH on 127.0.0.1:2222")
    assert shown == ["Waiting for SSH on 127.0.0.1:2222"] and lines == []
    clock.now = 103.94
    progress("Installing Docker")
    assert lines == ["  took 3.4 s: Waiting for SSH on 127.0.0.1:2222"]
    clock.now = 110.0
    timing = steps.finish()
    assert lines[1:] == ["  took 6.1 s: Installing Docker", "  took 10.0 s: create m1, in all"]
    assert timing.facts("create") == {
        "create_steps": [{"step": "Waiting for SSH on 127.0.0.1:2222", "seconds": 3.4},
                         {"step": "Installing Docker", "seconds": 6.1}],
        "create_seconds": 10.0}
    # Finished is finished: a later message is shown but not timed, a second finish changes nothing.
    clock.now = 200.0
    progress("~/.ssh/config was left as it is")
    assert steps.finish() == timing and len(lines) == 3 and shown[-1] == "~/.ssh/config was left as it is"


def test_a_command_refused_before_its_first_step_logs_nothing() -> None:
    lines: list[str] = []
    timing = StepClock("start m1", log=lines.append, clock=FakeClock()).finish()
    assert timing.steps == () and timing.seconds == 0.0 and lines == []
