"""`env` output, byte for byte against what Docker Machine printed (program name aside)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clirun import run

URL = "tcp://127.0.0.1:23761"


@pytest.fixture
def cert_path() -> str:
    run("create", "-d", "none", "--url", URL, "dev", check=True)
    return str(Path(os.environ["PROVISION_STORAGE_PATH"]) / "machines" / "dev")


EXPECTED = {
    "bash": ('export DOCKER_TLS_VERIFY="1"\nexport DOCKER_HOST="{url}"\nexport DOCKER_CERT_PATH="{p}"\n'
             'export DOCKER_MACHINE_NAME="dev"\n# Run this command to configure your shell: \n'
             "# eval $(provision env --shell bash dev)\n"),
    "fish": ('set -gx DOCKER_TLS_VERIFY "1";\nset -gx DOCKER_HOST "{url}";\nset -gx DOCKER_CERT_PATH "{p}";\n'
             'set -gx DOCKER_MACHINE_NAME "dev";\n# Run this command to configure your shell: \n'
             "# eval (provision env --shell fish dev)\n"),
    "powershell": ('$Env:DOCKER_TLS_VERIFY = "1"\n$Env:DOCKER_HOST = "{url}"\n$Env:DOCKER_CERT_PATH = "{p}"\n'
                   '$Env:DOCKER_MACHINE_NAME = "dev"\n# Run this command to configure your shell: \n'
                   "# & provision env --shell powershell dev | Invoke-Expression\n"),
    "cmd": ("SET DOCKER_TLS_VERIFY=1\nSET DOCKER_HOST={url}\nSET DOCKER_CERT_PATH={p}\nSET DOCKER_MACHINE_NAME=dev\n"
            "REM Run this command to configure your shell: \n"
            "REM \t@FOR /f \"tokens=*\" %i IN ('provision env --shell cmd dev') DO @%i\n"),
    "tcsh": ('setenv DOCKER_TLS_VERIFY "1";\nsetenv DOCKER_HOST "{url}";\nsetenv DOCKER_CERT_PATH "{p}";\n'
             'setenv DOCKER_MACHINE_NAME "dev";\n: Run this command to configure your shell: \n'
             ": eval `provision env --shell tcsh dev`\n"),  # Docker Machine's: tcsh has no $(...)
    "emacs": ('(setenv "DOCKER_TLS_VERIFY" "1")\n(setenv "DOCKER_HOST" "{url}")\n(setenv "DOCKER_CERT_PATH" "{p}")\n'
              '(setenv "DOCKER_MACHINE_NAME" "dev")\n;; Run this command to configure your shell: \n'
              ';; (with-temp-buffer (shell-command "provision env --shell emacs dev" (current-buffer)) '
              "(eval-buffer))\n"),
}

UNSET = {
    "bash": "unset DOCKER_TLS_VERIFY\nunset DOCKER_HOST\nunset DOCKER_CERT_PATH\nunset DOCKER_MACHINE_NAME\n",
    "fish": "set -e DOCKER_TLS_VERIFY;\nset -e DOCKER_HOST;\nset -e DOCKER_CERT_PATH;\nset -e DOCKER_MACHINE_NAME;\n",
    "powershell": ("Remove-Item Env:\\\\DOCKER_TLS_VERIFY\nRemove-Item Env:\\\\DOCKER_HOST\n"
                   "Remove-Item Env:\\\\DOCKER_CERT_PATH\nRemove-Item Env:\\\\DOCKER_MACHINE_NAME\n"),
    "cmd": "SET DOCKER_TLS_VERIFY=\nSET DOCKER_HOST=\nSET DOCKER_CERT_PATH=\nSET DOCKER_MACHINE_NAME=\n",
    "tcsh": ("unsetenv DOCKER_TLS_VERIFY;\nunsetenv DOCKER_HOST;\nunsetenv DOCKER_CERT_PATH;\n"
             "unsetenv DOCKER_MACHINE_NAME;\n"),
    "emacs": ('(setenv "DOCKER_TLS_VERIFY" nil)\n(setenv "DOCKER_HOST" nil)\n(setenv "DOCKER_CERT_PATH" nil)\n'
              '(setenv "DOCKER_MACHINE_NAME" nil)\n'),
}


@pytest.mark.parametrize("shell", sorted(EXPECTED))
def test_env_set(shell: str, cert_path: str) -> None:
    result = run("env", "--shell", shell, "dev", check=True)
    assert result.stdout == EXPECTED[shell].format(url=URL, p=cert_path)


@pytest.mark.parametrize("shell", sorted(UNSET))
def test_env_unset(shell: str) -> None:
    result = run("env", "--shell", shell, "--unset", check=True)
    assert result.stdout.startswith(UNSET[shell])
    assert "Run this command to configure your shell" in result.stdout


def test_shell_from_environment_and_zsh(cert_path: str) -> None:
    assert run("env", "dev", env={"SHELL": "/usr/bin/fish"}).stdout.startswith("set -gx DOCKER_TLS_VERIFY")
    assert run("env", "dev", env={"SHELL": "/bin/zsh"}).stdout.startswith('export DOCKER_TLS_VERIFY="1"\n')


def test_no_proxy_appends_ip_to_whichever_is_set(cert_path: str) -> None:
    out = run("env", "--shell", "bash", "--no-proxy", "dev", env={"NO_PROXY": "corp.example"}).stdout
    assert 'export NO_PROXY="corp.example,127.0.0.1"\n' in out
    out = run("env", "--shell", "bash", "--no-proxy", "dev", env={"no_proxy": "127.0.0.1,x"}).stdout
    assert 'export no_proxy="127.0.0.1,x"\n' in out
    out = run("env", "--shell", "fish", "--no-proxy", "dev").stdout
    assert 'set -gx NO_PROXY "127.0.0.1";\n' in out  # neither set: NO_PROXY, as Docker Machine wrote it


def test_unknown_shell(cert_path: str) -> None:
    result = run("env", "--shell", "nushell", "dev")
    assert result.returncode == 2
    assert result.stderr.strip().startswith('Unknown shell "nushell"')


def test_default_machine_rule(cert_path: str) -> None:
    result = run("env")
    assert result.returncode == 2 and 'no "default" machine' in result.stderr
    run("create", "-d", "none", "--url", URL, "default", check=True)
    assert 'DOCKER_MACHINE_NAME="default"' in run("env", "--shell", "bash", check=True).stdout
    assert run("url", check=True).stdout == URL + "\n"


@pytest.mark.parametrize("command", ["env", "url", "config", "active"])
def test_quick_tier_matches_the_core_service(command: str, cert_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The quick tier answers from the record, not through the core service; it must say exactly the same."""
    from provision.cli import texts
    from provision.cli.quick import from_record
    from provision.machines import Machines

    run("use", "dev", check=True)
    service = Machines.open()
    expected = {"env": lambda: texts.env_text(service, "dev", "fish", False, True),
                "url": lambda: service.connection(service.get("dev")).url + "\n",
                "config": lambda: texts.config_text(service, "dev"),
                "active": lambda: texts.active_text(service)}[command]()
    given = {"shell": "fish", "no_proxy": True} if command == "env" else {}
    assert from_record(None, command, {**given, "names": [] if command == "active" else ["dev"]}) == 0
    assert capsys.readouterr().out == expected
