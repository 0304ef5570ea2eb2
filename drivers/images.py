"""Base images for the local driver: built from the Debian archive, or an official cloud image by URL.

Every base image lives in the shared cache (``ctx.cache_dir/local/<key>/``) and is read-only once its
``manifest.json`` exists: a machine is a qcow2 overlay on it. A file lock per image makes concurrent
creates build or download once; the others wait and reuse the result.

The Debian build needs no loop device and no bootloader: ``mmdebstrap`` makes a root directory,
``mkfs.ext4 -d`` turns it into a filesystem image inside a plain file, ``qemu-img`` compresses it, and
QEMU boots the kernel straight from the cache (direct kernel boot): the ELF taken out of the root's
``/boot/vmlinuz`` (``drivers/kernelfile.py``) with provision's own initramfs (``drivers/initrd.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from provision.errors import CommandError, DriverError, TimeoutExpired
from provision.run import run
from provision.templating import render

from .initrd import ROOT_MODULES, InitrdError, build_initrd
from .kernelfile import write_boot_kernel

Progress = Callable[[str], None]

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# What a machine needs to boot, take a key from the seed and be provisioned over SSH. No cloud-init:
# its four Python stages cost minutes of first boot under TCG, so a small shell script, run as a systemd
# generator (templates/cloud-init/base-image/provision-firstboot), reads the same seed instead.
BASE_PACKAGES = (
    "systemd-sysv", "udev", "dbus", "kmod", "passwd", "adduser", "openssh-server",
    "linux-image-amd64", "apparmor", "sudo", "ca-certificates", "e2fsprogs", "iproute2", "netbase", "curl",
    "gnupg", "busybox-static",
)
VARIANTS: dict[str, tuple[str, ...]] = {
    "debian": BASE_PACKAGES,
    "debian-docker": BASE_PACKAGES + ("docker.io",),
}
# Units that only cost boot time on a short-lived development VM under emulation.
MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer", "e2scrub_all.timer",
                "e2scrub_reap.service", "dpkg-db-backup.timer",
                # Holds docker.service back until DHCP completes: nothing at boot needs it here.
                "systemd-networkd-wait-online.service",
                # Modules for hardware the machine lacks; anything else (loop, fuse) loads on first use.
                "modprobe@drm.service", "modprobe@efi_pstore.service", "modprobe@dm_mod.service")
IPTABLES_LEGACY = ("iptables", "ip6tables")
# Units started early, beside the rest of the boot (templates/cloud-init/base-image/early-start.conf).
EARLY_UNITS = ("containerd.service", "docker.service", "ssh.service")
# How the kernel is booted (drivers/kernelfile.py): part of the recipe, so older cached images are rebuilt.
BOOT_KERNEL = "vmlinux-pvh, small initrd"
UNUSED_APPARMOR_PROFILES = ("lsb_release", "nvidia_modprobe")
KERNEL_CMDLINE = "root=/dev/vda rw console=ttyS0,115200n8 earlyprintk=ttyS0,115200 panic=-1"
MANIFEST = "manifest.json"
# Files rendered into the image; with the package list and the command line they form the recipe,
# whose digest names the cache entry, so a changed recipe builds a new image instead of reusing an old one.
BASE_IMAGE_TEMPLATES = ("fstab", "90-provision-dhcp.network", "sshd-provision.conf", "provision-firstboot",
                        "provision-growfs.service", "initramfs-provision.conf", "initramfs-hook",
                        "early-start.conf", "early-socket.conf", "resolv.conf", "initrd-init")
# The login user, made in the image so the first boot only writes its key: useradd and usermod cost
# seconds under TCG. The seed names the user; another name is still made at first boot.
IMAGE_USER = "provision"
BUILD_LOCK_TIMEOUT = 45 * 60  # a build under a slow mirror takes minutes; waiting longer means it is stuck
BUILD_TIMEOUT = 40 * 60
CHECKSUM_FILES = ("SHA512SUMS", "SHA256SUMS")
DEBIAN_CODENAMES = ("buster", "bullseye", "bookworm", "trixie", "forky", "sid", "stable", "testing",
                    "unstable", "oldstable")


@dataclass(frozen=True)
class BaseImage:
    """A cached, read-only base disk, plus the kernel to boot it with when it has no bootloader."""

    kind: str
    disk: Path
    disk_format: str
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: str | None = None

    def to_data(self, cache_dir: Path) -> dict[str, str | None]:
        """The record's form: paths inside ``cache_dir`` relative to it, so a moved store (and its cache)
        still finds its image."""
        def stored(value: object) -> str | None:
            if not isinstance(value, Path):
                return value if value is None else str(value)
            try:
                return str(value.relative_to(cache_dir))
            except ValueError:
                return str(value)

        return {key: stored(value) for key, value in vars(self).items()}

    @classmethod
    def from_data(cls, data: dict[str, str | None], cache_dir: Path) -> BaseImage:
        def path(key: str) -> Path | None:
            value = data.get(key)
            return cache_dir / value if value else None  # an absolute path (older records) stays as it is

        disk = path("disk")
        if disk is None:
            raise DriverError("the machine record names no base image")
        return cls(kind=str(data["kind"]), disk=disk, disk_format=str(data["disk_format"]),
                   kernel=path("kernel"), initrd=path("initrd"), cmdline=data.get("cmdline"))

    def missing(self) -> list[Path]:
        return [p for p in (self.disk, self.kernel, self.initrd) if p is not None and not p.exists()]


def ensure_image(spec: str, *, cache_dir: Path, mirror: str, progress: Progress) -> BaseImage:
    """The base image named by ``--local-image``: a Debian variant name or a cloud image URL."""
    if spec in VARIANTS:
        return ensure_debian_image(spec, cache_dir=cache_dir, mirror=mirror, progress=progress)
    scheme = urllib.parse.urlsplit(spec).scheme
    if scheme in ("http", "https", "file"):
        return ensure_cloud_image(spec, cache_dir=cache_dir, progress=progress)
    names = ", ".join(VARIANTS)
    raise DriverError(f'unknown local image "{spec}": give {names}, or the http(s) URL of a cloud image',
                      driver="local")


# -- the Debian mirror ---------------------------------------------------------------------------------

def host_debian_mirror(root: Path = Path("/")) -> str:
    """The host's own Debian mirror from its apt sources (one-line or deb822), else deb.debian.org.

    Only an entry for a Debian suite counts: an Ubuntu or third-party repository cannot serve bookworm.
    """
    apt = root / "etc" / "apt"
    sources: list[Path] = []
    if (apt / "sources.list").is_file():
        sources.append(apt / "sources.list")
    if (apt / "sources.list.d").is_dir():
        sources.extend(sorted(p for p in (apt / "sources.list.d").iterdir() if p.suffix in (".list", ".sources")))
    for source in sources:
        try:
            text = source.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        entries = _deb822_entries(text) if source.suffix == ".sources" else _one_line_entries(text)
        for uri, suites in entries:
            if _is_debian_main_suite(suites) and urllib.parse.urlsplit(uri).scheme in ("http", "https"):
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def _is_debian_main_suite(suites: list[str]) -> bool:
    return any(s in DEBIAN_CODENAMES for s in suites)


def _one_line_entries(text: str) -> Iterator[tuple[str, list[str]]]:
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # options such as [signed-by=...]
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            yield words[0], [words[1]]


def _deb822_entries(text: str) -> Iterator[tuple[str, list[str]]]:
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
            continue
        for uri in fields.get("uris", "").split():
            yield uri, fields.get("suites", "").split()


# -- building from the Debian archive ------------------------------------------------------------------

def ensure_debian_image(variant: str, *, cache_dir: Path, mirror: str, progress: Progress) -> BaseImage:
    image_dir = cache_dir / "local" / f"{variant}-{SUITE}-{recipe_digest(variant)}"
    return _cached_or_made(image_dir, f"the {variant} base image build", progress,
                           lambda: _build_debian_image(variant, image_dir, mirror=mirror, progress=progress))


def _cached_or_made(image_dir: Path, what: str, progress: Progress, make: Callable[[], BaseImage]) -> BaseImage:
    """The image cached in ``image_dir``, or ``make()``'s, made by one process while the others wait."""
    from filelock import FileLock, Timeout

    image_dir.parent.mkdir(parents=True, exist_ok=True)
    cached = _read_manifest(image_dir)
    if cached is not None:
        return cached
    lock = FileLock(str(image_dir) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        progress(f"waiting for another process to finish {what}")
        try:
            lock.acquire(timeout=BUILD_LOCK_TIMEOUT)
        except Timeout as exc:
            raise TimeoutExpired(f"{what}, held by another process, did not finish "
                                 f"within {BUILD_LOCK_TIMEOUT // 60} minutes (lock {lock.lock_file})") from exc
    try:
        # The process we waited for may have finished it.
        return _read_manifest(image_dir) or make()
    finally:
        lock.release()


def recipe_digest(variant: str) -> str:
    recipe = hashlib.sha256()
    for part in (SUITE, KERNEL_CMDLINE, BOOT_KERNEL, *ROOT_MODULES, IMAGE_USER, *VARIANTS[variant],
                 *MASKED_UNITS, *EARLY_UNITS, *IPTABLES_LEGACY, *UNUSED_APPARMOR_PROFILES,
                 *(render(f"cloud-init/base-image/{name}") for name in BASE_IMAGE_TEMPLATES)):
        recipe.update(part.encode() + b"\0")
    return recipe.hexdigest()[:12]


def _build_debian_image(variant: str, image_dir: Path, *, mirror: str, progress: Progress) -> BaseImage:
    if os.geteuid() != 0:
        raise DriverError(
            f"building the {variant} base image needs root: mmdebstrap must create files owned by every "
            "system user, and mkfs.ext4 -d copies that ownership into the disk image",
            driver="local",
            hint="run the first `provision create -d local` with sudo to fill the image cache, "
                 "or use --local-image with the URL of a cloud image",
        )
    for tool, package in (("mmdebstrap", "mmdebstrap"), ("mkfs.ext4", "e2fsprogs"), ("qemu-img", "qemu-utils")):
        if shutil.which(tool) is None:
            raise CommandError(f"{tool} is not installed; it is needed to build the {variant} base image",
                               hint=f"apt-get install {package}")
    started = time.monotonic()
    work = image_dir.parent / f".build-{image_dir.name}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        root = work / "root"
        initramfs_conf = work / "initramfs-provision.conf"
        initramfs_conf.write_text(render("cloud-init/base-image/initramfs-provision.conf"))
        initramfs_hook = work / "initramfs-hook"
        initramfs_hook.write_text(render("cloud-init/base-image/initramfs-hook"))
        progress(f"building the {variant} base image from {mirror} (mmdebstrap, a few minutes, once)")
        _run([
            "mmdebstrap", "--variant=apt", "--mode=root", "--format=directory", "--components=main",
            f"--include={','.join(VARIANTS[variant])}",
            # The initrd is generated when the kernel package installs: its config must be there first.
            '--essential-hook=mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/etc/initramfs-tools/hooks"',
            f"--essential-hook=upload {initramfs_conf} /etc/initramfs-tools/conf.d/provision.conf",
            f"--essential-hook=upload {initramfs_hook} /etc/initramfs-tools/hooks/provision-virtio",
            '--essential-hook=chmod 755 "$1/etc/initramfs-tools/hooks/provision-virtio"',
            SUITE, str(root), f"deb {mirror} {SUITE} main", f"deb {mirror} {SUITE}-updates main",
        ], what="mmdebstrap", progress=progress, timeout=BUILD_TIMEOUT)
        _customize_root(root)
        kernel, initrd = _boot_files(root)
        boot_kernel = write_boot_kernel(kernel, work).name
        try:  # provision's own initramfs (drivers/initrd.py), else Debian's
            (work / "initrd.img").write_bytes(build_initrd(root, kernel.name.removeprefix("vmlinuz-"),
                                                           render("cloud-init/base-image/initrd-init")))
        except InitrdError as exc:
            progress(f"{variant} base image: keeping Debian's initrd ({exc})")
            shutil.copy2(initrd, work / "initrd.img")
        progress(f"{variant} base image: writing the ext4 filesystem")
        raw = work / "disk.raw"
        size_mib = _filesystem_size_mib(root)
        _run(["mkfs.ext4", "-q", "-F", "-L", "provision-root", "-i", "8192", "-d", str(root), str(raw),
              f"{size_mib}M"], what="mkfs.ext4", progress=progress)
        shutil.rmtree(root)
        progress(f"{variant} base image: compressing to qcow2")
        _run(["qemu-img", "convert", "-c", "-m", "4", "-W", "-f", "raw", "-O", "qcow2", str(raw),
              str(work / "disk.qcow2")], what="qemu-img convert", progress=progress)
        raw.unlink()
        image_dir.mkdir(parents=True, exist_ok=True)
        for name in ("disk.qcow2", boot_kernel, "initrd.img"):
            os.replace(work / name, image_dir / name)
        image = BaseImage(kind=variant, disk=image_dir / "disk.qcow2", disk_format="qcow2",
                          kernel=image_dir / boot_kernel, initrd=image_dir / "initrd.img", cmdline=KERNEL_CMDLINE)
        _write_manifest(image_dir, image, {
            "suite": SUITE, "mirror": mirror, "packages": list(VARIANTS[variant]),
            "build_seconds": round(time.monotonic() - started, 1),
            "disk_bytes": (image_dir / "disk.qcow2").stat().st_size, "filesystem_mib": size_mib,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
        progress(f"{variant} base image ready ({(image_dir / 'disk.qcow2').stat().st_size // 2**20} MiB)")
        return image
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _customize_root(root: Path) -> None:
    """Make the bare root bootable without a bootloader and neutral for every machine cloned from it."""
    def put(template: str, target: str, mode: int = 0o644) -> None:
        path = root / target.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(f"cloud-init/base-image/{template}"))
        path.chmod(mode)

    put("fstab", "/etc/fstab")
    put("90-provision-dhcp.network", "/etc/systemd/network/90-provision-dhcp.network")
    put("sshd-provision.conf", "/etc/ssh/sshd_config.d/10-provision.conf")
    # A generator, not a service: it runs before systemd loads units (see the script for why).
    put("provision-firstboot", "/etc/systemd/system-generators/provision-firstboot", 0o755)
    put("provision-growfs.service", "/etc/systemd/system/provision-growfs.service")
    # Drop-ins wait for their units: the debian variant gets Docker from apt later and starts it early too.
    for unit in EARLY_UNITS:
        put("early-start.conf", f"/etc/systemd/system/{unit}.d/05-provision-early.conf")
    put("early-socket.conf", "/etc/systemd/system/docker.socket.d/05-provision-early.conf")
    (root / "etc" / "resolv.conf").unlink(missing_ok=True)  # mmdebstrap leaves the build host's
    put("resolv.conf", "/etc/resolv.conf")
    # Every machine gets its own identity at first boot: the host key from the seed (provision-firstboot),
    # machine-id from systemd.
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc" / "machine-id").write_text("")
    (root / "var" / "lib" / "dbus" / "machine-id").unlink(missing_ok=True)
    _add_user(root, IMAGE_USER)
    # Profiles for programs a Docker host does not run: compiling them at first boot held every service
    # back by 4-9 s under TCG. AppArmor stays on; dockerd loads its own profile for containers.
    for profile in UNUSED_APPARMOR_PROFILES:
        if (root / "etc" / "apparmor.d" / profile).exists():
            (root / "etc" / "apparmor.d" / "disable" / profile).symlink_to(f"../{profile}")
    # dockerd runs iptables about a hundred times as it starts; the legacy backend answers each in about
    # half the time of the nft one under TCG, and dockerd's start is the longest step of a boot.
    for tool in IPTABLES_LEGACY:
        if (root / "usr" / "sbin" / f"{tool}-legacy").exists():
            _run(["chroot", str(root), "update-alternatives", "--quiet", "--set", tool, f"/usr/sbin/{tool}-legacy"],
                 what=f"update-alternatives {tool}", progress=None)
    _systemctl(root, "enable", "systemd-networkd.service", "provision-growfs.service")
    _systemctl(root, "mask", *MASKED_UNITS)
    for cache in (root / "var" / "cache" / "apt").glob("*.bin"):
        cache.unlink()


def _add_user(root: Path, user: str) -> None:
    """The login user with a locked password, in the sudo group and, where Docker is there, the docker group."""
    groups = [g for g in ("sudo", "docker") if _has_group(root, g)]
    _run(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash", "--user-group",
          *(["--groups", ",".join(groups)] if groups else []), user], what="useradd", progress=None)
    _run(["chroot", str(root), "passwd", "-l", user], what="passwd -l", progress=None)


def _has_group(root: Path, group: str) -> bool:
    return any(line.split(":", 1)[0] == group for line in (root / "etc" / "group").read_text().splitlines())


def _systemctl(root: Path, verb: str, *units: str) -> None:
    # The image's own systemctl, run in the chroot, edits unit symlinks offline; the host may have no
    # systemd at all (a CI container), and its version need not match the image's.
    _run(["chroot", str(root), "systemctl", "--quiet", verb, *units], what=f"systemctl {verb}", progress=None)


def _boot_files(root: Path) -> tuple[Path, Path]:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise DriverError("the built root has no kernel or initrd in /boot (is linux-image-amd64 installed?)",
                          driver="local")
    return kernels[-1], initrds[-1]


def _filesystem_size_mib(root: Path) -> int:
    used = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            try:
                used += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    # ext4 metadata, journal and block rounding need room; the machine's disk grows at first boot anyway.
    return int(used * 1.3 / 2**20) + 512


def _run(argv: list[str], *, what: str, progress: Progress | None, timeout: float = 20 * 60) -> None:
    """Run a build step; mmdebstrap's ``I:`` lines go to ``progress``, the rest is kept for the error."""
    def show(line: str) -> None:
        if progress is not None and line.startswith("I: "):
            progress(f"{what}: {line[3:]}")

    run(argv, what=what, timeout=timeout, on_line=show)


# -- official cloud images by URL ----------------------------------------------------------------------

def ensure_cloud_image(url: str, *, cache_dir: Path, progress: Progress) -> BaseImage:
    """Download a cloud image once, verified against the SHA512SUMS/SHA256SUMS file beside it."""
    name = Path(urllib.parse.urlsplit(url).path).name
    if not name:
        raise DriverError(f"the image URL {url} names no file", driver="local")
    image_dir = cache_dir / "local" / ("url-" + hashlib.sha256(url.encode()).hexdigest()[:16])
    return _cached_or_made(image_dir, f"the download of {url}", progress,
                           lambda: _download_cloud_image(url, name, image_dir, progress))


def _download_cloud_image(url: str, name: str, image_dir: Path, progress: Progress) -> BaseImage:
    try:
        algorithm, expected = find_published_checksum(url)
        image_dir.mkdir(parents=True, exist_ok=True)
        target = image_dir / name
        part = image_dir / (name + ".part")
        try:
            actual = _download(url, part, algorithm, progress)
            if actual != expected:
                raise DriverError(
                    f"checksum mismatch for {url}: {algorithm} is {actual}, the published sums say {expected}",
                    driver="local", hint="the download is corrupt or the mirror is out of date; nothing was kept")
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)
        image = BaseImage(kind="url", disk=target, disk_format=disk_format(target))
        _write_manifest(image_dir, image, {"url": url, algorithm: expected})
        return image
    except BaseException:
        if _read_manifest(image_dir) is None:
            shutil.rmtree(image_dir, ignore_errors=True)
        raise


