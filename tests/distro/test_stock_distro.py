"""README's quick start, word for word, on a stock Debian 12 userland.

A root file system made with ``mmdebstrap bookworm`` (nothing else installed) gets the part of the quick start
line that installs (every step before the first ``provision``), read from README.md, run by bash in a chroot as
a fresh root login would. The host's settings for reaching the package registries are carried in, and nothing
else: its CA bundle and local CA certificates, its resolv.conf, its pip configuration files and ``PIP_*``
variables, and its apt proxy and validity settings. Then ``provision`` must run in that same line, in root's
next shell and in an ordinary user's.

The chroot runs in its own mount and PID namespaces (``unshare``): its /proc, /sys and /dev mounts and any
process a package's script starts end with it, and the test checks that nothing stays mounted before it deletes
the tree.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, shared_cache_dir

SUITE = "bookworm"
# A fresh root login's PATH on Debian (/etc/profile), so nothing of the test's own environment leaks in.
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Only these parts of the host's apt configuration go in: how it reaches the archive, not what it installs.
APT_CARRIED = re.compile(r'^Acquire::(https?::Proxy|Check-Valid-Until|Check-Date|Retries)\b')
CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
INSTALL_TIMEOUT = 1500


def readme_quick_start(readme: Path = REPO_ROOT / "README.md") -> tuple[list[str], list[str]]:
    """The quick start's one command line as (install steps, steps that use provision)."""
    text = readme.read_text(encoding="utf-8")
    section = text.split("\n## Quick start\n", 1)
    assert len(section) == 2, "README.md has no '## Quick start' section"
    block = re.search(r"```sh\n(.*?)```", section[1], re.S)
    assert block, "the quick start section has no ```sh block"
    line = re.sub(r"\\\n\s*", " ", block.group(1)).strip()
    assert "\n" not in line, f"the quick start is more than one command line:\n{line}"
    steps = [step.strip() for step in line.split(" && ")]
    first_use = next((i for i, step in enumerate(steps) if step.split()[0] == "provision"), None)
    assert first_use, f"no step of the quick start runs provision after installing it:\n{line}"
    return steps[:first_use], steps[first_use:]


def test_readme_quick_start_installs_then_creates_a_local_machine() -> None:
    install, use = readme_quick_start()
    assert install[0] == "apt-get update", install
    assert install[1].startswith("apt-get install -y "), install
    # No system-wide pip: Debian 12 and Ubuntu 24.04 refuse it (PEP 668) and ship no pip by default.
    assert not any(re.search(r"(^|\s)pip3? install", step) for step in install), install
    # README gives the sudo form as `sudo sh -c '<the line>'`: that quoting holds only without single quotes.
    assert "'" not in " && ".join(install + use), install + use
    assert use[0] == "provision create -d local dev", use
    assert use[-1] == "docker --context dev version", use


