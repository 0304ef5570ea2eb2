"""``export`` and ``import``: share a machine with a teammate (``provision.bundle`` does the work)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from provision.errors import ProvisionError, UsageError

from .app import app, machines, out, warn

PASSPHRASE_FILE = typer.Option(None, "--passphrase-file", metavar="FILE",
                               help="Read the passphrase from the first line of FILE ('-' for stdin) "
                                    "instead of prompting")


MAX_PASSPHRASE_LINE = 1024


def _passphrase(path: Path | None, *, confirm: bool) -> bytes:
    if path is not None:
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
    return str(typer.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm)).encode()


@app.command(help="Export a machine for a teammate: an encrypted bundle with the engine URL, the CA "
                  "certificate and a new client certificate issued for it (never your key or the CA key). "
                  "--docker-context writes docker's own context export instead, for `docker context import`; "
                  "that file is NOT encrypted (docker's format), so send it as you would a key. "
                  "--revoke LABEL makes the engine refuse that export's certificate from now on.")
def export(
    ctx: typer.Context,
    name: str = typer.Argument(..., metavar="NAME"),
    output: Path = typer.Option(None, "--output", "-o", metavar="FILE",
                                help="Where to write (default: NAME.provision, or NAME.dockercontext)"),
    label: str = typer.Option(None, "--for", metavar="LABEL",
                              help="Who the new client certificate is for: its subject's CN, and in the "
                                   "machine's record (default: NAME export DATE)"),
    with_ssh: bool = typer.Option(False, "--with-ssh",
                                  help="Also carry the machine's SSH key, endpoint and pinned host key"),
    docker_context: bool = typer.Option(False, "--docker-context",
                                        help="Write docker's context export format (a tar, unencrypted)"),
    revoke: str = typer.Option(None, "--revoke", metavar="LABEL",
                               help="Revoke the export for LABEL (or with that serial): the engine refuses its "
                                    "certificate from now on; dockerd restarts, containers keep running"),
    passphrase_file: Path = PASSPHRASE_FILE,
) -> None:
    from provision.bundle import Sharing

    sharing = Sharing(machines(ctx))
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
        result = sharing.export_docker_context(name, output, label=label)
        done = (f'Wrote {result.path} (unencrypted): import it with `docker context import NAME {result.path}`')
    else:
        result = sharing.export_bundle(name, output, lambda: _passphrase(passphrase_file, confirm=True),
                                       label=label, with_ssh=with_ssh)
        done = (f"Wrote {result.path}{' with SSH access' if result.with_ssh else ''}: "
                f"import it with `provision import {result.path}`")
    for line in result.warnings:
        warn(f"Warning: {line}")
    revoke_hint = (f"; revoke it with `provision export --revoke {shlex.quote(result.label)} {name}`"
                   if result.revocable else "")
    out(f'{done}\nIssued client certificate {result.serial} for "{result.label}", valid until '
        f"{result.not_after}{revoke_hint}\n")


@app.command("import", help="Import a machine a teammate exported: record, certificates and docker context")
def import_command(
    ctx: typer.Context,
    file: Path = typer.Argument(..., metavar="FILE"),
    name: str = typer.Option(None, "--name", metavar="NEW", help="Name the machine here (default: its name "
                                                                   "in the bundle)"),
    passphrase_file: Path = PASSPHRASE_FILE,
) -> None:
    from provision.bundle import Sharing
    from provision.names import context_name

    sharing = Sharing(machines(ctx))
    if not file.is_file():
        raise ProvisionError(f"{file} does not exist or is not a file")
    bundle = sharing.read(file, _passphrase(passphrase_file, confirm=False))
    record = sharing.import_bundle(bundle, name)
    ssh = " with SSH access" if bundle.ssh else ""
    out(f'Imported machine "{record.name}"{ssh} (docker context "{context_name(record.name)}", '
        f'certificate for "{bundle.label}")\n')
