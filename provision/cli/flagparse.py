"""The one parser of flags declared as ``OptionSpec`` data, for the quick tier and for ``create``.

``parse`` reads a command's flags, ``leading`` the global options before the command, ``describe``
writes their help rows. The quick tier imports this on every run, so it imports nothing heavy.
"""

from __future__ import annotations

from provision.errors import UsageError

TYPE_CHECKING = False  # typing itself costs start-up time
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from provision.optionspec import OptionSpec


def _index(specs: Sequence[OptionSpec]) -> dict[str, OptionSpec]:
    by_name = {f"--{spec.flag}": spec for spec in specs}
    by_name.update({spec.short: spec for spec in specs if spec.short})
    return by_name


def _flag(argv: list[str], i: int, by_name: dict[str, OptionSpec]) -> tuple[OptionSpec | None, str | None, int]:
    """The flag at ``argv[i]`` (None when undeclared), its value, and the index after it."""
    arg = argv[i]
    name, has_value, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
    spec = by_name.get(name)
    if spec is None:
        return None, name, i + 1
    if spec.takes_value and not has_value:
        if i + 1 >= len(argv):
            raise UsageError(f"Option {name} requires a value")
        return spec, argv[i + 1], i + 2
    return spec, inline if has_value else None, i + 1


def split(argv: list[str], specs: Sequence[OptionSpec], *, skip_unknown: bool = False
          ) -> tuple[list[tuple[OptionSpec, str | None]], list[str]]:
    """Return the flags given, in order, with their value (None for a flag without one), and the positional
    arguments.

    ``--flag value``, ``--flag=value``, ``-x value``; a flag that takes no value gets None unless one is
    given inline (``--flag=false``). ``--`` ends the flags. ``skip_unknown`` passes over flags no spec
    declares instead of refusing them (``create`` finds its driver before it knows the driver's flags).
    """
    by_name = _index(specs)
    given: list[tuple[OptionSpec, str | None]] = []
    positional: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] == "--":
            positional.extend(argv[i + 1:])
            break
        if not argv[i].startswith("-") or argv[i] == "-":
            positional.append(argv[i])
            i += 1
            continue
        spec, value, i = _flag(argv, i, by_name)
        if spec is not None:
            given.append((spec, value))
        elif not skip_unknown:
            raise UsageError(f"No such option: {value}")
    return given, positional


def parse(argv: list[str], specs: Sequence[OptionSpec], *, skip_unknown: bool = False
          ) -> tuple[dict[str, Any], list[str]]:
    """Return the values given (by option key) and the positional arguments.

    Booleans take no value (``--flag=false`` works too); ``multiple`` flags may repeat. Only flags that
    were given appear in the result, so env vars and defaults apply later.
    """
    given, positional = split(argv, specs, skip_unknown=skip_unknown)
    values: dict[str, Any] = {}
    for spec, value in given:
        if spec.multiple:
            values.setdefault(spec.key, []).append(True if value is None else value)
        else:
            values[spec.key] = True if value is None else value
    return values, positional


def leading(argv: list[str], specs: Sequence[OptionSpec]) -> tuple[dict[str, Any], int] | None:
    """The global options before the command (values by key, as ``parse`` gives them) and the command's
    index in ``argv``. None at anything else before the command (``--help``, ``--version``, ``--debug=1``,
    a missing value): those are the full CLI's to answer."""
    by_name = _index(specs)
    values: dict[str, Any] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        try:
            spec, value, i = _flag(argv, i, by_name)
        except UsageError:
            return None
        if spec is None or (value is not None and not spec.takes_value):
            return None
        values[spec.key] = True if value is None else value
    return values, i


def describe(specs: Sequence[OptionSpec]) -> str:
    rows = []
    for spec in specs:
        flag = f"{spec.short}, --{spec.flag}" if spec.short else f"--{spec.flag}"
        if spec.takes_value:
            flag += " " + (spec.metavar or ("INT" if spec.type is int else "VALUE"))
        extras = []
        if spec.required:
            extras.append("required")
        if spec.envvar:
            extras.append(f"env: {spec.envvar}")
        if spec.default not in (None, [], (), False):
            default = ",".join(spec.default) if isinstance(spec.default, (list, tuple)) else spec.default
            extras.append(f"default: {default}")
        if spec.multiple:
            extras.append("repeatable")
        if spec.choices:
            extras.append("one of: " + ", ".join(spec.choices))
        help_text = spec.help + (f" [{'; '.join(extras)}]" if extras else "")
        rows.append((flag, help_text))
    width = max((len(f) for f, _ in rows), default=0)
    return "\n".join(f"  {flag.ljust(width)}  {text}" for flag, text in rows) + "\n"
