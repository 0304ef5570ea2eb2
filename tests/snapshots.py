"""Byte-for-byte pictures of directory trees, to show that a refused command changed nothing."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

PROGRESS_PREFIX = "["  # the reporter's "[   0.0s] step" lines, which are not messages


def snapshot(*roots: Path) -> dict[str, str]:
    """Every entry under each root (not following links): its type, mode and content hash or link target."""
    picture: dict[str, str] = {}
    for root in roots:
        if not os.path.lexists(root):
            picture[str(root)] = "absent"
            continue
        for directory, dirs, files in os.walk(root):
            for name in sorted(dirs + files):
                path = os.path.join(directory, name)
                info = os.lstat(path)
                if stat.S_ISLNK(info.st_mode):
                    picture[path] = f"link {os.readlink(path)}"
                elif stat.S_ISREG(info.st_mode):
                    with open(path, "rb") as handle:
                        digest = hashlib.sha256(handle.read(1 << 22)).hexdigest()
                    picture[path] = f"file {info.st_mode:o} {info.st_size} {digest}"
                else:
                    picture[path] = f"other {info.st_mode:o}"
    return picture


def messages(result: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr's lines that say something (progress lines left out); never a traceback."""
    assert "Traceback" not in result.stderr and "unexpected error" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(PROGRESS_PREFIX)]
