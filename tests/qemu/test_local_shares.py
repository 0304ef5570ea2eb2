"""The user's folders in a local machine: which folders, where, how the guest mounts them, and the flags.

The folders themselves, in a running machine through the docker CLI, are checked in test_local_e2e.py.
"""

from __future__ import annotations

import configparser
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from clirun import run
from fixtures_vm import make_context
from provision.errors import UsageError
from provision_drivers import qemu, shares
from provision_drivers.images import BaseImage
from provision_drivers.local import USER_PATH, LocalDriver
from readback import read_seed_iso


def test_the_home_directory_the_machine_is_made_with_is_shared_at_its_own_path_by_default(tmp_path: Path) -> None:
    home = tmp_path / "someone"
    home.mkdir()
    driver = LocalDriver(make_context(tmp_path / "m", "m", environ={"HOME": str(home)}))
    (planned,) = driver._plan_shares()
    assert (planned.host, planned.guest, planned.tag) == (str(home.resolve()), str(home), "provision0")
    assert LocalDriver(make_context(tmp_path / "n", "n", environ={"HOME": str(home)}, local_no_share=True)
                       )._plan_shares() == []


def test_named_folders_replace_the_default_and_take_a_guest_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "data:2024").mkdir()
    planned = shares.plan(["src", f"{tmp_path}/data:2024:/srv/data", "src:/work//app/", "data:2024"], False,
                          "/nonexistent", str(tmp_path))
    assert [(s.host, s.guest, s.tag) for s in planned] == [
        (str(tmp_path / "src"), str(tmp_path / "src"), "provision0"),
        (str(tmp_path / "data:2024"), "/srv/data", "provision1"),
        (str(tmp_path / "src"), "/work/app", "provision2"),
        (str(tmp_path / "data:2024"), str(tmp_path / "data:2024"), "provision3")]


def test_a_symlinked_folder_is_served_resolved_and_mounted_where_the_user_sees_it(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (planned,) = shares.plan([str(tmp_path / "link")], False, None, "/")
    assert (planned.host, planned.guest) == (str(tmp_path / "real"), str(tmp_path / "link"))


def test_no_share_shares_nothing_and_contradicts_named_folders(tmp_path: Path) -> None:
    assert shares.plan([], True, str(tmp_path), "/") == []
    with pytest.raises(UsageError, match="contradict"):
        shares.plan([str(tmp_path)], True, str(tmp_path), "/")


@pytest.mark.parametrize(("spec", "message"), [
    ("missing", "does not exist"),
    ("file", "is not a directory"),
    ("dir:/", "system folder"),
    ("dir:/etc", "system folder"),
    ("dir:/usr/local/src", "system folder"),
    ("dir:/var/lib/docker", "system folder"),
    ("dir:/var/lib/docker/volumes/x", "system folder"),
    ("dir:/home/provision", "system folder"),  # the login user's home: its authorized_keys would vanish
    ("dir:/home/provision/.ssh", "system folder"),
    ("dir:/tmp", "system folder"),
    ("dir:/tmp/../etc", "system folder"),
])
def test_a_folder_that_cannot_be_shared_is_one_clear_line(tmp_path: Path, spec: str, message: str) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match=message) as refused:
        shares.plan([spec], False, None, str(tmp_path))
    assert "\n" not in refused.value.message


