"""The ``pytest11`` plugin leaves a host project's Hypothesis settings alone.

flowgate's plugin (``flowgate.fixtures.plugin``) loads in every pytest run of an environment where
flowgate is installed. A host project -- a temporary directory outside this checkout, so this
repository's ``conftest.py`` is not read -- is run with pytest in a subprocess of the same
environment, with ``HYPOTHESIS_PROFILE=ci`` set as the nox sessions set it, once as it is and
once with the plugin disabled (``-p no:flowgate``). Its tests record what they see; the two runs
must see the same: the host's own profile exactly as it declared it (``max_examples=7`` and every
setting it did not override), the same profiles under flowgate's names (``dev``, ``ci``,
``nightly``: none, or Hypothesis' own), and Hypothesis' defaults where the host declared none.
The plugin must be loaded in the first run, so the comparison is not vacuous.
``tests/plugin/test_wheel.py`` runs the same host project where flowgate is installed from its
built wheel, next to PyPI's ``fixtures``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

HOST_CONFTEST = textwrap.dedent(
    """
    from hypothesis import settings

    settings.register_profile("host", max_examples=7)
    settings.load_profile("host")
    """
)

HOST_TESTS = textwrap.dedent(
    """
    import json
    import os

    from hypothesis import given, settings, strategies as st
    from hypothesis.errors import InvalidArgument

    RUNS = []

    def _profile(name):
        try:
            return repr(settings.get_profile(name))
        except InvalidArgument:
            return None

    @given(st.integers())
    def test_host_examples(n):
        RUNS.append(n)

    def test_record(request):
        seen = {
            "plugin_loaded": request.config.pluginmanager.hasplugin("flowgate"),
            "settings": repr(settings()),
            "max_examples": settings().max_examples,
            "examples_run": len(RUNS),
            "profiles": {name: _profile(name) for name in ("dev", "ci", "nightly")},
        }
        with open(os.environ["HOST_RECORD"], "w") as out:
            json.dump(seen, out)
    """
)


def _run_host(directory: Path, record: Path, *extra: str, python: str = sys.executable) -> dict[str, Any]:
    """Run the host project's tests with ``python`` (this environment's, or the fresh virtual
    environment of ``test_wheel.py``) and return what its ``test_record`` saw."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    env["HYPOTHESIS_PROFILE"] = "ci"  # what the nox sessions export
    env["HOST_RECORD"] = str(record)
    proc = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *extra, "."],
        cwd=directory, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(json.loads(record.read_text(encoding="utf-8")))


def _host(tmp_path: Path, name: str, conftest: str | None) -> Path:
    host = tmp_path / name
    host.mkdir()
    (host / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    if conftest is not None:
        (host / "conftest.py").write_text(conftest, encoding="utf-8")
    (host / "test_host.py").write_text(HOST_TESTS, encoding="utf-8")
    return host


def test_host_project_keeps_its_hypothesis_profile(tmp_path: Path) -> None:
    host = _host(tmp_path, "host", HOST_CONFTEST)
    with_plugin = _run_host(host, tmp_path / "with.json")
    without_plugin = _run_host(host, tmp_path / "without.json", "-p", "no:flowgate")
    assert with_plugin.pop("plugin_loaded") is True
    assert without_plugin.pop("plugin_loaded") is False
    assert with_plugin["max_examples"] == with_plugin["examples_run"] == 7
    assert with_plugin == without_plugin


def test_host_project_without_profile_keeps_hypothesis_defaults(tmp_path: Path) -> None:
    host = _host(tmp_path, "bare", None)
    with_plugin = _run_host(host, tmp_path / "with.json")
    without_plugin = _run_host(host, tmp_path / "without.json", "-p", "no:flowgate")
    assert with_plugin.pop("plugin_loaded") is True
    assert without_plugin.pop("plugin_loaded") is False
    assert with_plugin == without_plugin
