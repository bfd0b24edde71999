"""Debian's linux-source-6.1, fetched and unpacked once under $SCALL_CACHE,
with the tools a kernel build needs (used by scripts/kernel-lines and
scripts/remedy-experiment)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "linux-source-6.1"

#: what building the kernel needs beyond gcc and binutils
BUILD_PACKAGES = ["bc", "bison", "flex", "libelf-dev", "libssl-dev", "make"]

#: defconfig plus DWARF5 debug info, as the tests' Kbuild build
DEBUG_CONFIG = ["--disable", "DEBUG_INFO_NONE", "--enable", "DEBUG_INFO",
                "--enable", "DEBUG_INFO_DWARF5", "--disable", "DEBUG_INFO_REDUCED",
                "--disable", "DEBUG_INFO_COMPRESSED", "--disable", "DEBUG_INFO_SPLIT",
                "--disable", "WERROR"]


def cache_root() -> Path:
    return Path(os.environ.get("SCALL_CACHE") or str(ROOT / ".cache"))


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build_tools() -> None:
    """Install the kernel build's tools when missing (apt-get, as root)."""
    missing = [p for p in BUILD_PACKAGES if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
        text=True).stdout.find("install ok installed") < 0]
    if missing:
        sh(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def source_tree(cache: Path | None = None) -> Path:
    """The unpacked source (shared by every script: $SCALL_CACHE/lines-kernel)."""
    build_tools()
    cache = cache or cache_root() / "lines-kernel"
    src = cache / "linux-source-6.1"
    if (src / "Makefile").exists():
        return src
    cache.mkdir(parents=True, exist_ok=True)
    debs = sorted(cache.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        sh(["apt-get", "download", PACKAGE], cwd=cache)
        debs = sorted(cache.glob(f"{PACKAGE}_*.deb"))
    unpack = cache / "deb"
    sh(["dpkg-deb", "-x", str(debs[-1]), str(unpack)])
    tarball = next((unpack / "usr/src").glob("linux-source-6.1.tar.*"))
    sh(["tar", "-xf", str(tarball), "-C", str(cache)])
    sh(["rm", "-rf", str(unpack)])
    return src


def configure(make: list[str], out: Path, src: Path, extra: list[str] = ()) -> None:
    """x86_64 defconfig + DWARF5 (+ `extra` scripts/config arguments) in `out`."""
    if (out / ".config").exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    sh(make + ["defconfig"], stdout=subprocess.DEVNULL)
    sh([str(src / "scripts/config"), "--file", str(out / ".config"), *DEBUG_CONFIG, *extra])
    sh(make + ["olddefconfig"], stdout=subprocess.DEVNULL)


def load_script(name: str):
    """scripts/NAME (no .py suffix) as a module, registered in sys.modules
    (dataclasses look their module up there)."""
    import importlib.machinery
    import importlib.util
    import sys
    mod_name = name.replace("-", "_")
    loader = importlib.machinery.SourceFileLoader(mod_name, str(ROOT / "scripts" / name))
    spec = importlib.util.spec_from_loader(mod_name, loader)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    loader.exec_module(mod)
    return mod
