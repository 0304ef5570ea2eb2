"""Project files: loading, compose-style interpolation and .env, the shipped JSON Schema, and errors that
name the file, the line and the key."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pytest

from clirun import run
from provision import projectfile
from provision.errors import UsageError
from provision.projectfile import ProjectFileError, interpolate, load

GOOD = """\
name: shop
machines:
  manager:
    driver: none
    swarm: manager
    options:
      url: tcp://127.0.0.1:${PORT:-2376}
  worker:
    driver: none
    count: 3
    swarm: worker
    options:
      url: tcp://127.0.0.1:2377
      engine-label: ["tier=${TIER}", zone=a]
      engine-endpoint: tcp
stacks:
  web: ./web.yml
"""


def write(tmp_path: Path, text: str, name: str = "provision.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_file_becomes_groups_with_typed_options(tmp_path: Path) -> None:
    (tmp_path / "web.yml").write_text("services: {}\n")
    spec = load(write(tmp_path, GOOD), environ={"TIER": "back"})
    assert spec.name == "shop" and spec.swarm
    manager, worker = spec.groups
    assert (manager.name, manager.driver, manager.count, manager.role) == ("manager", "none", 1, "manager")
    assert manager.options == {"url": "tcp://127.0.0.1:2376"}
    assert worker.count == 3 and worker.role == "worker"
    assert worker.options == {"url": "tcp://127.0.0.1:2377", "engine_label": ["tier=back", "zone=a"],
                              "engine_endpoint": "tcp"}
    assert [(s.name, s.compose_file) for s in spec.stacks] == [("web", tmp_path / "web.yml")]
    # The digest follows the options: the same file gives the same digest, a change gives another.
    again = load(write(tmp_path, GOOD), environ={"TIER": "back"})
    assert again.groups[1].digest() == worker.digest()
    changed = load(write(tmp_path, GOOD), environ={"TIER": "front"})
    assert changed.groups[1].digest() != worker.digest() and changed.groups[0].digest() == manager.digest()


def test_project_name_from_p_then_file_then_directory(tmp_path: Path) -> None:
    (tmp_path / "web.yml").write_text("services: {}\n")
    path = write(tmp_path, GOOD)
    assert load(path, environ={"TIER": "x"}, project_name="other").name == "other"
    project = tmp_path / "My_Project.2"
    project.mkdir()
    nameless = write(project, "machines:\n  a: {driver: none, options: {url: 'tcp://127.0.0.1:1'}}\n")
    assert load(nameless, environ={}).name == "myproject2"
    with pytest.raises(UsageError, match="project name"):
        load(nameless, environ={}, project_name="Bad_Name")


def test_find_prefers_yml_then_yaml_and_f_names_one(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no provision.yml or provision.yaml"):
        projectfile.find(tmp_path)
    write(tmp_path, "x", "provision.yaml")
    assert projectfile.find(tmp_path).name == "provision.yaml"
    write(tmp_path, "x", "provision.yml")
    assert projectfile.find(tmp_path).name == "provision.yml"
    assert projectfile.find(tmp_path, "provision.yaml").name == "provision.yaml"
    with pytest.raises(UsageError, match="no project file at other.yml"):
        projectfile.find(tmp_path, "other.yml")


@pytest.mark.parametrize(("text", "env", "expected"), [
    ("${A}", {"A": "1"}, "1"),
    ("$A-$B", {"A": "1", "B": "2"}, "1-2"),
    ("${A:-d}", {}, "d"),
    ("${A:-d}", {"A": ""}, "d"),
    ("${A-d}", {"A": ""}, ""),
    ("${A-d}", {}, "d"),
    ("${A:+alt}", {"A": "x"}, "alt"),
    ("${A:+alt}", {"A": ""}, ""),
    ("${A+alt}", {"A": ""}, "alt"),
    ("$${A}", {"A": "1"}, "${A}"),
    ("${MISSING}", {}, ""),
    ("${A:-${B}}", {"B": "nested"}, "nested"),
    ("${A:-x${B:-y}z}", {}, "xyz"),
])
def test_interpolation_as_compose_reads_it(text: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(text, env) == expected


@pytest.mark.parametrize(("text", "env", "message"), [
    ("${A:?set A first}", {}, "required variable A is missing a value: set A first"),
    ("${A:?}", {"A": ""}, "required variable A is missing a value"),
    ("${A?}", {}, "required variable A"),
    ("cost $", {}, "a lone \\$"),
    ("${not valid}", {}, "invalid interpolation format"),
    ("${A", {}, "no closing brace"),
])
def test_interpolation_errors(text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(projectfile.InterpolationError, match=message):
        interpolate(text, env)


def test_env_file_fills_variables_and_the_shell_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("# comment\nPORT=2400\nexport TIER='from env file'\nQUOTED=\"a b\"\n")
    text = GOOD.replace("./web.yml", "./web-${QUOTED}.yml")
    (tmp_path / "web-a b.yml").write_text("services: {}\n")
    spec = load(write(tmp_path, text), environ={})
    assert spec.groups[0].options["url"] == "tcp://127.0.0.1:2400"
    assert spec.groups[1].options["engine_label"][0] == "tier=from env file"
    assert spec.stacks[0].compose_file.name == "web-a b.yml"
    shell = load(write(tmp_path, text), environ={"PORT": "9999"})
    assert shell.groups[0].options["url"] == "tcp://127.0.0.1:9999"


@pytest.mark.parametrize(("text", "line", "key", "message"), [
    ("machines:\n  web:\n    driver: none\n    count: three\n", 4, "machines.web.count", "not of type 'integer'"),
    ("machines:\n  web:\n    driver: none\n    cuont: 3\n", 2, "machines.web", "unknown key cuont"),
    ("machines:\n  web:\n    driver: none\n    swarm: leader\n", 4, "machines.web.swarm", "is not one of"),
    ("machines:\n  web:\n    driver: nosuch\n", 3, "machines.web.driver", 'Driver "nosuch" not found'),
    ("machines:\n  web:\n    driver: none\n    options:\n      url: tcp://h:1\n      colour: red\n", 6,
     "machines.web.options.colour", 'driver "none" and `create` have no option --colour'),
    ("machines:\n  web:\n    driver: none\n    options:\n      url: [a, b]\n", 5, "machines.web.options.url",
     "takes one value, not a list"),
    ("machines:\n  web:\n    driver: none\n    options:\n      url: tcp://h:1\n      engine-endpoint: udp\n", 6,
     "machines.web.options.engine-endpoint", "must be one of tcp, ssh"),
    ("machines:\n  web:\n    driver: none\n    options: {url: '${NOPE:?needed}'}\n", 4, "machines.web.options.url",
     "required variable NOPE"),
    ("machines:\n  Web_1:\n    driver: none\n", 2, "machines.Web_1", "'Web_1' is not allowed"),
    ("machines:\n  web:\n    driver: none\n  web:\n    driver: none\n", 4, "machines.web", "given twice"),
    ("machines:\n  web: {driver: none, options: {url: 'tcp://h:1'}}\nstacks:\n  s: ./missing.yml\n", 4,
     "stacks.s", "no compose file at ./missing.yml"),
    ("machines:\n  web: {driver: none, swarm: worker, options: {url: 'tcp://h:1'}}\n", 1, "machines",
     "a swarm needs at least one machine with swarm: manager"),
    ("machines: {}\n", 1, "machines", "should be non-empty"),
    ("machines:\n  web:\n    driver: none\n    options: {engine-label: [a=b]}\n", 4, "machines.web.options",
     'driver "none" needs --url (or set NONE_URL)'),
    ("name: shop\nmachines:\n  web: {driver: none\n", 4, "", "not valid YAML"),
    ("- a\n- b\n", 1, "", "must be a mapping"),
    ("version: 3\nmachines:\n  web: {driver: none}\n", 1, "(top)", "unknown key version"),
])
def test_every_error_names_file_line_and_key(tmp_path: Path, text: str, line: int, key: str, message: str) -> None:
    with pytest.raises(ProjectFileError) as caught:
        load(write(tmp_path, text), environ={})
    text = caught.value.message
    assert text.startswith(f"provision.yml:{line}: {key}"), text
    assert message in text


def test_an_oversized_or_binary_file_is_refused_before_parsing(tmp_path: Path) -> None:
    with pytest.raises(ProjectFileError, match="at most"):
        load(write(tmp_path, "#" * (projectfile.MAX_FILE_BYTES + 1)), environ={})
    path = tmp_path / "provision.yml"
    path.write_bytes(b"\xff\xfe machines")
    with pytest.raises(ProjectFileError, match="not UTF-8"):
        load(path, environ={})
    # Tags that would build Python objects are refused by the safe loader.
    with pytest.raises(ProjectFileError, match="provision.yml:1: machines: the tag tag:yaml.org,2002:python/object:os.system is not allowed"):
        load(write(tmp_path, "machines: !!python/object:os.system {}\n"), environ={})


def test_the_schema_ships_in_the_package_and_checks_a_good_file(tmp_path: Path) -> None:
    from jsonschema import Draft202012Validator

    shipped = json.loads(files("provision").joinpath("schemas/provision.schema.json").read_text())
    Draft202012Validator.check_schema(shipped)
    import yaml

    Draft202012Validator(shipped).validate(yaml.safe_load(GOOD))
    assert shipped["properties"]["machines"]["additionalProperties"]["$ref"] == "#/$defs/group"


def test_cli_error_is_one_line_with_file_line_and_key(tmp_path: Path) -> None:
    write(tmp_path, "machines:\n  web:\n    driver: none\n    count: -1\n")
    result = run("plan", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "provision.yml:4: machines.web.count: -1 is less than the minimum of 0\n"
    assert result.stdout == ""
