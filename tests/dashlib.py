"""Helpers of the dashboard and metrics tests: a small tree of prebuilt
objects in a few directories, and headless Chromium (Debian's chromium and
chromium-driver, listed in scripts/debian-packages/dashboard.txt, driven by
selenium)."""
from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

from scall_testlib import require_tools

ROOT = Path(__file__).resolve().parent.parent
PREBUILT = ROOT / "testdata" / "prebuilt"

#: the small tree: tree path -> prebuilt object
LAYOUT = {"arch/x/crossing.o": "crossing.o", "arch/x/kinds.o": "kinds.o",
          "lib/demo.o": "demo.o", "lib/sub/staticcall-O2.o": "staticcall-O2.o",
          "nostatic-O2.o": "nostatic-O2.o"}


def prebuilt_tree(root: Path) -> Path:
    """Copy the prebuilt objects into ``root`` as LAYOUT says."""
    for rel, name in LAYOUT.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PREBUILT / name, root / rel)
    return root


def scan_json(cli, out: Path, *args) -> dict:
    """``scan --format json -o OUT ARGS`` through the ``cli`` fixture; the report."""
    r = cli("scan", "--format", "json", "-o", out, *args)
    assert r.rc == 0, r.stderr
    return json.loads(Path(out).read_text())


def rename_trampoline(doc: dict, old: str, new: str) -> None:
    """Rename a trampoline throughout a scan report (sites and summary)."""
    for o in doc["objects"]:
        for s in o["sites"]:
            if s["trampoline"] == old:
                s["trampoline"] = new
    t = doc["summary"]["by_trampoline"]
    t[new] = t.pop(old)


CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"


def _require() -> None:
    missing = [p for p in (CHROMIUM, DRIVER) if not Path(p).exists()
               and not shutil.which(Path(p).name)]
    if missing:
        require_tools(*missing)


@contextmanager
def chromium(width: int = 1400, height: int = 1000):
    """A headless Chromium whose console is logged (get_log("browser"))."""
    _require()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-extensions", "--no-first-run", f"--window-size={width},{height}"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER if Path(DRIVER).exists()
                                              else shutil.which("chromedriver")),
                              options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[dict]:
    """Console messages of level SEVERE (errors, uncaught exceptions, CSP
    violations, failed loads)."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def number(text: str) -> int:
    """A count as the page shows it (thousands separated by commas)."""
    return int(text.replace(",", "").strip())
