"""Parse flags: ``split`` for any flag table, ``parse`` for flags declared as ``OptionSpec`` data.

``split`` is also the start-up path's parser (``fast.py``), so this module imports nothing heavy.
"""

from __future__ import annotations

from provision.errors import UsageError

TYPE_CHECKING = False  # typing itself costs start-up time
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from provision.driver import OptionSpec


def split(argv: list[str], takes_value: Mapping[str, bool], short: Mapping[str, str] | None = None
          ) -> tuple[list[tuple[str, str | None]], list[str]]:
    """Return the flags given, in order, as (name without dashes, value or None), and the positional arguments.

    ``--flag value``, ``--flag=value``; a flag that takes no value gets None unless one is given inline
    (``--flag=false``). ``short`` maps ``-x`` to a long name. ``--`` ends the flags.
    """
    short = short or {}
    given: list[tuple[str, str | None]] = []
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positional.extend(argv[i:])
            break
        if arg in short:
            arg = "--" + short[arg]
        if not arg.startswith("--"):
            if arg.startswith("-") and len(arg) > 1:
                raise UsageError(f"No such option: {arg}")
            positional.append(arg)
            continue
        name, has_value, inline = arg[2:].partition("=")
        if name not in takes_value:
            raise UsageError(f"No such option: --{name}")
        value: str | None = inline if has_value else None
        if takes_value[name] and not has_value:
            if i >= len(argv):
                raise UsageError(f"Option --{name} requires a value")
            value = argv[i]
            i += 1
        given.append((name, value))
    return given, positional


def parse(argv: list[str], specs: tuple[OptionSpec, ...], short: dict[str, str] | None = None
          ) -> tuple[dict[str, Any], list[str]]:
    """Return the values given (by option key) and the positional arguments.

    Booleans take no value (``--flag=false`` works too); ``multiple`` flags may repeat. Only flags that
    were given appear in the result, so env vars and defaults apply later.
    """
    by_flag = {spec.flag: spec for spec in specs}
    given, positional = split(argv, {flag: spec.type is not bool for flag, spec in by_flag.items()}, short)
    values: dict[str, Any] = {}
    for flag, value in given:
        spec = by_flag[flag]
        if spec.multiple:
            values.setdefault(spec.key, []).append(True if value is None else value)
        else:
            values[spec.key] = True if value is None else value
    return values, positional


def describe(specs: tuple[OptionSpec, ...], short: dict[str, str] | None = None) -> str:
    reverse = {v: k for k, v in (short or {}).items()}
    rows = []
    for spec in specs:
        flag = f"--{spec.flag}"
        if spec.flag in reverse:
            flag = f"{reverse[spec.flag]}, {flag}"
        if spec.type is not bool:
            flag += " " + ("INT" if spec.type is int else "VALUE")
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
