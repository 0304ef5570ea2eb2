"""`eval "$(provision env NAME)"` runs nothing, whatever a flag, a record, a store path or the environment holds.

Every shell that exists on this machine evaluates the output the way the README tells users to, in a
directory where any command that slipped through would leave a file; the variables must come back
holding exactly the values provision meant.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clirun import run, shell_env
from provision import addresses
from provision.shellenv import UnsafeValue, quote

NAMES = ("DOCKER_TLS_VERIFY", "DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_MACHINE_NAME", "NO_PROXY")
# Every character that means something to one of the shells, in a directory name a user could have.
HOSTILE = "st $(touch P1) `touch P2` \"q\" 'a' !x \\b ; & | %PATH% ‘u’ {a,b} * $HOME ~ (x) #c"
# tcsh's `eval \`...\`` expands braces, globs and ~ in the words of the output before eval reads any quote:
# nothing runs, but such characters come back changed, so tcsh's round trip is checked without them.
TCSH_EXPANDS = ("{a,b} ", "* ", "~ ")


def _without_tcsh_expansions(text: str) -> str:
    for token in TCSH_EXPANDS:
        text = text.replace(token, "")
    return text
URL = "tcp://127.0.0.1:23761"


def _printer(directory: Path) -> str:
    """A command line, with no character any shell treats specially, that prints the variables as JSON."""
    script = directory / "printvars.py"
    script.write_text(f"import json, os\nprint(json.dumps({{k: os.environ.get(k) for k in {list(NAMES)!r}}}))\n")
    return f"{sys.executable} {script}"


def _evaluate(shell: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Evaluate ``provision env`` in ``shell`` exactly as the README and the usage hint say."""
    printer = _printer(cwd.parent)
    if shell in ("bash", "zsh", "sh"):
        argv = [shell, "-c", f'eval "$(provision env --shell {shell} dev)" && {printer}']
    elif shell == "fish":
        argv = ["fish", "-c", f"provision env --shell fish dev | source; and {printer}"]
    elif shell == "tcsh":
        argv = ["tcsh", "-f", "-c", f"eval `provision env --shell tcsh dev` && {printer}"]
    else:
        lisp = ('(progn (with-temp-buffer (shell-command "provision env --shell emacs dev" (current-buffer)) '
                '(eval-buffer)) (call-process "%s" nil t nil "%s") (princ (buffer-string)))'
                % tuple(printer.split(" ")))
        argv = ["emacs", "--batch", "-Q", "--eval", f"(with-temp-buffer {lisp})"]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


SHELLS = [s for s in ("bash", "zsh", "sh", "fish", "tcsh", "emacs") if shutil.which(s)]


@pytest.mark.parametrize("shell, store_name", [(shell, HOSTILE) for shell in SHELLS] + (
    [("tcsh", _without_tcsh_expansions(HOSTILE))] if "tcsh" in SHELLS else []))
def test_eval_of_env_runs_nothing_and_keeps_every_value(shell: str, store_name: str, tmp_path: Path) -> None:
    store = tmp_path / store_name
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = shell_env(PROVISION_STORAGE_PATH=str(store))
    run("create", "-d", "none", "--url", URL, "dev", env=env, check=True)
    result = _evaluate(shell, workdir, env)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in workdir.iterdir()) == []  # no `touch` ran
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    if shell == "tcsh" and store_name != _without_tcsh_expansions(store_name):
        return
    assert seen["DOCKER_HOST"] == URL
    assert seen["DOCKER_CERT_PATH"] == str(store / "machines" / "dev")
    assert seen["DOCKER_MACHINE_NAME"] == "dev" and seen["DOCKER_TLS_VERIFY"] == "1"


