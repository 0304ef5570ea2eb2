"""A mixed project file (amazonec2 on moto, google on the Compute Engine fake, none) planned from what the
clouds say: a machine whose instance is gone elsewhere is made again, a changed group is drift, and `down`
removes every cloud resource the project's machines made and nothing else."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from clirun import run
from fixtures_gce import GCE
from provision import options, projectfile, reconcile, registry
from provision.machines import Machines
from provision.project import Project
from provision.record import EngineSettings, Lifecycle, MachineRecord
from test_amazonec2 import leftovers

pytestmark = [pytest.mark.aws, pytest.mark.gce]

FILE = """\
name: mix
machines:
  api:
    driver: amazonec2
    count: 2
    options: {{amazonec2-instance-type: t3.small}}
  batch:
    driver: google
    options:
      google-project: test-project
      google-endpoint: ${{GCE_ENDPOINT}}
      google-machine-type: {machine_type}
  edge:
    driver: none
    options: {{url: "tcp://127.0.0.1:1"}}
"""


def load(tmp_path: Path, gce: GCE, machine_type: str = "e2-small") -> projectfile.ProjectSpec:
    path = tmp_path / "provision.yml"
    path.write_text(FILE.format(machine_type=machine_type))
    return projectfile.load(path, environ={**os.environ, "GCE_ENDPOINT": gce.endpoint})


def make_cloud_machine(service: Machines, spec: projectfile.ProjectSpec, group: projectfile.GroupSpec,
                       name: str) -> MachineRecord:
    """What `up` records before it provisions: the machine's cloud resources, made by its driver, in a
    ready record labelled with the project (the engine install needs SSH to an address the fakes hand out,
    which tests never reach)."""
    driver_cls = registry.load(group.driver)
    resolved = options.resolve(driver_cls, {k: v for k, v in group.options.items()}, service.environ)
    record = MachineRecord(name=name, driver=group.driver, driver_options=resolved,
                           engine=EngineSettings(labels=reconcile.project_labels(spec.name, group)))
    service.store.claim(record)
    key = service.store.machine_dir(name) / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    driver = service.driver_for(record)
    driver.create()
    ready = record.evolve(lifecycle=Lifecycle.READY, driver_data=dict(driver.ctx.data))
    service.store.save(ready)
    return ready


def test_mixed_file_plan_follows_the_clouds_and_down_leaves_nothing(aws: Any, ec2_client: Any, gce: GCE,
                                                                   tmp_path: Path) -> None:
    baseline = gce.fake.resources()
    service = Machines.open(environ=dict(os.environ))
    spec = load(tmp_path, gce)
    api, batch, _ = spec.groups
    made = {name: make_cloud_machine(service, spec, group, name)
            for group, name in ((api, "mix-api-1"), (api, "mix-api-2"), (batch, "mix-batch-1"))}
    run("create", "-d", "none", "--url", "tcp://127.0.0.1:9", "outsider", check=True)

    project = Project(service, spec.name, spec)
    first = project.plan()
    assert {a.machine: a.kind for a in first.machines} == {
        "mix-api-1": "leave", "mix-api-2": "leave", "mix-batch-1": "leave", "mix-edge-1": "make"}

    # An instance terminated in the console, and one deleted on Compute Engine: both are made again.
    ec2_client.terminate_instances(InstanceIds=[made["mix-api-2"].driver_data["instance_id"]])
    service.driver_for(made["mix-batch-1"]).remove()
    gone = project.plan()
    assert {a.machine: (a.kind, a.reason) for a in gone.machines if a.kind != "leave"} == {
        "mix-api-2": ("replace", "its cloud resource is gone"),
        "mix-batch-1": ("replace", "its cloud resource is gone"),
        "mix-edge-1": ("make", "not in the store")}

    # Its instance made again (as `up` would), then its group changed in the file: drift for it alone.
    make_cloud_machine_again(service, made["mix-batch-1"])
    changed = Project(service, spec.name, load(tmp_path, gce, machine_type="e2-medium"))
    drift = {a.machine: a.kind for a in changed.plan().machines}
    assert drift == {"mix-api-1": "leave", "mix-api-2": "replace", "mix-batch-1": "drift", "mix-edge-1": "make"}

    done = project.down()
    assert sorted(done.removed) == ["mix-api-1", "mix-api-2", "mix-batch-1"] and not done.failed
    assert leftovers(ec2_client) == {}
    assert gce.fake.resources() == baseline
    assert service.store.names() == ["outsider"]


def make_cloud_machine_again(service: Machines, record: MachineRecord) -> MachineRecord:
    driver = service.driver_for(record.evolve(driver_data={}))
    driver.create()
    ready = record.evolve(driver_data=dict(driver.ctx.data))
    service.store.save(ready)
    return ready
