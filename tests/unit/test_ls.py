"""`ls` filters, formats and quiet mode over several machines."""

from __future__ import annotations

import json

from clirun import run

URL = "tcp://127.0.0.1:23763"


def make(name: str, *labels: str) -> None:
    args = ["create", "-d", "none", "--url", URL]
    for label in labels:
        args += ["--engine-label", label]
    run(*args, name, check=True)


def test_filters_or_within_a_key_and_across_keys() -> None:
    make("web1", "env=prod")
    make("web2", "env=dev")
    make("db1", "env=prod")
    names = lambda *f: run("ls", "-q", *[x for v in f for x in ("--filter", v)], check=True).stdout.split()  # noqa: E731
    assert names("name=^web") == ["web1", "web2"]
    assert names("name=web1", "name=db") == ["db1", "web1"]
    assert names("label=env=prod") == ["db1", "web1"]
    assert names("label=env=prod", "name=web") == ["web1"]
    assert names("driver=none", "state=Running") == ["db1", "web1", "web2"]
    assert names("driver=generic") == []
    bad = run("ls", "--filter", "color=red")
    assert bad.returncode == 2 and "Unsupported filter" in bad.stderr


def test_format_and_table() -> None:
    make("web1")
    out = run("ls", "--timeout", "2", "--format", "{{.Name}} {{.DriverName}} {{.URL}}", check=True).stdout
    assert out == f"web1 none {URL}\n"
    table = run("ls", "--timeout", "2", "--format", "table {{.Name}}\\t{{.State}}", check=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "STATE"] and table[1].split() == ["web1", "Running"]
    data = json.loads(run("ls", "--timeout", "2", "--json", check=True).stdout)
    assert data[0]["Name"] == "web1" and data[0]["URL"] == URL


def test_inspect_format() -> None:
    make("web1")
    assert run("inspect", "-f", "{{.Driver.IPAddress}}", "web1", check=True).stdout == "127.0.0.1\n"
    assert run("inspect", "-f", "{{.DriverName}}", "web1", check=True).stdout == "none\n"
    assert run("ip", "web1", check=True).stdout == "127.0.0.1\n"
    assert run("status", "web1", check=True).stdout == "Running\n"
