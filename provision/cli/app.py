"""The click application, built from the command declarations (``provision.cli.commands``).

Each declared ``OptionSpec`` becomes a click option and each ``Argument`` a click argument; the command's
callback hands the parsed values to its handler with a ``Call``. Click owns ``--help``, usage errors and
their exit code 2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from provision.optionspec import OptionSpec

from .call import Call
from .commands import COMMANDS, GLOBAL_OPTIONS, GROUPS, PROGRAM_HELP, VERSION_OPTION, Argument, Command

CONTEXT = {"help_option_names": ["-h", "--help"]}
CLICK_TYPES: dict[type, Any] = {str: click.STRING, int: click.INT, float: click.FLOAT}
# How a command declared with ``extra`` takes the arguments it does not declare.
EXTRA_SETTINGS = {
    "after": {"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False},
    "flags": {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
}


class _InOrder(click.Group):
    """Lists its commands in the order they are declared, not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


def option(spec: OptionSpec) -> click.Option:
    decls = [f"--{spec.flag}", *([spec.short] if spec.short else []), spec.key]
    if not spec.takes_value:
        return click.Option(decls, is_flag=True, default=False, help=spec.help)
    shown = spec.default not in (None, [], (), False)
    return click.Option(decls, type=click.Choice(spec.choices) if spec.choices else CLICK_TYPES[spec.type],
                        default=spec.default_value(), multiple=spec.multiple, required=spec.required,
                        metavar=spec.metavar, envvar=spec.envvar, show_envvar=spec.envvar is not None,
                        show_default=shown, help=spec.help)


def argument(arg: Argument) -> click.Argument:
    return click.Argument([arg.name], nargs=-1 if arg.many else 1, required=arg.required, metavar=arg.metavar)


def _callback(command: Command) -> Callable[..., None]:
    def run(**values: Any) -> None:
        ctx = click.get_current_context()
        root: Call = ctx.find_root().obj
        call = Call(root.storage_path, root.debug, ctx.args, command.all_options() if command.extra == "flags" else ())
        ctx.call_on_close(call.close)
        command.load()(call, **{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()})

    return run


def build(command: Command) -> click.Command:
    extra = EXTRA_SETTINGS.get(command.extra or "", {})
    return click.Command(command.name.split()[-1], help=command.help, callback=_callback(command),
                         params=[*map(argument, command.arguments), *map(option, command.options)],
                         context_settings=extra, add_help_option=command.extra != "flags")


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        from provision import __version__

        click.echo(f"provision version {__version__}")
        ctx.exit()


def _root(**values: Any) -> None:
    click.get_current_context().obj = Call(values["storage_path"], values["debug"])


def application() -> click.Group:
    version = click.Option(list(filter(None, (f"--{VERSION_OPTION.flag}", VERSION_OPTION.short))), is_flag=True,
                           expose_value=False, is_eager=True, callback=_print_version, help=VERSION_OPTION.help)
    app = _InOrder("provision", help=PROGRAM_HELP, no_args_is_help=True, context_settings=CONTEXT,
                   params=[*map(option, GLOBAL_OPTIONS), version], callback=_root)
    groups: dict[str, click.Group] = {}
    for command in COMMANDS:
        *group, _ = command.name.split()
        parent = app
        if group:
            if group[0] not in groups:
                groups[group[0]] = _InOrder(group[0], help=GROUPS[group[0]], no_args_is_help=True)
                app.add_command(groups[group[0]])
            parent = groups[group[0]]
        parent.add_command(build(command))
    return app
