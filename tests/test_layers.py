"""The folder tree shows the layers (README "Design"): only the shared modules
sit at the package's top, every folder of code is a layer the README names,
and the console entry point resolves in the tree."""
from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import scall_objtool

PKG = Path(scall_objtool.__file__).parent
SHARED = {"__init__", "__main__", "_version", "errors", "options", "records", "vocabulary"}
LAYERS = {"cli", "inputs", "core", "lines", "table", "report", "runtime"}


def test_only_the_shared_modules_sit_at_the_top():
    top = {p.stem for p in PKG.glob("*.py")}
    assert top == SHARED, f"put {sorted(top - SHARED)} in a layer's folder"


def test_every_folder_of_code_is_a_layer_the_readme_names():
    folders = {p.parent.name for p in PKG.glob("*/__init__.py")}
    assert folders == LAYERS
    readme = (PKG.parent / "README.md").read_text()
    for layer in sorted(LAYERS - {"runtime"}):
        assert f"| `{layer}/` |" in readme, layer


def test_the_installed_command_resolves():
    """pyproject ships bin/scall-objtool (script-files, README "Speed"), and
    what it imports is in the tree."""
    project = tomllib.loads((PKG.parent / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["script-files"] == ["bin/scall-objtool"]
    text = (PKG.parent / "bin" / "scall-objtool").read_text()
    line = next(x for x in text.splitlines() if x.startswith("from scall_objtool"))
    module, _, names = line[len("from "):].partition(" import ")
    imported = importlib.import_module(module)
    assert all(callable(getattr(imported, n.strip())) for n in names.split(","))


def test_every_exported_name_resolves():
    """The package exports its API lazily, by module name: a name whose module
    moved into a layer must still import (``from scall_objtool import Site``)."""
    import subprocess
    import sys
    code = ("import scall_objtool as p\n"
            "for n in p.__all__: getattr(p, n)\n"
            "from scall_objtool import ObjectResult, Options, Reference, Site\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
