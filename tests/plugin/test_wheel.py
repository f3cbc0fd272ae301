"""flowgate installs one import name, ``flowgate``, and coexists with PyPI's ``fixtures``.

The wheel is built from a copy of the installed folders (``pip wheel --no-deps
--no-build-isolation``, with this environment's setuptools: no download, nothing written into the
checkout) and installed with ``--no-deps`` into a fresh virtual environment together with
testing-cabal's ``fixtures`` from the package index (it has no dependencies). flowgate's own
dependencies (boto3, SQLAlchemy, pytest, Hypothesis, ...) are taken from this environment through
a ``.pth`` line appended *after* the fresh environment's site-packages: its own ``flowgate`` and
``fixtures`` come first, and this environment's editable install of flowgate is invisible there
(a ``.pth`` file in a directory added by a ``.pth`` line is not processed, so setuptools' editable
import hook is not installed). Nothing here skips: no index, no wheel, a failed build all fail.

The same file checks the source side of the namespace: the package list of ``pyproject.toml``
against the folders, and that no file of the checkout still imports, runs (``-m``/``-p``) or
patches a module by its old top-level name -- inside the checkout such a leftover would not fail
(pytest puts the repository root on ``sys.path``), it would load a second copy of the module.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

from .test_host_project import HOST_CONFTEST, HOST_TESTS, _host, _run_host

ROOT = Path(__file__).resolve().parents[2]
#: the repository folders installed under the namespace, and their import names
INSTALLED = {
    "reference": "flowgate.reference",
    "harness": "flowgate.harness",
    "fixtures": "flowgate.fixtures",
}
OLD = tuple(INSTALLED)

#: a host-project test that uses PyPI's fixtures while flowgate's plugin is loaded
HOST_FIXTURES_TEST = textwrap.dedent(
    """
    import importlib

    def test_pypi_fixtures_next_to_flowgate():
        pypi = importlib.import_module("fixtures")
        assert pypi.Fixture.__module__.startswith("fixtures")
    """
)

PROBE = textwrap.dedent(
    """
    import importlib, json, sys
    import importlib.metadata as md

    pypi = importlib.import_module("fixtures")
    pypi.Fixture  # testing-cabal's class
    import flowgate.reference, flowgate.harness, flowgate.fixtures.plugin, flowgate.harness.cli
    import flowgate.reference.worker, flowgate.harness.mutants.worker, flowgate.fixtures.summary
    import flowgate
    old = {}
    for name in ("reference", "harness"):
        try:
            importlib.import_module(name)
            old[name] = "imported"
        except ModuleNotFoundError:
            old[name] = "absent"
    dist = md.distribution("flowgate-harness")
    print(json.dumps({
        "fixtures": pypi.__file__,
        "fixtures_version": md.version("fixtures"),
        "reference": flowgate.reference.__file__,
        "namespace": list(flowgate.__path__),
        "flowgate_file": getattr(flowgate, "__file__", None),
        "old": old,
        "old_in_sys_modules": sorted(m for m in sys.modules if m.split(".")[0] in ("reference", "harness")),
        "entry_points": sorted(f"{e.group}:{e.name}={e.value}" for e in dist.entry_points),
    }))
    """
)


def _package_list() -> list[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(data["tool"]["setuptools"]["packages"])


def _folders() -> list[str]:
    """Every package folder (an ``__init__.py``) under the installed folders, as its import name."""
    names = []
    for folder, name in INSTALLED.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder).parts
            names.append(".".join((name, *rel)))
    return names


def test_pyproject_maps_every_package_folder_onto_the_namespace() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = data["tool"]["setuptools"]
    assert setuptools["package-dir"] == {name: folder for folder, name in INSTALLED.items()}
    assert sorted(_package_list()) == sorted(_folders()), "a package folder is missing from pyproject.toml"
    assert data["project"]["name"] == "flowgate-harness"
    assert data["project"]["scripts"] == {"flowgate": "flowgate.harness.cli:main"}
    assert data["project"]["entry-points"]["pytest11"] == {"flowgate": "flowgate.fixtures.plugin"}


def _old_references(path: Path) -> list[str]:
    """Imports of, and dotted module paths (in strings) into, the old top-level names in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    dotted = re.compile(r"(?<![\w./\-])(" + "|".join(OLD) + r")\.([A-Za-z_]\w*)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if a.name.split(".")[0] in OLD]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in OLD:
                found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for m in dotted.finditer(node.value):
                sub = ROOT / m.group(1) / m.group(2)
                if sub.with_suffix(".py").is_file() or (sub / "__init__.py").is_file():
                    found.append((node.lineno, repr(m.group(0))))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "getLogger"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value in OLD
        ):
            found.append((node.lineno, f"getLogger({node.args[0].value!r})"))
    return [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in sorted(found)]


