"""The whole checkout collects in one pytest run (``pytest`` at the root: the testpaths ``tests``,
``properties`` and ``scenarios``). Options shared by the suites (``--mutant``) are declared once,
in the root ``conftest.py``; two suites declaring the same option made every root run fail at
start-up (``option dest 'mutant' already used``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_whole_checkout_collects_in_one_run() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    collected = {line.split("::", 1)[0].split("/", 1)[0] for line in proc.stdout.splitlines() if "::" in line}
    assert {"tests", "properties", "scenarios"} <= collected, collected