def test_two_folders_at_one_guest_path_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(UsageError, match="both be mounted at /srv/x"):
        shares.plan(["a:/srv/x", "b:/srv/x/"], False, None, str(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_an_unreadable_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "locked").mkdir(mode=0)
    with pytest.raises(UsageError, match="cannot be read"):
        shares.plan(["locked"], False, None, str(tmp_path))


# What `systemd-escape --path --suffix=mount PATH` (systemd 252) prints: systemd refuses a mount unit whose
# name is not exactly that.
@pytest.mark.parametrize(("path", "unit"), [
    ("/home/me", "home-me.mount"),
    ("//home//me/", "home-me.mount"),
    ("/tmp/pytest-of-root/x-y", "tmp-pytest\\x2dof\\x2droot-x\\x2dy.mount"),
    ("/srv/a b/c", "srv-a\\x20b-c.mount"),
    ("/home/me/.config", "home-me-.config.mount"),
    ("/.hidden/x", "\\x2ehidden-x.mount"),
    ("/data/\u00fc", "data-\\xc3\\xbc.mount"),
    ("/x/a:b_c.d", "x-a:b_c.d.mount"),
    ("/a%b", "a\\x25b.mount"),
])
def test_mount_unit_names_are_what_systemd_requires(path: str, unit: str) -> None:
    assert shares.mount_unit_name(path) == unit


def test_the_seed_mounts_each_share_at_every_boot_before_docker() -> None:
    planned = [shares.Share("/home/me", "/home/me", "provision0"), shares.Share("/srv/a%b", "/data/x-y", "provision1")]
    files = {f.path: f.content.decode() for f in shares.boot_files(planned)}
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read_string(files["/etc/systemd/system/home-me.mount"])
    assert dict(unit["Mount"]) == {"what": "provision0", "where": "/home/me", "type": "9p",
                                   "options": shares.MOUNT_OPTIONS}
    assert "docker.service" in unit["Unit"]["before"].split() and "containerd.service" in unit["Unit"]["before"]
    escaped = files["/etc/systemd/system/data-x\\x2dy.mount"]
    assert "Where=/data/x-y\n" in escaped and "/srv/a%%b" in escaped  # systemd specifiers stay literal
    wanted = configparser.ConfigParser(interpolation=None)
    wanted.read_string(files[shares.WANTS_DROPIN])
    assert wanted["Unit"]["wants"].split() == ["home-me.mount", "data-x\\x2dy.mount"]
    assert shares.boot_files([]) == ()


def test_shares_survive_the_record_round_trip() -> None:
    share = shares.Share("/home/me", "/home/me", "provision0")
    assert shares.Share.from_data(share.to_data()) == share


def test_qemu_serves_each_share_as_its_user_after_the_nics(tmp_path: Path) -> None:
    image = BaseImage(kind="debian-docker", disk=tmp_path / "d.qcow2", disk_format="qcow2")
    config = qemu.QemuConfig(
        name="m", cpus=1, memory_mib=512, accel="tcg", image=image, overlay=tmp_path / "o.qcow2",
        seed=tmp_path / "seed.iso", ssh_port=2222, host_engine_port=2376, guest_engine_port=2376,
        console_log=tmp_path / "c.log", qmp_socket=tmp_path / "q.sock", pidfile=tmp_path / "p",
        cluster_nic=("seg", "52:54:00:00:00:01"), shares=(("/home/a,b", "provision0"),))
    argv = config.argv()
    fsdev = argv.index("-fsdev")
    assert argv[fsdev + 1] == "local,id=provision0,path=/home/a,,b,security_model=none"
    assert argv[fsdev + 3] == "virtio-9p-pci,fsdev=provision0,mount_tag=provision0"
    assert max(i for i, arg in enumerate(argv) if arg.startswith("virtio-net-pci")) < fsdev


def _seed_archive(driver: LocalDriver, image: BaseImage) -> dict[str, bytes]:
    driver.ctx.data["instance_id"] = "provision-m"
    driver._write_seed(image)
    data = read_seed_iso(driver.ctx.machine_dir / "seed.iso")["provision-files.tar"]
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:  # type: ignore[arg-type]
        return {"/" + m.name: archive.extractfile(m).read() for m in archive.getmembers()}  # type: ignore[union-attr]


def test_the_seed_mounts_the_recorded_shares_and_puts_dockerd_on_the_users_path(tmp_path: Path) -> None:
    driver = LocalDriver(make_context(tmp_path / "m", "m"))
    driver.ctx.data["shares"] = [shares.Share("/home/me", "/home/me", "provision0").to_data()]
    files = _seed_archive(driver, BaseImage(kind="debian-docker", disk=tmp_path / "d.qcow2", disk_format="qcow2"))
    assert b"Where=/home/me\n" in files["/etc/systemd/system/home-me.mount"]
    assert b"Wants=home-me.mount\n" in files[shares.WANTS_DROPIN]
    sshd = files["/etc/ssh/sshd_config.d/20-provision-path.conf"].decode()
    assert f"\nSetEnv PATH={USER_PATH}\n" in sshd
    assert USER_PATH.split(":").index("/usr/sbin") > USER_PATH.split(":").index("/usr/bin")  # the user's first
    # A login shell: /etc/profile has just set a PATH without /usr/sbin; the snippet adds it once, last.
    profile = tmp_path / "provision-path.sh"
    profile.write_bytes(files["/etc/profile.d/provision-path.sh"])
    login = subprocess.run(["sh", "-c", f'PATH=/usr/local/bin:/usr/bin:/bin; . {profile}; . {profile}; echo "$PATH"'],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert login == "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
    # No link named dockerd ahead of /usr/sbin on root's PATH: provisioning would find it and restart dockerd.
    assert not any(path.endswith("/dockerd") for path in files)


def test_a_machine_with_no_shares_recorded_gets_no_mount_units(tmp_path: Path) -> None:
    driver = LocalDriver(make_context(tmp_path / "m", "m"))
    files = _seed_archive(driver, BaseImage(kind="debian-docker", disk=tmp_path / "d.qcow2", disk_format="qcow2"))
    assert not [path for path in files if path.endswith(".mount") or path == shares.WANTS_DROPIN]


# -- the flags, through the CLI ----------------------------------------------------------------------

def test_a_missing_shared_folder_fails_create_before_anything_is_made(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    refused = run("create", "-d", "local", "--local-share-folder", str(missing), "dev")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.strip().splitlines() == [f"--local-share-folder: {missing} does not exist"]
    assert run("ls", "-q").stdout == ""
    by_env = run("create", "-d", "local", "dev", env={"PROVISION_LOCAL_SHARE_FOLDER": f"{tmp_path}:etc"})
    assert by_env.returncode == 2 and "must be an absolute path" in by_env.stderr
    both = run("create", "-d", "local", "--local-no-share", "--local-share-folder", str(tmp_path), "dev")
    assert both.returncode == 2 and "contradict" in both.stderr


def test_the_share_flags_are_listed_with_their_variables() -> None:
    listed = run("create", "-d", "local", "--help", check=True).stdout
    for text in ("--local-share-folder", "PROVISION_LOCAL_SHARE_FOLDER", "--local-no-share",
                 "PROVISION_LOCAL_NO_SHARE"):
        assert text in listed


def test_a_shared_folder_deleted_since_create_is_left_out_of_the_next_boot(tmp_path: Path) -> None:
    kept, gone = tmp_path / "kept", tmp_path / "gone"
    kept.mkdir()
    driver = LocalDriver(make_context(tmp_path / "m", "m", cache_dir=tmp_path / "cache"))
    image = BaseImage(kind="debian-docker", disk=tmp_path / "cache" / "d.qcow2", disk_format="qcow2")
    driver.ctx.data.update({
        "image": image.to_data(tmp_path / "cache"), "ssh_port": 2222, "host_engine_port": 2376, "cpus": 1,
        "memory_mib": 512, "accel": "tcg",
        "shares": [shares.Share(str(kept), str(kept), "provision0").to_data(),
                   shares.Share(str(gone), "/srv/gone", "provision1").to_data()]})
    # QEMU refuses to start with a -fsdev whose folder is missing: the machine boots without that share.
    assert driver._config().shares == ((str(kept), "provision0"),)
