"""The package's shape: no import cycles, the CLI on top, one owner of run-directory names, a light CLI start."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import ablate
from ablate import rundir

PACKAGE = Path(ablate.__file__).parent


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The ablate modules that ``name`` imports anywhere in its body (lazy imports count too)."""
    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {resolve(a.name) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else resolve(base) for a in node.names}
    return {m for m in found if m and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_only_the_cli_imports_the_cli():
    offenders = {name: sorted(m for m in deps if m.startswith("ablate.cli"))
                 for name, deps in graph().items() if not name.startswith(("ablate.cli", "ablate.__main__"))}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_run_directory_file_names_are_spelled_in_one_module():
    names = {rundir.RECIPE, rundir.METRICS, rundir.CHECKPOINT, rundir.BEST, rundir.SUMMARY, rundir.GRADFLOW,
             rundir.FIGURES, rundir.TENSORBOARD, rundir.LOG, rundir.TRACKERS, rundir.SIGNAL, *rundir.FIGURE_STEMS}
    spelled = {}
    for name, path in modules().items():
        literals = {node.value for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        if literals & names:
            spelled[name] = sorted(literals & names)
    assert list(spelled) == ["ablate.rundir"], spelled


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["list", "norms"], ["plugins"]])
def test_light_commands_do_not_import_torch(args):
    code = ("import sys\nfrom ablate.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n"
            "    assert not exc.code, exc.code\nheavy = [m for m in ('torch', 'timm', 'matplotlib') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "HEAVY []", done.stdout[-500:]


def test_plugins_and_version_work_without_the_builtin_plugin():
    for args in (["--disable-plugins", "ablate", "plugins"], ["--disable-plugins", "ablate", "--version"]):
        done = subprocess.run([sys.executable, "-m", "ablate", *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert "ablate " in done.stdout