def find_published_checksum(url: str) -> tuple[str, str]:
    """The (algorithm, hex digest) for ``url`` from the checksum file in the same directory."""
    name = Path(urllib.parse.urlsplit(url).path).name
    looked: list[str] = []
    for sums_name in CHECKSUM_FILES:
        sums_url = urllib.parse.urljoin(url, sums_name)
        looked.append(sums_url)
        try:
            with urllib.request.urlopen(sums_url, timeout=30) as response:
                text = response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                continue
            raise DriverError(f"could not fetch {sums_url}: HTTP {exc.code}", driver="local") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise DriverError(f"could not fetch {sums_url}: {exc}", driver="local") from exc
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*").removeprefix("./") == name:
                return sums_name.removesuffix("SUMS").lower(), parts[0].lower()
    raise DriverError(f"no published checksum for {name}: looked in {', '.join(looked)}", driver="local",
                      hint="provision refuses unverified images; publish SHA512SUMS beside the image")


def _download(url: str, dest: Path, algorithm: str, progress: Progress) -> str:
    digest = hashlib.new(algorithm)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done, reported = 0, -1
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                percent = done * 100 // total if total else -1
                if percent // 10 != reported // 10:
                    reported = percent
                    size = f"{done // 2**20} MiB" + (f" of {total // 2**20} MiB" if total else "")
                    progress(f"downloading {Path(dest.name).stem}: {size}")
    except (urllib.error.URLError, OSError) as exc:
        raise DriverError(f"could not download {url}: {exc}", driver="local") from exc
    return digest.hexdigest()


