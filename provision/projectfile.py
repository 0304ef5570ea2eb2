"""Read a project file (``provision.yml``): YAML with line numbers, ``${VAR}`` as compose has it, checked
against the JSON Schema shipped in the package and against each driver's own flags.

Every error names the file, the line and the key (``provision.yml:7: machines.web.count: ...``), and the
result is plain data (``ProjectSpec``) that knows nothing of the store.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .errors import ProvisionError, UsageError

FILE_NAMES = ("provision.yml", "provision.yaml")
ENV_FILE = ".env"
SCHEMA_RESOURCE = "schemas/provision.schema.json"
MAX_FILE_BYTES = 1 << 20  # a fleet description, not a data set: refuse anything larger before parsing it
ROLES = ("manager", "worker")


class ProjectFileError(UsageError):
    """A project file that cannot be used; the message starts with ``FILE:LINE: KEY:``."""


@dataclass(frozen=True)
class GroupSpec:
    name: str
    driver: str
    count: int
    role: str | None  # "manager", "worker", or None: outside the swarm
    # Create flags by key (``amazonec2_region``, ``engine_opt``), converted to their declared types.
    options: dict[str, Any] = field(default_factory=dict)

    def digest(self) -> str:
        """What a machine of this group was made from: a change here is drift."""
        canonical = json.dumps({"driver": self.driver, "role": self.role, "options": self.options},
                               sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StackSpec:
    name: str
    compose_file: Path

    def digest(self) -> str:
        return hashlib.sha256(self.compose_file.read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class ProjectSpec:
    name: str
    path: Path  # the project file
    groups: tuple[GroupSpec, ...]
    stacks: tuple[StackSpec, ...] = ()
    advertise: str | None = None

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def swarm(self) -> bool:
        return any(group.role for group in self.groups)


# -- finding the file ---------------------------------------------------------------------------------
def find(directory: Path, explicit: str | None = None) -> Path:
    if explicit:
        path = Path(explicit)
        path = path if path.is_absolute() else directory / path
        if not path.is_file():
            raise UsageError(f"Error: no project file at {explicit}")
        return path
    for name in FILE_NAMES:
        if (directory / name).is_file():
            return directory / name
    raise UsageError(f"Error: no {' or '.join(FILE_NAMES)} in {directory} (or name one with -f FILE)")


def default_project_name(directory: Path) -> str:
    """The directory's name as compose makes it a project name: lower case, other characters dropped."""
    name = re.sub(r"[^a-z0-9-]", "", directory.resolve().name.lower()).lstrip("-")
    return name[:40] or "default"


# -- YAML with line numbers ---------------------------------------------------------------------------
Lines = dict[tuple[str | int, ...], int]


