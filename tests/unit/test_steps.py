"""Where a create's seconds go: every step timed, kept in the record's facts, shown under ``--debug``."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import pytest

from clirun import run
from provision import registry
from provision.driver import Capabilities, Driver, MachineState
from provision.machines import CreateRequest, Machines
from provision.record import Lifecycle, MachineRecord
from provision.steps import StepClock

URL = "tcp://127.0.0.1:23762"
CA_STEP = "Creating the certificate authority and client certificate"


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


# -- the core service ------------------------------------------------------------------------------------

class Stepping(Driver):
    """A driver that reports steps of its own and can fail on request."""

    name = "stepping"
    capabilities = Capabilities(start=True, stop=True)
    fail: ClassVar[bool] = False

    def create(self) -> None:
        self.ctx.progress("Booting the fake machine")
        if self.fail:
            raise RuntimeError("the fake machine did not boot")
        self.ctx.data["booted"] = True

    def remove(self) -> None:
        pass

    def state(self) -> MachineState:
        return MachineState.RUNNING

    def engine_url(self) -> str:
        return URL

    def start(self) -> None:
        self.ctx.progress("Powering on the fake machine")

    def stop(self) -> None:
        pass


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Machines, list[str], list[str]]:
    real_load = registry.load
    monkeypatch.setattr(registry, "load", lambda name: Stepping if name == "stepping" else real_load(name))
    monkeypatch.setattr(Stepping, "fail", False)
    shown: list[str] = []
    lines: list[str] = []
    return Machines.open(tmp_path / "store", progress=shown.append, log=lines.append), shown, lines


def test_create_records_its_steps_in_the_facts(service: tuple[Machines, list[str], list[str]]) -> None:
    machines, shown, lines = service
    record = machines.create(CreateRequest("m1", "stepping"))
    expected = [CA_STEP, "Creating machine m1 with the stepping driver", "Booting the fake machine"]
    assert [s["step"] for s in record.facts["create_steps"]] == expected
    assert all(s["seconds"] >= 0 for s in record.facts["create_steps"])
    assert record.facts["create_seconds"] >= 0
    assert machines.store.load("m1").facts == record.facts  # saved, so `inspect` shows them
    assert shown == expected  # the progress the user sees is unchanged
    assert [line.split(": ", 1)[1] for line in lines] == [*expected, "create m1, in all"]
    assert all(line.startswith("  took ") for line in lines)


def test_a_failed_create_is_timed_but_records_no_steps(service: tuple[Machines, list[str], list[str]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    machines, _, lines = service
    monkeypatch.setattr(Stepping, "fail", True)
    with pytest.raises(RuntimeError):
        machines.create(CreateRequest("m1", "stepping", keep_on_failure=True))
    kept = machines.store.load("m1")
    assert kept.lifecycle == Lifecycle.ERROR and "create_steps" not in kept.facts
    # Under --debug the user still sees how long the failing step ran before it failed.
    assert any(line.endswith(": Booting the fake machine") for line in lines)
    assert lines[-1].endswith(": create m1, in all")


def test_starts_at_once_on_one_service_time_their_own_steps(service: tuple[Machines, list[str], list[str]]) -> None:
    machines, _, lines = service
    for name in ("a1", "a2"):
        machines.store.claim(MachineRecord(name=name, driver="stepping", lifecycle=Lifecycle.READY, url=URL,
                                           facts={"create_seconds": 1.0}))
    progress = machines.progress
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(machines.start, ["a1", "a2"]))
    assert machines.progress is progress  # timed through views: the shared service is left as it was
    for name in ("a1", "a2"):
        assert sum(line.endswith(f": start {name}, in all") for line in lines) == 1
        assert machines.store.load(name).facts == {"create_seconds": 1.0}  # a start keeps the create's facts
    assert sum(line.endswith(": Powering on the fake machine") for line in lines) == 2


def test_machines_created_at_once_each_keep_their_own_steps(tmp_path: Path) -> None:
    from provision.fleet import create_many

    lines: list[str] = []
    machines = Machines.open(tmp_path / "store", environ={"HOME": str(tmp_path)}, log=lines.append)
    result = create_many(machines, CreateRequest("web", "none", {"url": URL}), 3, parallel=3)
    assert sorted(r.name for r in result.created) == ["web-1", "web-2", "web-3"]
    for record in result.created:
        steps = [s["step"] for s in machines.store.load(record.name).facts["create_steps"]]
        assert steps == [CA_STEP, f"Creating machine {record.name} with the none driver"]
        # Debug lines of machines made at once say whose they are.
        assert sum(line.startswith(f"{record.name}: took ") and line.endswith(f": create {record.name}, in all")
                   for line in lines) == 1


# -- the command -------------------------------------------------------------------------------------

def test_inspect_shows_the_create_steps_and_debug_shows_each_step_time() -> None:
    quiet = run("create", "-d", "none", "--url", URL, "m1", check=True)
    assert "took" not in quiet.stderr + quiet.stdout  # without --debug, output stays as it was
    facts = json.loads(run("inspect", "m1", check=True).stdout)["facts"]
    assert [s["step"] for s in facts["create_steps"]] == [CA_STEP, "Creating machine m1 with the none driver"]
    assert all(isinstance(s["seconds"], float) and s["seconds"] >= 0 for s in facts["create_steps"])
    assert facts["create_seconds"] >= 0

    debug = run("--debug", "create", "-d", "none", "--url", URL, "m2", check=True)
    took = [line for line in debug.stderr.splitlines() if line.startswith("  took ")]
    assert [line.split(": ", 1)[1] for line in took] == [CA_STEP, "Creating machine m2 with the none driver",
                                                         "create m2, in all"]
    assert run("inspect", "-f", "{{json .facts.create_steps}}", "m2", check=True).stdout.count('"step"') == 2
