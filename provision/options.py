"""Resolve a driver's options: the flag if given, else its environment variable, else its default."""

from __future__ import annotations

import os
from typing import Any

from provision.driver import Driver, OptionSpec

from .errors import UsageError

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off", ""})


def convert(spec: OptionSpec, raw: Any, source: str) -> Any:
    if spec.multiple:
        items = raw if isinstance(raw, (list, tuple)) else [p for p in str(raw).split(",") if p.strip()]
        return [_scalar(spec, item, source) for item in items]
    return _scalar(spec, raw, source)


def _scalar(spec: OptionSpec, raw: Any, source: str) -> Any:
    if spec.type is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in TRUE:
            return True
        if text in FALSE:
            return False
        raise UsageError(f"{source} expects true or false, not {raw!r}")
    if spec.type is int:
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise UsageError(f"{source} expects a whole number, not {raw!r}") from None
    value = str(raw)
    if spec.choices and value not in spec.choices:
        raise UsageError(f"{source} must be one of {', '.join(spec.choices)}, not {value!r}")
    return value


def resolve(driver: type[Driver], given: dict[str, Any], environ: dict[str, str] | os._Environ[str]) -> dict[str, Any]:
    """``given`` maps option keys to values set on the command line (absent keys were not given)."""
    known = {spec.key: spec for spec in driver.options}
    unknown = sorted(set(given) - set(known))
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise UsageError(f'driver "{driver.name}" has no option {flags}')
    resolved: dict[str, Any] = {}
    for key, spec in known.items():
        if key in given and given[key] is not None and given[key] != []:
            resolved[key] = convert(spec, given[key], f"--{spec.flag}")
        elif spec.envvar and environ.get(spec.envvar):
            resolved[key] = convert(spec, environ[spec.envvar], f"${spec.envvar}")
        elif spec.required:
            hint = f" (or set {spec.envvar})" if spec.envvar else ""
            raise UsageError(f'driver "{driver.name}" needs --{spec.flag}{hint}')
        else:
            default = spec.default
            resolved[key] = list(default) if spec.multiple and default is not None else (
                [] if spec.multiple else default)
    return resolved


def public(driver: type[Driver], options: dict[str, Any]) -> dict[str, Any]:
    """The options safe to store: secrets are never written to the record."""
    secret = {spec.key for spec in driver.options if spec.secret}
    return {k: v for k, v in options.items() if k not in secret}