def _plain(node: Any, where: tuple[str | int, ...], lines: Lines, source: str, loader: Any) -> Any:
    """The Python value of a composed YAML node, noting the line of every key and item on the way."""
    import yaml

    lines[where] = node.start_mark.line + 1
    standard = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}
    if type(node) in standard and node.tag != standard[type(node)]:
        raise ProjectFileError(f"{source}:{node.start_mark.line + 1}: {_dotted(where)}: the tag {node.tag} is not "
                               "allowed")
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ProjectFileError(f"{source}:{key_node.start_mark.line + 1}: {_dotted(where)}: keys must be text")
            key = str(loader.construct_scalar(key_node))
            if key in result:
                raise ProjectFileError(f"{source}:{key_node.start_mark.line + 1}: {_dotted((*where, key))}: "
                                       "the key is given twice")
            result[key] = _plain(value_node, (*where, key), lines, source, loader)
            lines[(*where, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, (*where, i), lines, source, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml(path: Path) -> tuple[Any, Lines]:
    import yaml

    source = path.name
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ProjectFileError(f"{source}:1: the file is {size} bytes; a project file is at most {MAX_FILE_BYTES}")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ProjectFileError(f"{source}:1: the file is not UTF-8 text") from None
    except OSError as exc:
        raise ProjectFileError(f"{source}: cannot be read: {exc.strerror or exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ProjectFileError(f"{source}:{line}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ProjectFileError(f"{source}:1: not valid YAML: {exc}") from None
    if node is None:
        raise ProjectFileError(f"{source}:1: the file is empty")
    lines: Lines = {}
    try:
        # The safe loader's constructor turns scalars into values (ints, booleans) exactly as safe_load would.
        return _plain(node, (), lines, source, yaml.SafeLoader("")), lines
    except yaml.YAMLError as exc:
        raise ProjectFileError(f"{source}:1: not valid YAML: {exc}") from None


def _dotted(where: tuple[str | int, ...]) -> str:
    text = ""
    for part in where:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top)"


def _line(lines: Lines, where: tuple[str | int, ...]) -> int:
    while where and where not in lines:
        where = where[:-1]
    return lines.get(where, 1)


def _error(source: str, lines: Lines, where: tuple[str | int, ...], message: str) -> ProjectFileError:
    return ProjectFileError(f"{source}:{_line(lines, where)}: {_dotted(where)}: {message}")


# -- ${VAR} as compose has it -------------------------------------------------------------------------
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.S)


class InterpolationError(Exception):
    pass


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``,
    ``${VAR:+alternative}``, ``${VAR+alternative}`` (defaults may hold references themselves) and ``$$``
    for a dollar sign, as compose reads them."""
    out: list[str] = []
    i = 0
    while i < len(text):
        dollar = text.find("$", i)
        if dollar < 0:
            out.append(text[i:])
            break
        out.append(text[i:dollar])
        rest = text[dollar + 1:]
        if rest.startswith("$"):
            out.append("$")
            i = dollar + 2
        elif rest.startswith("{"):
            end = _closing_brace(text, dollar + 2)
            out.append(_braced(text[dollar + 2:end], environ))
            i = end + 1
        elif named := _NAME.match(rest):
            out.append(environ.get(named.group(0), ""))
            i = dollar + 1 + named.end()
        else:
            raise InterpolationError("a lone $ (write $$ for a dollar sign)")
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth, i = 1, start
    while i < len(text):
        if text.startswith("${", i):
            depth, i = depth + 1, i + 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise InterpolationError(f"invalid interpolation format ${text[start - 1:]} (no closing brace)")


def _braced(inner: str, environ: Mapping[str, str]) -> str:
    parts = _BRACED.match(inner)
    if not parts:
        raise InterpolationError(f"invalid interpolation format ${{{inner}}}")
    name, op, arg = parts.group("name"), parts.group("op"), parts.group("arg") or ""
    value = environ.get(name)
    empty = value is None or (value == "" and op is not None and op.startswith(":"))
    if op is None:
        return value or ""
    if op.endswith("-"):
        return interpolate(arg, environ) if empty else str(value)
    if op.endswith("+"):
        return "" if empty else interpolate(arg, environ)
    if empty:  # ? and :?
        raise InterpolationError(f"required variable {name} is missing a value" + (f": {arg}" if arg else ""))
    return str(value)


def _interpolate_tree(value: Any, environ: Mapping[str, str], where: tuple[str | int, ...], source: str,
                      lines: Lines) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate_tree(v, environ, (*where, k), source, lines) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate_tree(v, environ, (*where, i), source, lines) for i, v in enumerate(value)]
    if isinstance(value, str):
        try:
            return interpolate(value, environ)
        except InterpolationError as exc:
            raise _error(source, lines, where, str(exc)) from None
    return value


def read_env_file(directory: Path) -> dict[str, str]:
    """The project directory's ``.env`` (KEY=VALUE lines, as compose reads them); the shell's variables win."""
    path = directory / ENV_FILE
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    try:
        values = dotenv_values(path, interpolate=True)
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectFileError(f"{ENV_FILE}: cannot be read: {exc}") from None
    return {k: v for k, v in values.items() if v is not None}


# -- schema --------------------------------------------------------------------------------------------
@cache
def schema() -> dict[str, Any]:
    from importlib.resources import files

    return json.loads(files("provision").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8"))


def _check_schema(data: Any, source: str, lines: Lines) -> None:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (_line(lines, tuple(e.absolute_path)), str(e.path)))
    if errors:
        error = errors[0]
        where = tuple(error.absolute_path)
        if "propertyNames" in error.schema_path:  # the bad name is a key: point at its line
            where = (*where, error.instance)
        raise _error(source, lines, where, _schema_message(error))


def _schema_message(error: Any) -> str:
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        return f"unknown key{'s' if len(extra) > 1 else ''} {', '.join(extra)} (known: {', '.join(sorted(allowed))})"
    if "propertyNames" in error.schema_path:
        return f"the name {error.instance!r} is not allowed: use lower-case letters, digits and -"
    if error.validator == "anyOf":
        return "expected text, a number, true/false, or a list of them"
    return error.message


# -- the whole file ------------------------------------------------------------------------------------
def load(path: Path, *, environ: Mapping[str, str], project_name: str | None = None) -> ProjectSpec:
    """The project the file at ``path`` describes, its variables taken from ``environ`` over ``.env``."""
    source = path.name
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise ProjectFileError(f"{source}:1: the file must be a mapping with a machines key")
    variables = {**read_env_file(path.parent), **environ}
    data = _interpolate_tree(data, variables, (), source, lines)
    _check_schema(data, source, lines)
    name = project_name or data.get("name") or default_project_name(path.parent)
    if not re.match(r"^[a-z0-9][a-z0-9-]*$", name) or len(name) > 40:
        raise UsageError(f'Error: project name "{name}" must be lower-case letters, digits and -, at most 40 characters')
    groups = tuple(_group(group, body, source, lines, environ) for group, body in data["machines"].items())
    stacks = tuple(_stack(stack, text, path.parent, source, lines) for stack, text in (data.get("stacks") or {}).items())
    spec = ProjectSpec(name=name, path=path, groups=groups, stacks=stacks,
                       advertise=(data.get("swarm") or {}).get("advertise-addr"))
    if stacks and not any(g.role == "manager" and g.count for g in groups):
        raise _error(source, lines, ("stacks",), "stacks need a swarm: give a machine group swarm: manager")
    if spec.swarm and not any(g.role == "manager" and g.count for g in groups):
        raise _error(source, lines, ("machines",), "a swarm needs at least one machine with swarm: manager")
    return spec


def _group(name: str, body: dict[str, Any], source: str, lines: Lines, environ: Mapping[str, str]) -> GroupSpec:
    from . import registry
    from .createflags import ENGINE_OPTIONS
    from .options import convert, resolve_options

    where = ("machines", name)
    try:
        driver = registry.load(body["driver"])
    except ProvisionError as exc:
        raise _error(source, lines, (*where, "driver"), exc.message) from None
    shared = {spec.key: spec for spec in ENGINE_OPTIONS.values()}
    own = {spec.key: spec for spec in driver.options}
    options: dict[str, Any] = {}
    for flag, raw in (body.get("options") or {}).items():
        key = flag.replace("-", "_")
        spec = own.get(key) or shared.get(key)
        at = (*where, "options", flag)
        if spec is None:
            raise _error(source, lines, at, f'driver "{driver.name}" and `create` have no option --{flag}')
        if isinstance(raw, list) and not spec.multiple:
            raise _error(source, lines, at, "takes one value, not a list")
        try:
            options[key] = convert(spec, [str(v) for v in raw] if isinstance(raw, list)
                                   else (raw if isinstance(raw, bool) else str(raw)), f"--{flag}")
        except ProvisionError as exc:
            raise _error(source, lines, at, exc.message) from None
    try:  # a required flag neither the file nor the environment gives fails here, not at each machine's create
        resolve_options(driver.options, {k: v for k, v in options.items() if k in own}, environ, f'driver "{driver.name}"')
    except ProvisionError as exc:
        raise _error(source, lines, (*where, "options"), exc.message) from None
    return GroupSpec(name=name, driver=driver.name, count=int(body.get("count", 1)), role=body.get("swarm"),
                     options=options)


def _stack(name: str, text: str, directory: Path, source: str, lines: Lines) -> StackSpec:
    path = Path(text)
    path = path if path.is_absolute() else directory / path
    if not path.is_file():
        raise _error(source, lines, ("stacks", name), f"no compose file at {text}")
    return StackSpec(name=name, compose_file=path)


__all__ = ["FILE_NAMES", "GroupSpec", "ProjectFileError", "ProjectSpec", "StackSpec", "default_project_name",
           "find", "interpolate", "load", "schema"]
