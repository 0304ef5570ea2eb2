"""The house rules, checked on the source: each failure names the file and line that broke the rule.

- Every pause and every bounded wait goes through ``provision.waiting`` (one loop, one bound, one
  explanation when it runs out): no ``time.sleep`` and no loop on a deadline anywhere else.
- Every process is started through ``provision.run``: no ``subprocess`` and no ``os.exec*``/``os.system``.
- The core never imports typer, click or rich (front ends do) nor a driver module (it reaches drivers only
  through the ``provision.drivers`` entry points); drivers never import the CLI, the store or the machine
  service.
- The quick tier (what ``provision.cli.main`` loads before it hands over to the full CLI) imports only
  the standard library and provision's own light modules at module level.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "provision"
DRIVERS = REPO / "drivers"
WAIT_HELPER = CORE / "waiting.py"
RUNNER = CORE / "run.py"
FRONT_END_LIBRARIES = {"typer", "click", "rich"}
DRIVER_PACKAGES = {"provision_drivers", "drivers"}
# Where the quick tier hands over: the full CLI, which may load anything.
FULL_CLI = {"provision.cli.app"}


def sources(*roots: Path) -> Iterator[tuple[Path, ast.Module]]:
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            yield path, ast.parse(path.read_text(), filename=str(path))


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def imported_modules(path: Path, node: ast.AST) -> list[str]:
    """The absolute names an import statement brings in (relative ones resolved against ``path``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level == 0:
        base = node.module or ""
    else:
        package = module_name(path).split(".")
        if path.name != "__init__.py":
            package = package[:-1]
        package = package[:len(package) - node.level + 1]
        base = ".".join(package + ([node.module] if node.module else []))
    # `from . import waiting` imports a module; `from .errors import X` imports a name of one.
    return [f"{base}.{alias.name}" if node.module is None else base for alias in node.names]


def module_name(path: Path) -> str:
    relative = path.relative_to(REPO).with_suffix("")
    parts = list(relative.parts)
    if parts[0] == "drivers":
        parts[0] = "provision_drivers"
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_nothing_sleeps_or_loops_on_a_deadline_outside_the_wait_helper() -> None:
    broken = []
    for path, tree in sources(CORE, DRIVERS):
        if path == WAIT_HELPER:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and dotted(node.func) in ("time.sleep", "sleep"):
                broken.append(f"{where(path, node)}: time.sleep (use provision.waiting)")
            if isinstance(node, ast.While):
                test = ast.unparse(node.test)
                if "monotonic" in test or "deadline" in test.lower() or "time.time" in test:
                    broken.append(f"{where(path, node)}: a loop on a deadline (use provision.waiting.wait_for)")
    assert not broken, "\n".join(broken)


def test_every_process_starts_through_the_runner() -> None:
    launchers = ("os.system", "os.popen", "os.execv", "os.execvp", "os.execvpe", "os.execl", "os.execlp",
                 "os.spawnv", "os.spawnvp", "os.posix_spawn", "os.posix_spawnp", "pty.spawn")
    broken = []
    for path, tree in sources(CORE, DRIVERS):
        if path == RUNNER:
            continue
        for node in ast.walk(tree):
            if any(m == "subprocess" or m.startswith("subprocess.") for m in imported_modules(path, node)):
                broken.append(f"{where(path, node)}: imports subprocess (use provision.run)")
            if isinstance(node, ast.Call) and dotted(node.func) in launchers:
                broken.append(f"{where(path, node)}: {dotted(node.func)} (use provision.run)")
    assert not broken, "\n".join(broken)


def test_the_core_imports_no_front_end_library_and_no_driver() -> None:
    broken = []
    for path, tree in sources(CORE):
        if (CORE / "cli") in path.parents:
            continue
        for node in ast.walk(tree):
            for name in imported_modules(path, node):
                top = name.split(".")[0]
                if top in FRONT_END_LIBRARIES:
                    broken.append(f"{where(path, node)}: imports {name} (a front end's library)")
                if top in DRIVER_PACKAGES:
                    broken.append(f"{where(path, node)}: imports {name} (drivers are reached through "
                                  "provision.registry's entry points)")
    assert not broken, "\n".join(broken)


def test_drivers_never_reach_into_the_cli_the_store_or_the_machine_service() -> None:
    forbidden = ("provision.cli", "provision.store", "provision.machines")
    broken = []
    for path, tree in sources(DRIVERS):
        for node in ast.walk(tree):
            for name in imported_modules(path, node):
                if any(name == f or name.startswith(f + ".") for f in forbidden):
                    broken.append(f"{where(path, node)}: imports {name}")
    assert not broken, "\n".join(broken)


def _module_level_imports(path: Path, tree: ast.Module) -> Iterator[tuple[ast.stmt, str]]:
    """Imports that run when the module is imported: top level and under a top-level ``if``/``try``,
    except ``if TYPE_CHECKING:`` blocks."""
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.If):
            if "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            pending[:0] = node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending[:0] = node.body + node.orelse + node.finalbody
        else:
            for name in imported_modules(path, node):
                yield node, name


def _file_of(module: str) -> Path | None:
    parts = module.split(".")
    if parts[0] != "provision":
        return None
    base = REPO.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None  # a name imported from a module: its module was already followed


def test_the_quick_tier_imports_only_the_standard_library_and_light_provision_modules() -> None:
    main = CORE / "cli" / "main.py"
    tree = ast.parse(main.read_text())
    start = [name for node in ast.walk(tree) for name in imported_modules(main, node)
             if name.startswith("provision") and name not in FULL_CLI]
    seen: set[str] = set()
    chain: dict[str, str] = {name: "provision.cli.main" for name in start}
    queue = list(start)
    broken = []
    stdlib = sys.stdlib_module_names
    while queue:
        module = queue.pop(0)
        path = _file_of(module)
        if path is None or module in seen:
            continue
        seen.add(module)
        for node, name in _module_level_imports(path, ast.parse(path.read_text())):
            top = name.split(".")[0]
            if top == "__future__" or top in stdlib:
                continue
            if top != "provision":
                route = [module]
                while route[-1] in chain:
                    route.append(chain[route[-1]])
                broken.append(f"{where(path, node)}: imports {name} at start-up "
                              f"(reached through {' <- '.join(route)})")
            elif name not in seen:
                chain.setdefault(name, module)
                queue.append(name)
    assert len(seen) > 3, f"the quick tier was not found from {main}: {sorted(seen)}"
    assert not broken, "\n".join(broken)
