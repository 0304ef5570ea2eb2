"""``export`` and ``import``: share a machine with a teammate (``provision.bundle`` does the work)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from provision.errors import ProvisionError, UsageError

from .call import Call, out, warn

MAX_PASSPHRASE_LINE = 1024


def _passphrase(given: str | None, *, confirm: bool) -> bytes:
    if given is not None:
        path = Path(given)
        try:
            if str(path) == "-":
                raw = sys.stdin.buffer.readline(MAX_PASSPHRASE_LINE + 1)
            else:  # the first line only, bounded: the file may be anything, /dev/zero included
                with path.open("rb") as handle:
                    raw = handle.readline(MAX_PASSPHRASE_LINE + 1)
            text = raw.decode()
        except OSError as exc:
            raise ProvisionError(f"cannot read the passphrase from {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise UsageError(f"the passphrase file {path} is not UTF-8 text") from exc
        if len(raw) > MAX_PASSPHRASE_LINE:
            raise UsageError(f"the first line of the passphrase file {path} is longer than "
                             f"{MAX_PASSPHRASE_LINE} bytes; is it the right file?")
        lines = text.splitlines()
        if not lines or not lines[0]:
            raise UsageError(f"the passphrase file {path} is empty")
        return lines[0].encode()
    if not sys.stdin.isatty():
        raise UsageError("a passphrase is needed: run in a terminal to be asked, or give --passphrase-file")
    import click

    return str(click.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm)).encode()


def _path(given: str | None) -> Path | None:
    return None if given is None else Path(given)


def export(call: Call, name: str, output: str | None, label: str | None, with_ssh: bool, docker_context: bool,
           revoke: str | None, passphrase_file: str | None) -> None:
    from provision.bundle import Sharing

    sharing = Sharing(call.machines())
    if revoke is not None:
        if output is not None or label is not None or with_ssh or docker_context or passphrase_file is not None:
            raise UsageError("--revoke takes only the machine's name: it writes no file")
        revoked = sharing.revoke(name, revoke)
        for line in revoked.warnings:
            warn(f"Warning: {line}")
        out(f'Revoked the export for "{revoked.label}" (serial {revoked.serial}) of {revoked.machine}: its engine '
            f"refuses that certificate now ({revoked.seconds:.1f}s)\n")
        return
    if docker_context:
        if with_ssh or passphrase_file is not None:
            raise UsageError("--docker-context takes neither --with-ssh nor --passphrase-file: "
                             "docker's format is unencrypted and has no SSH access")
        result = sharing.export_docker_context(name, _path(output), label=label)
        done = (f'Wrote {result.path} (unencrypted): import it with `docker context import NAME {result.path}`')
    else:
        result = sharing.export_bundle(name, _path(output), lambda: _passphrase(passphrase_file, confirm=True),
                                       label=label, with_ssh=with_ssh)
        done = (f"Wrote {result.path}{' with SSH access' if result.with_ssh else ''}: "
                f"import it with `provision import {result.path}`")
    for line in result.warnings:
        warn(f"Warning: {line}")
    revoke_hint = (f"; revoke it with `provision export --revoke {shlex.quote(result.label)} {name}`"
                   if result.revocable else "")
    out(f'{done}\nIssued client certificate {result.serial} for "{result.label}", valid until '
        f"{result.not_after}{revoke_hint}\n")


def import_bundle(call: Call, file: str, name: str | None, passphrase_file: str | None) -> None:
    from provision.bundle import Sharing
    from provision.names import context_name

    sharing = Sharing(call.machines())
    if not Path(file).is_file():
        raise ProvisionError(f"{file} does not exist or is not a file")
    bundle = sharing.read(Path(file), _passphrase(passphrase_file, confirm=False))
    record = sharing.import_bundle(bundle, name)
    ssh = " with SSH access" if bundle.ssh else ""
    out(f'Imported machine "{record.name}"{ssh} (docker context "{context_name(record.name)}", '
        f'certificate for "{bundle.label}")\n')
