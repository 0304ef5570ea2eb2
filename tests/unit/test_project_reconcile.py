"""The reconciling rules of `up`: missing, broken, interrupted, gone, changed, failed half way, no longer in
the file, and a name that is not the project's; first as plans from observed states, then through the CLI
with the `none` driver, whose machines cost nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clirun import run
from provision import projectfile, reconcile
from provision.errors import BrokenRecord
from provision.projectfile import GroupSpec, ProjectSpec
from provision.reconcile import Observed, plan
from provision.record import EngineSettings, Lifecycle, MachineRecord

FILE = """\
name: shop
machines:
  web:
    driver: none
    count: {count}
    options:
      url: tcp://127.0.0.1:{port}
      engine-label: [tier=web]
"""


def spec(count: int = 2, role: str | None = None, url: str = "tcp://127.0.0.1:1") -> ProjectSpec:
    groups = [GroupSpec("web", "none", count, role, {"url": url})]
    if role:
        groups.insert(0, GroupSpec("boss", "none", 1, "manager", {"url": url}))
    return ProjectSpec("shop", Path("/p/provision.yml"), tuple(groups))


def record(name: str, group: GroupSpec, project: str = "shop", **changes) -> MachineRecord:  # type: ignore[no-untyped-def]
    labels = reconcile.project_labels(project, group)
    changes.setdefault("lifecycle", Lifecycle.READY)
    return MachineRecord(name=name, driver=group.driver, engine=EngineSettings(labels=labels), **changes)


def seen(rec: MachineRecord, state: str = "Running", **kw) -> Observed:  # type: ignore[no-untyped-def]
    return Observed(rec.name, rec, state, **kw)


def kinds(result: reconcile.Plan) -> dict[str, str]:
    return {a.machine: a.kind for a in result.machines}


# -- plans from observed states -------------------------------------------------------------------------
def test_every_rule_of_the_plan() -> None:
    project = spec(count=8)
    web = project.groups[0]
    other = GroupSpec("web", "none", 1, None, {"url": "tcp://127.0.0.1:9"})
    observed = {
        "shop-web-2": Observed("shop-web-2", None, error="the record is not a JSON object"),
        "shop-web-3": seen(record("shop-web-3", web, lifecycle=Lifecycle.CREATING)),
        "shop-web-4": seen(record("shop-web-4", web, lifecycle=Lifecycle.CREATING), locked=True),
        "shop-web-5": seen(record("shop-web-5", web, lifecycle=Lifecycle.ERROR, error="ssh refused")),
        "shop-web-6": seen(record("shop-web-6", web), state="NotFound"),
        "shop-web-7": seen(record("shop-web-7", other)),
        "shop-web-8": seen(record("shop-web-8", web, project="blog")),
        "shop-web-9": seen(record("shop-web-9", web)),
        "shop-db-1": seen(record("shop-db-1", GroupSpec("db", "none", 1, None, {}))),
    }
    result = plan(project, observed)
    assert kinds(result) == {
        "shop-web-1": "make", "shop-web-2": "replace", "shop-web-3": "replace", "shop-web-4": "conflict",
        "shop-web-5": "replace", "shop-web-6": "replace", "shop-web-7": "drift", "shop-web-8": "conflict",
        "shop-web-9": "remove", "shop-db-1": "remove"}
    reasons = {a.machine: a.reason for a in result.machines}
    assert "broken" in reasons["shop-web-2"] and "interrupted" in reasons["shop-web-3"]
    assert "ssh refused" in reasons["shop-web-5"] and "gone" in reasons["shop-web-6"]
    assert 'project "blog"' in reasons["shop-web-8"] and "--recreate" in reasons["shop-web-7"]
    assert not result.changes_nothing
    recreated = plan(project, observed, recreate=True)
    assert kinds(recreated)["shop-web-7"] == "replace"
    assert [a.drifted for a in recreated.machines if a.machine == "shop-web-7"] == [True]


def test_nothing_to_do_when_everything_is_there() -> None:
    project = spec(count=2)
    web = project.groups[0]
    observed = {n: seen(record(n, web)) for n in ("shop-web-1", "shop-web-2")}
    result = plan(project, observed)
    assert kinds(result) == {"shop-web-1": "leave", "shop-web-2": "leave"} and result.changes_nothing
    # Drift alone changes nothing either: it is reported, and replaced only when asked.
    changed = spec(count=2, url="tcp://127.0.0.1:2")
    assert plan(changed, observed).changes_nothing
    assert set(kinds(plan(changed, observed)).values()) == {"drift"}


def test_swarm_steps_start_on_a_manager_then_join_managers_then_workers() -> None:
    project = spec(count=2, role="worker")
    result = plan(project, {})
    assert result.leader == "shop-boss-1"
    assert [(s.machine, s.kind, s.role) for s in result.swarm] == [
        ("shop-boss-1", "init", "manager"), ("shop-web-1", "join", "worker"), ("shop-web-2", "join", "worker")]
    # An existing member stays; a machine remade joins the manager the swarm was started on.
    boss, web = project.groups
    observed = {
        "shop-boss-1": seen(record("shop-boss-1", boss, cluster="shop", swarm_role="manager",
                                   swarm_manager="shop-boss-1")),
        "shop-web-1": seen(record("shop-web-1", web, cluster="shop", swarm_role="worker",
                                  swarm_manager="shop-boss-1")),
    }
    again = plan(project, observed)
    assert again.leader == "shop-boss-1"
    assert [(s.machine, s.kind) for s in again.swarm] == [("shop-web-2", "join")]


def test_stacks_deploy_when_new_or_changed_and_are_left_otherwise(tmp_path: Path) -> None:
    compose = tmp_path / "web.yml"
    compose.write_text("services: {a: {image: x}}\n")
    base = spec(count=1, role="worker")
    project = ProjectSpec("shop", base.path, base.groups, (projectfile.StackSpec("web", compose),))
    assert [(s.stack, s.kind) for s in plan(project, {}).stacks] == [("web", "deploy")]
    boss, web = project.groups
    members = {
        "shop-boss-1": seen(record("shop-boss-1", boss, cluster="shop", swarm_role="manager",
                                   swarm_manager="shop-boss-1",
                                   facts={reconcile.STACKS_FACT: {"web": projectfile.StackSpec("web", compose).digest()}})),
        "shop-web-1": seen(record("shop-web-1", web, cluster="shop", swarm_role="worker", swarm_manager="shop-boss-1")),
    }
    assert plan(project, members).changes_nothing
    compose.write_text("services: {a: {image: y}}\n")
    changed = plan(project, members)
    assert [(s.stack, s.kind, s.reason) for s in changed.stacks] == [("web", "deploy", "its compose file changed")]


# -- through the CLI, with the none driver ---------------------------------------------------------------
def write_file(directory: Path, count: int = 2, port: int = 1, extra: str = "") -> None:
    (directory / "provision.yml").write_text(FILE.format(count=count, port=port) + extra)


def store_root() -> Path:
    return Path(os.environ["PROVISION_STORAGE_PATH"])


def machines_in_store() -> list[str]:
    root = store_root() / "machines"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def up(cwd: Path, *args: str):  # type: ignore[no-untyped-def]
    return run("up", *args, cwd=cwd)


def test_up_makes_the_missing_then_does_nothing_and_says_so(tmp_path: Path) -> None:
    write_file(tmp_path)
    planned = run("plan", cwd=tmp_path, check=True)
    assert planned.stdout.splitlines()[1].split()[:3] == ["make", "shop-web-1", "web"]
    assert machines_in_store() == []  # plan touches nothing
    first = up(tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == 'Project "shop": 2 made, 0 joined the swarm, 0 removed, 0 stack(s) deployed.\n'
    assert "shop-web-1: created" in first.stderr and "shop-web-2: created" in first.stderr
    assert machines_in_store() == ["shop-web-1", "shop-web-2"]
    labels = json.loads(run("inspect", "shop-web-1", check=True).stdout)
    assert "io.provision.project=shop" in json.dumps(labels) and "tier=web" in json.dumps(labels)
    second = up(tmp_path)
    assert second.returncode == 0
    assert second.stdout == 'Project "shop" is up to date: nothing to do (2 machine(s)).\n'
    assert second.stderr == ""
    # They are ordinary machines.
    assert run("ls", "-q", check=True).stdout.split() == ["shop-web-1", "shop-web-2"]
    assert 'DOCKER_HOST="tcp://127.0.0.1:1"' in run("env", "shop-web-2", check=True).stdout
    ps = json.loads(run("ps", "--json", cwd=tmp_path, check=True).stdout)
    assert [(r["Name"], r["Group"], r["State"]) for r in ps] == [("shop-web-1", "web", "Running"),
                                                                  ("shop-web-2", "web", "Running")]


def test_a_machine_removed_by_hand_broken_or_interrupted_is_made_again(tmp_path: Path) -> None:
    write_file(tmp_path, count=3)
    assert up(tmp_path).returncode == 0
    assert run("rm", "-y", "shop-web-1", check=True)
    record_path = store_root() / "machines" / "shop-web-2" / "machine.json"
    record_path.write_text("{not json")
    interrupted = store_root() / "machines" / "shop-web-3" / "machine.json"
    data = json.loads(interrupted.read_text())
    interrupted.write_text(json.dumps({**data, "lifecycle": "creating"}))
    planned = json.loads(run("plan", "--json", cwd=tmp_path, check=True).stdout)
    assert {a["machine"]: (a["action"], a["reason"].split(" (")[0]) for a in planned["machines"]} == {
        "shop-web-1": ("make", "not in the store"), "shop-web-2": ("replace", "its record is broken"),
        "shop-web-3": ("replace", "its create was interrupted")}
    again = up(tmp_path)
    assert again.returncode == 0, again.stderr
    assert "3 made" in again.stdout
    for name in ("shop-web-1", "shop-web-2", "shop-web-3"):
        loaded = json.loads((store_root() / "machines" / name / "machine.json").read_text())
        assert loaded["lifecycle"] == "ready"
    assert up(tmp_path).stdout.startswith('Project "shop" is up to date')


def test_changed_options_are_drift_until_recreate(tmp_path: Path) -> None:
    write_file(tmp_path)
    assert up(tmp_path).returncode == 0
    before = json.loads((store_root() / "machines" / "shop-web-1" / "machine.json").read_text())
    write_file(tmp_path, port=2)
    drift = up(tmp_path)
    assert drift.returncode == 0
    assert "up to date" in drift.stdout
    assert "shop-web-1: drift: the group's options changed: up --recreate replaces it" in drift.stderr
    unchanged = json.loads((store_root() / "machines" / "shop-web-1" / "machine.json").read_text())
    assert unchanged == before
    recreated = up(tmp_path, "--recreate")
    assert recreated.returncode == 0, recreated.stderr
    assert "2 made" in recreated.stdout and "replacing: the group's options changed" in recreated.stderr
    assert 'tcp://127.0.0.1:2' in run("url", "shop-web-1", check=True).stdout
    assert up(tmp_path).stdout.startswith('Project "shop" is up to date')


def test_one_failed_machine_does_not_undo_the_others_and_the_next_up_finishes(tmp_path: Path) -> None:
    bad_group = "  db:\n    driver: none\n    options:\n      url: ${DB_URL}\n"
    write_file(tmp_path, extra=bad_group)
    failed = run("up", cwd=tmp_path, env={"DB_URL": "http://not-an-engine"})
    assert failed.returncode == 1
    assert "2 made" in failed.stdout
    assert "shop-db-1: " in failed.stderr and "tcp://HOST:PORT" in failed.stderr
    assert "Run `provision up` again to finish the job." in failed.stderr
    assert machines_in_store() == ["shop-web-1", "shop-web-2"]  # the failed one rolled back, the others kept
    fixed = run("up", cwd=tmp_path, env={"DB_URL": "tcp://127.0.0.1:3"})
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.startswith('Project "shop": 1 made,')
    assert machines_in_store() == ["shop-db-1", "shop-web-1", "shop-web-2"]


def test_fewer_machines_in_the_file_removes_the_rest_and_never_another_projects(tmp_path: Path) -> None:
    write_file(tmp_path, count=3)
    assert up(tmp_path).returncode == 0
    run("create", "-d", "none", "--url", "tcp://127.0.0.1:5", "mine", check=True)
    blog = tmp_path / "blog"
    blog.mkdir()
    (blog / "provision.yml").write_text("machines:\n  web:\n    driver: none\n    options: {url: 'tcp://127.0.0.1:6'}\n")
    assert run("up", cwd=blog).returncode == 0  # project "blog" (the directory's name): blog-web-1
    write_file(tmp_path, count=1)
    planned = run("plan", cwd=tmp_path, check=True).stdout
    assert [line.split()[:2] for line in planned.splitlines()[1:]] == [
        ["leave", "shop-web-1"], ["remove", "shop-web-2"], ["remove", "shop-web-3"]]
    shrunk = up(tmp_path)
    assert shrunk.returncode == 0 and "2 removed" in shrunk.stdout
    assert machines_in_store() == ["blog-web-1", "mine", "shop-web-1"]
    # A machine of the same name outside the project is a conflict, left as it is.
    run("create", "-d", "none", "--url", "tcp://127.0.0.1:7", "shop-web-2", check=True)
    write_file(tmp_path, count=2)
    clash = up(tmp_path)
    assert clash.returncode == 1
    assert "shop-web-2: a machine of that name belongs to no project; it is left alone" in clash.stderr
    assert "tcp://127.0.0.1:7" in run("url", "shop-web-2", check=True).stdout
    # down removes the project's machines only, and asks first.
    refused = run("down", cwd=tmp_path, input="")
    assert refused.returncode == 1 and "pass -y" in refused.stderr
    assert machines_in_store() == ["blog-web-1", "mine", "shop-web-1", "shop-web-2"]
    down = run("down", "-y", cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert down.stdout == 'Project "shop": 1 machine(s) removed.\n'
    assert machines_in_store() == ["blog-web-1", "mine", "shop-web-2"]
    assert run("down", "-y", cwd=tmp_path).stdout == 'Project "shop" has no machines.\n'
    # down and ps need only the name: -p without a file.
    assert run("ps", "-q", "-p", "blog", cwd=store_root()).stdout == "blog-web-1\n"
    assert run("down", "-y", "-p", "blog", cwd=store_root()).returncode == 0
    assert machines_in_store() == ["mine", "shop-web-2"]


def test_broken_record_is_not_an_error_for_plan_or_ps(tmp_path: Path) -> None:
    write_file(tmp_path, count=1)
    assert up(tmp_path).returncode == 0
    (store_root() / "machines" / "shop-web-1" / "machine.json").write_text("[]")
    with pytest.raises(BrokenRecord):
        MachineRecord.from_dict([])
    planned = run("plan", cwd=tmp_path)
    assert planned.returncode == 0 and "replace" in planned.stdout
    assert run("ps", cwd=tmp_path).returncode == 0


def test_up_dry_run_is_the_plan_and_touches_nothing(tmp_path: Path) -> None:
    write_file(tmp_path, count=2)
    planned = run("plan", "--json", cwd=tmp_path, check=True).stdout
    assert run("up", "--dry-run", "--json", cwd=tmp_path, check=True).stdout == planned
    table = run("up", "--dry-run", cwd=tmp_path, check=True).stdout
    assert table == run("plan", cwd=tmp_path, check=True).stdout and table.startswith("ACTION")
    assert machines_in_store() == []
    assert run("up", "--parallel", "0", cwd=tmp_path).stderr == "Error: --parallel must be at least 1\n"
