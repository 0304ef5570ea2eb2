"""The command declarations (``provision.cli.commands``) and what is generated from them: the click
application, its ``--help``, the quick tier's parser and the global options' pre-scan."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
from click.testing import CliRunner

from provision.cli import app, quick
from provision.cli.call import Call, out
from provision.cli.commands import COMMANDS, GLOBAL_OPTIONS, Argument, Command
from provision.cli.flagparse import leading
from provision.optionspec import OptionSpec


def _help(*args: str) -> str:
    result = CliRunner().invoke(app.application(), [*args, "--help"], prog_name="provision")
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.extra != "flags"], ids=lambda c: c.name)
def test_every_declared_option_and_argument_shows_in_help(command: Command) -> None:
    text = _help(*command.name.split())
    assert command.help.split()[0] in text
    for spec in command.options:
        assert f"--{spec.flag}" in text and (spec.short is None or f"{spec.short}, --{spec.flag}" in text)
    for arg in command.arguments:
        assert arg.metavar in text


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_handler_takes_what_its_command_declares(command: Command) -> None:
    parameters = list(inspect.signature(command.load()).parameters)
    names = [spec.key for spec in command.options] + [arg.name for arg in command.arguments]
    assert parameters[0] == "call" and sorted(parameters[1:]) == sorted(names)


def test_the_root_help_lists_every_command_and_global_option() -> None:
    text = _help()
    for command in COMMANDS:
        assert f"  {command.name.split()[0]} " in text
    for spec in GLOBAL_OPTIONS:
        assert f"--{spec.flag}" in text


def test_create_help_comes_from_the_shared_and_the_driver_declarations() -> None:
    create = next(c for c in COMMANDS if c.name == "create")
    result = CliRunner().invoke(app.application(), ["create", "-d", "none", "--help"], prog_name="provision")
    assert result.exit_code == 0
    for spec in create.all_options():
        assert f"--{spec.flag}" in result.output
    assert "-d, --driver VALUE" in result.output and "-n, --count INT" in result.output
    assert "Options of the none driver" in result.output and "--url VALUE" in result.output


@pytest.mark.parametrize("command", list(quick.QUICK.values()), ids=lambda c: c.name)
def test_the_quick_parser_accepts_exactly_the_declared_flags(command: Command) -> None:
    for spec in command.options:
        for form in filter(None, (f"--{spec.flag}", spec.short)):
            given = [form, "7"] if spec.takes_value else [form]
            parsed = quick.parse([command.name, *given], leading([command.name], GLOBAL_OPTIONS))
            assert parsed is not None, form
            value = parsed[2][spec.key]
            assert value == ([spec.type("7")] if spec.multiple else spec.type("7")) if spec.takes_value else value is True
    declared = {f"--{s.flag}" for s in command.options} | {s.short for s in command.options if s.short}
    others = {f"--{s.flag}" for c in COMMANDS for s in c.options} | {"--bogus", "-x", "--help", "-h"}
    for flag in sorted(others - declared):
        assert quick.parse([command.name, flag], leading([command.name], GLOBAL_OPTIONS)) is None, flag


def test_the_quick_parser_leaves_doubts_to_click() -> None:
    def parse(*args: str) -> object:
        return quick.parse(list(args), leading(list(args), GLOBAL_OPTIONS))

    assert parse("env", "--unset=yes") is None  # a value for a flag that takes none
    assert parse("env", "--shell") is None  # a missing value
    assert parse("env", "a", "b") is None  # several names
    assert parse("ls", "--timeout", "soon") is None  # not a number
    assert parse("--debug", "env", "a") is None
    assert parse("--version") is None and parse() is None
    assert parse("ip", "a") is None  # not a quick command
    command, storage, kwargs = parse("-s", "st", "--native-ssh", "env", "-u", "--shell=fish")  # type: ignore[misc]
    assert (command.name, storage) == ("env", "st")
    assert kwargs == {"shell": "fish", "unset": True, "no_proxy": False, "swarm": False, "names": []}


def test_global_options_are_scanned_once_from_their_declarations() -> None:
    assert leading(["-s", "x", "--native-ssh", "-D", "env", "-D"], GLOBAL_OPTIONS) == (
        {"storage_path": "x", "native_ssh": True, "debug": True}, 4)
    assert leading(["--storage-path=y", "ls"], GLOBAL_OPTIONS) == ({"storage_path": "y"}, 1)
    assert leading(["ssh", "dev", "-D", "1080"], GLOBAL_OPTIONS) == ({}, 0)  # ssh's -D is not --debug
    assert leading(["--version"], GLOBAL_OPTIONS) is None and leading(["-s"], GLOBAL_OPTIONS) is None


def test_an_unknown_flag_is_the_full_clis_usage_error() -> None:
    result = subprocess.run([sys.executable, "-m", "provision.cli.main", "env", "--bogus", "dev"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("Usage: provision env [OPTIONS] [NAME]\n")
    assert result.stderr.rstrip().endswith("No such option '--bogus'.")


def greet(call: Call, name: str, loud: bool, times: int) -> None:
    out(f"hello {name}{'!' if loud else ''}\n" * times)


def test_a_declared_command_is_all_it_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    """How a new command is added: a handler and one ``Command`` in the table."""
    hello = Command("hello", "Say hello", f"{__name__}:greet", (
        OptionSpec("loud", "Shout", bool, False, short="-l"),
        OptionSpec("times", "How often", int, 1, metavar="N"),
    ), (Argument("name", "NAME", required=True),))
    monkeypatch.setattr(app, "COMMANDS", (*COMMANDS, hello))
    runner = CliRunner()
    result = runner.invoke(app.application(), ["hello", "-l", "--times", "2", "you"], prog_name="provision")
    assert (result.exit_code, result.output) == (0, "hello you!\nhello you!\n")
    assert "--times N" in runner.invoke(app.application(), ["hello", "--help"]).output
    missing = runner.invoke(app.application(), ["hello"], prog_name="provision")
    assert missing.exit_code == 2 and "Missing argument 'NAME'" in missing.output
