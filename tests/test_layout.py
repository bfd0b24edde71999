"""The package's shape: no import cycle between its modules (imports inside
functions included), and one option table that both command lines follow."""
from __future__ import annotations

import ast
from pathlib import Path

import scall_objtool
from scall_objtool import options as table
from scall_objtool.cli import parse
from scall_objtool.core import Options

PKG = Path(scall_objtool.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = p
    return out


def _imports(name: str, path: Path, mods: dict) -> set[str]:
    """The package modules ``name`` imports, anywhere in its code."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = pkg.split(".")[:len(pkg.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            subs = [f"{target}.{a.name}" for a in node.names]
            # `from . import sub` needs the submodule; the package itself only
            # when a name is taken from it (an importer's parent package is
            # always imported before the importer, so that edge alone is no cycle)
            needs_package = any(c not in mods for c in subs)
            for cand in ([target] if needs_package else []) + subs:
                if cand in mods and cand != name:
                    out.add(cand)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in mods and a.name != name)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def test_no_import_cycle_inside_the_package():
    mods = _modules()
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    # the package's own __init__ re-exports the API lazily; it must not be part
    # of a cycle either
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_policy_defaults_come_from_the_options_record():
    defaults = Options()
    for opt in table.POLICY:
        assert opt.default == getattr(defaults, opt.dest), opt.dest


def test_the_fast_path_parses_every_option_of_every_command():
    """Each option of the table, given on a command line, reaches the command's
    values under its dest; both parsers are built from the same table."""
    for cmd in table.COMMANDS.values():
        positional = ["x.o"] if cmd.args and cmd.args[0].many else ["a"] * len(cmd.args)
        for opt in table.all_options(cmd):
            if opt.kind == "flag":
                argv, want = [opt.flags[0]], True
            elif opt.kind == "int":
                n = max(4, opt.minimum or 0)
                argv, want = [opt.flags[0], str(n)], n
            elif opt.kind == "choice":
                argv, want = [opt.flags[0], opt.choices[-1]], opt.choices[-1]
            elif opt.kind == "list":
                argv, want = [opt.flags[0], "g1", opt.flags[0], "g2"], ["g1", "g2"]
            else:
                argv, want = [opt.flags[0], "v"], "v"
            name, values = parse([cmd.name, *argv, *positional])
            assert name == cmd.name and values[opt.dest] == want, (cmd.name, opt.dest)


def test_an_installed_package_holds_every_subpackage():
    """`pip install .` ships what the editable install the tests use sees: every
    directory of the package with an __init__.py is found by pyproject's pattern
    (report/ was once left out)."""
    import tomllib

    from setuptools import find_packages
    cfg = tomllib.loads((PKG.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set(find_packages(str(PKG.parent), **cfg["packages"]["find"]))
    on_disk = {".".join(p.parent.relative_to(PKG.parent).parts) for p in PKG.rglob("__init__.py")}
    assert on_disk <= found, on_disk - found