@pytest.mark.parametrize("shell", [s for s in SHELLS if s != "emacs"])
def test_no_proxy_from_the_environment_is_quoted_too(shell: str, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = shell_env(NO_PROXY="example.com,$(touch P3),`touch P4`,'q',\"d\",!x")
    env.pop("no_proxy", None)
    run("create", "-d", "none", "--url", URL, "dev", env=env, check=True)
    printer = _printer(tmp_path)
    command = f"provision env --no-proxy --shell {shell} dev"
    argv = {"fish": ["fish", "-c", f"{command} | source; and {printer}"],
            "tcsh": ["tcsh", "-f", "-c", f"eval `{command}` && {printer}"]}.get(
        shell, [shell, "-c", f'eval "$({command})" && {printer}'])
    result = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert list(workdir.iterdir()) == []
    assert json.loads(result.stdout.strip().splitlines()[-1])["NO_PROXY"] == (
        "example.com,$(touch P3),`touch P4`,'q',\"d\",!x,127.0.0.1")


@pytest.mark.parametrize("url", [
    "tcp://$(touch pwned):2376", "tcp://`touch pwned`:2376", 'tcp://a";touch pwned;":2376',
    "tcp://host:2376/$(touch pwned)", "tcp://user@host:2376", "tcp://host:23x6", "tcp://host:99999",
    "unix:///var/run/docker.sock", "tcp://[::1:2376", "tcp://-oProxyCommand=x:2376", "tcp://host:2376\n",
])
def test_create_refuses_a_url_that_is_not_an_engine_address(url: str, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run("create", "-d", "none", "--url", url, "x", cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "--url" in result.stderr
    assert not (Path(os.environ["PROVISION_STORAGE_PATH"]) / "machines" / "x").exists()
    assert list(workdir.iterdir()) == []


def test_a_record_with_a_hostile_url_is_broken_not_printed(tmp_path: Path) -> None:
    tmp_path = tmp_path / "work"
    tmp_path.mkdir()
    run("create", "-d", "none", "--url", URL, "dev", check=True)
    record_path = Path(os.environ["PROVISION_STORAGE_PATH"]) / "machines" / "dev" / "machine.json"
    record = json.loads(record_path.read_text())
    record["url"] = 'tcp://$(touch pwned)";touch pwned;":2376'
    record["driver_data"]["url"] = record["url"]
    record_path.write_text(json.dumps(record))
    before = record_path.read_bytes()
    for shell in ("bash", "fish", "tcsh", "emacs", "powershell", "cmd"):
        result = run("env", "--shell", shell, "dev", cwd=tmp_path)
        assert result.returncode == 1 and result.stdout == "", (shell, result.stdout)
        assert len(result.stderr.strip().splitlines()) == 1 and "engine URL" in result.stderr, result.stderr
    for command in (["url", "dev"], ["config", "dev"]):
        result = run(*command, cwd=tmp_path)
        assert result.returncode == 1 and "touch" not in result.stdout
    listing = run("ls", cwd=tmp_path)
    assert listing.returncode == 0
    assert [line.split()[:3] for line in listing.stdout.splitlines()[1:]] == [["dev", "-", "Error"]]
    assert record_path.read_bytes() == before  # reading never rewrites it
    assert list(tmp_path.iterdir()) == []
    assert run("rm", "-f", "dev").returncode == 0


def test_cmd_refuses_what_it_cannot_carry_and_powershell_quotes_it(tmp_path: Path) -> None:
    store = tmp_path / "a&b %PATH% 'q'"
    env = {"PROVISION_STORAGE_PATH": str(store)}
    run("create", "-d", "none", "--url", URL, "dev", env=env, check=True)
    refused = run("env", "--shell", "cmd", "dev", env=env)
    assert refused.returncode == 1 and refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1 and "cmd.exe" in refused.stderr
    shown = run("env", "--shell", "powershell", "dev", env=env, check=True).stdout
    expected = "'" + str(store / "machines" / "dev").replace("'", "''") + "'"
    assert f"$Env:DOCKER_CERT_PATH = {expected}\n" in shown
    assert f'$Env:DOCKER_HOST = "{URL}"\n' in shown  # a plain value keeps Docker Machine's form


def test_quote_rules() -> None:
    assert quote("posix", "V", "/plain/path") == '"/plain/path"'
    assert quote("posix", "V", "it's $(x)") == "'it'\\''s $(x)'"
    assert quote("fish", "V", "a'b\\c$(x)") == "'a\\'b\\\\c$(x)'"
    assert quote("tcsh", "V", "a!b'c") == "'a\\!b'\\''c'"
    assert quote("powershell", "V", "a'b\u2019c$x") == "'a''b\u2019\u2019c$x'"
    assert quote("emacs", "V", 'a"b\\c') == '"a\\"b\\\\c"'
    assert quote("cmd", "V", "C:/Users/x y") == "C:/Users/x y"
    for shell in ("posix", "fish", "tcsh", "powershell", "emacs", "cmd"):
        with pytest.raises(UnsafeValue):
            quote(shell, "V", "a\nb")


@pytest.mark.parametrize("url, expected", [
    ("tcp://192.0.2.1:2376", ("tcp", None, "192.0.2.1", 2376)),
    ("tcp://docker.example.com:1/", ("tcp", None, "docker.example.com", 1)),
    ("tcp://[2001:db8::1]:2376", ("tcp", None, "2001:db8::1", 2376)),
    ("ssh://provision@127.0.0.1:2222", ("ssh", "provision", "127.0.0.1", 2222)),
    ("ssh://host", ("ssh", None, "host", 22)),
])
def test_valid_engine_urls(url: str, expected: tuple[object, ...]) -> None:
    assert addresses.split_url(url) == expected


@pytest.mark.parametrize("url", [
    "tcp://host", "tcp://ho_st:1", "tcp://host:0", "tcp://host:65536", "tcp://:2376", "tcp://a..b:1",
    "tcp://[::1]x:1", "tcp://::1:2376", "tcp://[1.2.3.4]:1", "http://host:1", "ssh://-oProxy=x@host:22",
    "ssh://u$(x)@host:22", "tcp://host:2376/path", "tcp://host:2376?q", "tcp://h\u00e9st:1", "tcp://host:+22",
    "tcp://host:٢٣", "tcp://" + "a" * 64 + ":1",
])
def test_invalid_engine_urls(url: str) -> None:
    with pytest.raises(addresses.BadAddress):
        addresses.split_url(url)


def _crafted_bundle(tmp_path: Path, **changes: object) -> Path:
    """A bundle whose certificates are sound (a CA of its own) and whose other fields say what the test wants."""
    from dataclasses import replace

    from provision.bundle import Bundle, SSHAccess, encrypt
    from provision.tls import CertificateAuthority

    ca = CertificateAuthority(tmp_path / "their-ca")
    ca.ensure()
    issued = ca.issue_client_for("mallory")
    bundle = Bundle(machine="shared", url=URL, label="mallory", exported_at="2026-12-01T00:00:00+00:00",
                    serial=str(issued.serial), ca=ca.ca_pem().decode(), cert=issued.cert_pem.decode(),
                    key=issued.key_pem.decode(),
                    ssh=SSHAccess("127.0.0.1", 22, "provision", "KEY", "ssh-ed25519 AAAAC3Nz"))
    path = tmp_path / "shared.provision"
    path.write_bytes(encrypt(json.dumps(replace(bundle, **changes).to_dict()).encode(), b"a passphrase"))
    return path


@pytest.mark.parametrize("changes", [
    {"url": "tcp://$(touch pwned):2376"}, {"url": 'tcp://a";touch pwned;":2376'}, {"url": "ssh://x@host:22"},
    {"url": "tcp://host:2376/`touch pwned`"},
], ids=["subshell", "quotes", "ssh-scheme", "path"])
def test_import_refuses_a_bundle_whose_url_is_not_an_engine_address(changes: dict[str, str],
                                                                    tmp_path: Path) -> None:
    bundle = _crafted_bundle(tmp_path, **changes)
    (tmp_path / "pass").write_text("a passphrase\n")
    store = Path(os.environ["PROVISION_STORAGE_PATH"])
    result = run("import", str(bundle), "--passphrase-file", str(tmp_path / "pass"), cwd=tmp_path)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "engine URL" in result.stderr
    assert not (store / "machines").exists() or not list((store / "machines").iterdir())
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("field, value", [("host", "-oProxyCommand=touch pwned"), ("user", "-oProxyCommand=x"),
                                          ("user", "a;b"), ("port", 0)])
def test_import_refuses_ssh_access_that_could_reach_ssh_as_an_option(field: str, value: object,
                                                                     tmp_path: Path) -> None:
    from dataclasses import replace

    from provision.bundle import SSHAccess

    access = replace(SSHAccess("127.0.0.1", 22, "provision", "KEY", "ssh-ed25519 AAAAC3Nz"), **{field: value})
    bundle = _crafted_bundle(tmp_path, ssh=access)
    (tmp_path / "pass").write_text("a passphrase\n")
    result = run("import", str(bundle), "--passphrase-file", str(tmp_path / "pass"))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "SSH access" in result.stderr


def test_a_docker_context_of_that_name_is_refused_before_the_driver_runs(tmp_path: Path) -> None:
    """A context the user made is found before anything exists, not after a cloud instance was paid for."""
    config = Path(os.environ["DOCKER_CONFIG"]) if os.environ.get("DOCKER_CONFIG") else Path.home() / ".docker"
    from provision import filerules

    meta = Path(filerules.context_meta_path(str(config), "theirs"))
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"Name": "theirs", "Metadata": {}, "Endpoints": {"docker": {"Host": URL}}}))
    result = run("--debug", "create", "-d", "none", "--url", URL, "theirs")
    assert result.returncode == 1 and 'docker context "theirs" already exists' in result.stderr
    assert "Creating machine" not in result.stderr and "certificate authority" not in result.stderr
    assert not (Path(os.environ["PROVISION_STORAGE_PATH"]) / "machines" / "theirs").exists()
