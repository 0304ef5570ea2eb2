"""Resolve options declared as ``OptionSpec`` data, the one place defaults apply: the flag if given, else its
environment variable, else its default. Driver options and the shared create flags both go through here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provision.driver import Driver
from provision.optionspec import OptionSpec

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


def resolve(driver: type[Driver], given: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """``given`` maps option keys to values set on the command line (absent keys were not given)."""
    return resolve_options(driver.options, given, environ, f'driver "{driver.name}"')


def resolve_options(specs: tuple[OptionSpec, ...], given: dict[str, Any], environ: Mapping[str, str],
                    owner: str) -> dict[str, Any]:
    """Every option of ``specs`` by key: the flag if given, else its environment variable, else its default.
    ``owner`` names who declares them in errors (``driver "none"``)."""
    known = {spec.key: spec for spec in specs}
    unknown = sorted(set(given) - set(known))
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise UsageError(f"{owner} has no option {flags}")
    return {key: value(spec, given.get(key), environ, owner) for key, spec in known.items()}


def value(spec: OptionSpec, given: Any, environ: Mapping[str, str], owner: str) -> Any:
    """One option: ``given`` (None or [] when the flag was absent), else the env var, else the default."""
    if given is not None and given != []:
        return convert(spec, given, f"--{spec.flag}")
    if spec.envvar and environ.get(spec.envvar):
        return convert(spec, environ[spec.envvar], f"${spec.envvar}")
    if spec.required:
        hint = f" (or set {spec.envvar})" if spec.envvar else ""
        raise UsageError(f"{owner} needs --{spec.flag}{hint}")
    return spec.default_value()


def public(driver: type[Driver], options: dict[str, Any]) -> dict[str, Any]:
    """The options safe to store: secrets are never written to the record."""
    secret = {spec.key for spec in driver.options if spec.secret}
    return {k: v for k, v in options.items() if k not in secret}