def _run(argv: list[str], *, timeout: float, what: str, **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def _host_apt_settings() -> str:
    dump = _run(["apt-config", "dump"], timeout=60, what="apt-config dump").stdout
    return "".join(line + "\n" for line in dump.splitlines() if APT_CARRIED.match(line))


def _mirror_args() -> list[str]:
    from provision_drivers.images import DEFAULT_MIRROR, host_debian_mirror

    mirror = host_debian_mirror()
    if mirror == DEFAULT_MIRROR:
        return []  # exactly `mmdebstrap bookworm`: deb.debian.org with its updates and security suites
    return [f"deb {mirror} {SUITE} main", f"deb {mirror} {SUITE}-updates main"]


def stock_rootfs(work: Path) -> Path:
    """A tarball of ``mmdebstrap bookworm``, cached in the shared test cache by what shapes it."""
    apt_settings = _host_apt_settings()
    mirror_args = _mirror_args()
    version = _run(["mmdebstrap", "--version"], timeout=60, what="mmdebstrap --version").stdout.strip()
    arch = _run(["dpkg", "--print-architecture"], timeout=60, what="dpkg").stdout.strip()
    key = hashlib.sha256("\0".join([SUITE, arch, version, apt_settings, *mirror_args]).encode()).hexdigest()[:12]
    tarball = shared_cache_dir() / "stock-distro" / f"{SUITE}-{arch}-{key}.tar"
    if tarball.exists():
        return tarball
    tarball.parent.mkdir(parents=True, exist_ok=True)
    aptopt = work / "host-apt.conf"
    aptopt.write_text(apt_settings)
    partial = tarball.with_name(f".{os.getpid()}-{tarball.name}")
    try:
        _run(["mmdebstrap", "--format=tar", f"--aptopt={aptopt}", SUITE, str(partial), *mirror_args],
             timeout=INSTALL_TIMEOUT, what="mmdebstrap")
        os.replace(partial, tarball)
    finally:
        partial.unlink(missing_ok=True)
    return tarball


def _copy_into(root: Path, host_path: Path) -> None:
    target = root / host_path.relative_to("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if host_path.is_dir():
        shutil.copytree(host_path, target, dirs_exist_ok=True)
    else:
        shutil.copy2(host_path, target)


def carry_in_host_settings(root: Path) -> dict[str, str]:
    """Copy the host's ways to the registries into the chroot; the variables that go with them."""
    # The test's HOME is a temporary one (conftest); the user's pip config lives in the real one.
    home = Path(pwd.getpwuid(os.geteuid()).pw_dir)
    carried: list[Path] = [Path("/etc/resolv.conf"), Path("/etc/ssl/certs/ca-certificates.crt"),
                           Path("/usr/local/share/ca-certificates"), Path("/etc/pip.conf"), Path("/etc/xdg/pip")]
    for variable in (*CA_VARIABLES, "PIP_CERT", "PIP_CONFIG_FILE", "PIP_CONSTRAINT"):
        for value in os.environ.get(variable, "").split():
            carried.append(Path(value))
    for path in carried:
        if path.is_absolute() and path.exists():
            _copy_into(root, path)
    for user_conf in (".config/pip", ".pip"):
        if (home / user_conf).is_dir():
            shutil.copytree(home / user_conf, root / "root" / user_conf, dirs_exist_ok=True)
    env = {name: value for name, value in os.environ.items() if name.startswith("PIP_")}
    env.update({name: os.environ[name] for name in CA_VARIABLES if name in os.environ})
    return env


def copy_checkout(root: Path) -> Path:
    source = root / "root" / "provision"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "venv", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache"))
    return source


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve())
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        return [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]


class Chroot:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env

    def bash(self, script: str, *, login: bool = False, user: str = "root", cwd: str = "/root",
             timeout: float = 300, merge_stderr: bool = False) -> subprocess.CompletedProcess[str]:
        """``script`` under bash in the chroot, from an empty environment like a new session's."""
        if user == "root":
            inner = ["/usr/bin/env", "-i", "HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/bash",
                     "LANG=C.UTF-8", f"PATH={ROOT_PATH}", *(f"{k}={v}" for k, v in self.env.items()),
                     "/bin/bash", *(["-l"] if login else []), "-c", f"cd {shlex.quote(cwd)} && {script}"]
        else:  # a login shell of an ordinary user, as su gives it: only what the user's own session sets
            inner = ["/usr/bin/env", "-i", "LANG=C.UTF-8", f"PATH={ROOT_PATH}",
                     "/usr/bin/su", "-l", user, "-s", "/bin/bash", "-c", script]
        setup = ('set -e; R="$1"; shift; mount --make-rprivate /; mount -t proc proc "$R/proc"; '
                 'mount -t sysfs sysfs "$R/sys"; mount --rbind /dev "$R/dev"; exec chroot "$R" "$@"')
        return subprocess.run(["unshare", "--mount", "--pid", "--fork", "--kill-child", "sh", "-c", setup, "sh",
                               str(self.root), *inner],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def ok(self, script: str, **kwargs) -> str:
        result = self.bash(script, **kwargs)
        assert result.returncode == 0, (f"`{script}` failed in the stock {SUITE} chroot ({result.returncode}):\n"
                                        f"{result.stdout[-6000:]}\n{(result.stderr or '')[-6000:]}")
        return result.stdout


@pytest.fixture
def stock_chroot(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("a chroot with mounts needs root (.ci/run runs as root)")
    for tool in ("mmdebstrap", "unshare", "chroot", "apt-config"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (.ci/run installs it)")
    tarball = stock_rootfs(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    try:
        _run(["tar", "-xpf", str(tarball), "--numeric-owner", "-C", str(root)], timeout=600, what="tar")
        env = carry_in_host_settings(root)
        yield Chroot(root, env)
    finally:
        left = _mounts_under(root)
        for mount in reversed(left):  # only if a namespace leaked them; never delete through a mount
            subprocess.run(["umount", "-l", mount], check=False)
        assert not _mounts_under(root), f"still mounted under {root}: {_mounts_under(root)}"
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False, timeout=900)


@pytest.mark.stockdistro
@pytest.mark.slow
@pytest.mark.timeout(INSTALL_TIMEOUT + 900)
def test_readme_install_works_on_stock_debian(stock_chroot: Chroot) -> None:
    install, _ = readme_quick_start()
    # The stock system has no Python, no pip and no provision: the line alone must bring them.
    before = stock_chroot.bash("command -v python3 || command -v pip || command -v provision")
    assert before.returncode != 0 and not before.stdout.strip(), before.stdout
    source = copy_checkout(stock_chroot.root)
    line = " && ".join(install)
    started = time.monotonic()
    # The same line goes on with provision itself, as the README's does (there to a local VM; here none).
    out = stock_chroot.ok(f"{line} && provision --version", cwd="/" + str(source.relative_to(stock_chroot.root)),
                          timeout=INSTALL_TIMEOUT, merge_stderr=True)
    seconds = time.monotonic() - started
    version = out.strip().splitlines()[-1]
    assert re.fullmatch(r"provision version \S+", version), version
    transcript = shared_cache_dir() / "stock-distro" / "last-install.log"
    transcript.write_text(f"$ {line}\n{out}\n(install and --version took {seconds:.0f} s)\n")

    # Root's next shell: a login shell from an empty environment finds it.
    out = stock_chroot.ok("provision --version && provision create -d none --url tcp://127.0.0.1:1 x"
                          " && provision env x", login=True)
    assert out.startswith(version + "\n"), out
    assert 'export DOCKER_HOST="tcp://127.0.0.1:1"' in out and 'export DOCKER_MACHINE_NAME="x"' in out, out

    # An ordinary user's next shell: the command is on their PATH and its environment readable to them.
    stock_chroot.ok("useradd -m -s /bin/bash alice")
    out = stock_chroot.ok("command -v provision && provision --version"
                          " && provision create -d none --url tcp://127.0.0.1:1 x && provision env x", user="alice")
    lines = out.splitlines()
    assert lines[:2] == ["/usr/local/bin/provision", version], out
    assert 'export DOCKER_CERT_PATH="/home/alice/' in out, out
