"""Parse flags declared as ``OptionSpec`` data (driver flags and shared create flags)."""

from __future__ import annotations

from typing import Any

from provision.driver import OptionSpec

from provision.errors import UsageError


def parse(argv: list[str], specs: tuple[OptionSpec, ...], short: dict[str, str] | None = None
          ) -> tuple[dict[str, Any], list[str]]:
    """Return the values given (by option key) and the positional arguments.

    ``--flag value``, ``--flag=value``; booleans take no value (``--flag=false`` works too); ``multiple``
    flags may repeat. Only flags that were given appear in the result, so env vars and defaults apply later.
    """
    by_flag = {spec.flag: spec for spec in specs}
    short = short or {}
    values: dict[str, Any] = {}
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
        if not arg.startswith("--") or arg == "--":
            if arg.startswith("-") and len(arg) > 1:
                raise UsageError(f"No such option: {arg}")
            positional.append(arg)
            continue
        name, has_value, inline = arg[2:].partition("=")
        spec = by_flag.get(name)
        if spec is None:
            raise UsageError(f"No such option: --{name}")
        if spec.type is bool and not has_value:
            value: Any = True
        elif has_value:
            value = inline
        else:
            if i >= len(argv):
                raise UsageError(f"Option --{name} requires a value")
            value = argv[i]
            i += 1
        if spec.multiple:
            values.setdefault(spec.key, []).append(value)
        else:
            values[spec.key] = value
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