def disk_format(path: Path) -> str:
    """The image format qemu-img sees (cloud images come as qcow2 or raw)."""
    out = run(["qemu-img", "info", "--output=json", str(path)], what=f"qemu-img info {path.name}", timeout=60,
              missing_hint="apt-get install qemu-utils")
    fmt = json.loads(out).get("format")
    if fmt not in ("qcow2", "raw"):
        raise DriverError(f"{path.name} is a {fmt} image; the local driver boots qcow2 or raw images",
                          driver="local")
    return str(fmt)


# -- the manifest marks a finished image -----------------------------------------------------------------

def _read_manifest(image_dir: Path) -> BaseImage | None:
    try:
        data = json.loads((image_dir / MANIFEST).read_text())
        recorded = dict(data["image"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # The files sit beside the manifest (older manifests name them absolutely): a moved cache stays valid.
    for key in ("disk", "kernel", "initrd"):
        if recorded.get(key):
            recorded[key] = Path(recorded[key]).name
    try:
        image = BaseImage.from_data(recorded, image_dir)
    except (KeyError, DriverError):
        return None
    return None if image.missing() else image


def _write_manifest(image_dir: Path, image: BaseImage, facts: dict[str, object]) -> None:
    tmp = image_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"image": image.to_data(image_dir), **facts}, indent=2) + "\n")
    os.replace(tmp, image_dir / MANIFEST)


def manifest_facts(image: BaseImage) -> dict[str, object]:
    """What the manifest says about how the image was made (for ``inspect`` and the figures script)."""
    try:
        data = json.loads((image.disk.parent / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    data.pop("image", None)
    return data