def test_nothing_in_the_checkout_uses_the_old_top_level_names() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(listed) > 100
    problems = [p for rel in listed if (ROOT / rel).is_file() for p in _old_references(ROOT / rel)]
    assert problems == [], "old module names (flowgate.* is the only installed name):\n" + "\n".join(problems)


def test_old_references_are_found() -> None:
    """The scan above is not vacuous: each kind of leftover is reported."""
    sample = ROOT / "tests" / "plugin" / "_old_names_sample.py"
    sample.write_text(
        "import " + OLD[0] + ".bus\n"
        "from " + OLD[1] + ".checkers import check_all\n"
        "X = ['-p', '" + OLD[2] + ".summary', '" + OLD[0] + ".db']\n"
        "import logging\nlogging.getLogger('" + OLD[0] + "')\n",
        encoding="utf-8",
    )
    try:
        found = _old_references(sample)
    finally:
        sample.unlink()
    assert len(found) == 4, found  # not the file name "<old>.db"


def test_editable_install_imports_only_the_namespace(tmp_path: Path) -> None:
    """This environment's install (``pip install -e .`` under nox and CI) outside the checkout."""
    code = "import flowgate.reference.bus, flowgate.harness.cli, flowgate.fixtures.plugin\n" + (
        "import importlib.util as u; print([u.find_spec(n) is None for n in ('reference', 'harness')])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[True, True]"


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the built wheel and PyPI's ``fixtures``; its python."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for folder in INSTALLED:
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = base / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    build = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    [wheel] = dist.glob("flowgate_harness-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        tops = {n.split("/")[0] for n in zf.namelist()}
        names = set(zf.namelist())
    assert tops == {"flowgate", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    assert "flowgate/__init__.py" not in names  # a namespace package
    for package in _package_list():
        assert package.replace(".", "/") + "/__init__.py" in names, package
    assert {"flowgate/harness/gate/topology.yaml", "flowgate/reference/py.typed"} <= names

    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [*pip, "--python", str(python), "install", "--no-deps", "-q", str(wheel), "fixtures"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    here = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(purelib) / "zz_flowgate_test_dependencies.pth").write_text("\n".join(here) + "\n", encoding="utf-8")
    return python


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}


def test_the_wheel_installs_next_to_pypi_fixtures_and_both_import(wheel_venv: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(wheel_venv), "-c", PROBE], cwd=tmp_path, env=_clean_env(),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = json.loads(proc.stdout)
    site = str(wheel_venv.parent.parent)
    assert seen["fixtures"].startswith(site), seen  # PyPI's fixtures, in the fresh venv
    assert seen["reference"].startswith(site), seen  # flowgate from the wheel, not the checkout
    assert len(seen["namespace"]) == 1, seen
    assert seen["namespace"][0].startswith(site), seen
    assert seen["flowgate_file"] is None  # a PEP 420 namespace package
    assert seen["old"] == {"reference": "absent", "harness": "absent"}, seen
    assert seen["old_in_sys_modules"] == []
    assert seen["entry_points"] == [
        "console_scripts:flowgate=flowgate.harness.cli:main",
        "pytest11:flowgate=flowgate.fixtures.plugin",
    ]
    cli = subprocess.run(
        [str(wheel_venv.parent / "flowgate"), "--help"], cwd=tmp_path, env=_clean_env(),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert "worker" in cli.stdout
    assert "gate" in cli.stdout


def test_host_project_keeps_its_hypothesis_profile_with_the_wheel(wheel_venv: Path, tmp_path: Path) -> None:
    """The host project of ``test_host_project.py``, plus a test that uses PyPI's ``fixtures``,
    in the environment where flowgate is installed from its wheel."""
    host = _host(tmp_path, "host", HOST_CONFTEST)
    (host / "test_pypi_fixtures.py").write_text(HOST_FIXTURES_TEST, encoding="utf-8")
    with_plugin = _run_host(host, tmp_path / "with.json", python=str(wheel_venv))
    without_plugin = _run_host(host, tmp_path / "without.json", "-p", "no:flowgate", python=str(wheel_venv))
    assert with_plugin.pop("plugin_loaded") is True
    assert without_plugin.pop("plugin_loaded") is False
    assert with_plugin["max_examples"] == with_plugin["examples_run"] == 7
    assert with_plugin == without_plugin
    assert HOST_TESTS  # the same host tests as test_host_project.py
