"""Allure 3 reporting for flowgate: results -> HTML report -> (optionally) a screenshot.

Every nox session runs pytest with ``--alluredir reports/allure-results/<session>``. This module
turns those directories into one report a reviewer opens:

* :func:`ensure_allure_cli` installs the Allure 3 command line (``npm install allure@3``) into a
  local, git-ignored folder (``reports/.allure-cli``) on first use and reuses it afterwards;
* :func:`write_environment` writes ``environment.properties`` (Python, boto3, LocalStack,
  implementation under test, seed) and copies ``reports/categories.json`` into a results dir;
* :func:`generate_report` merges every ``reports/allure-results/*/`` into
  ``reports/allure-report/`` (or a single self-contained ``index.html``), keeping trends in a
  JSON-lines history file between runs;
* :func:`ensure_chromium`, :func:`screenshot`, :func:`dump_dom` and :func:`overview_text`
  (:mod:`flowgate.harness.report_browser`, re-exported here) render the report in headless Debian Chromium (offline flags, served from a throw-away
  ``http.server`` on 127.0.0.1) so tests can check what a reviewer sees.

Allure 3 reads ``environment.properties`` and ``categories.json`` from results directories
(its Allure 2 reader) but its default "awesome" UI takes categories from the config file, so
:func:`generate_report` writes both: the files into each results dir, and an ``allurerc.json``
with ``categories``, ``historyPath`` and the plugin options.

``python -m flowgate.harness.report`` builds both report variants (see :func:`main`).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from flowgate.harness.report_browser import (
    CHROMIUM_FLAGS,
    CHROMIUM_INSTALL_HINT,
    OVERVIEW_COUNTERS,
    OVERVIEW_PNG,
    ReportError,
    _log,
    dump_dom,
    ensure_chromium,
    html_text,
    overview_counts,
    overview_text,
    screenshot,
    serve_directory,
)

#: names of flowgate.harness.report_browser re-exported here (callers use flowgate.harness.report.screenshot etc.)
__all__ = [
    "CHROMIUM_FLAGS",
    "CHROMIUM_INSTALL_HINT",
    "OVERVIEW_COUNTERS",
    "OVERVIEW_PNG",
    "ReportError",
    "dump_dom",
    "ensure_chromium",
    "html_text",
    "overview_counts",
    "overview_text",
    "screenshot",
    "serve_directory",
]

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
REPORTS_DIR: Final = REPO_ROOT / "reports"
RESULTS_ROOT: Final = REPORTS_DIR / "allure-results"
REPORT_DIR: Final = REPORTS_DIR / "allure-report"
SINGLE_REPORT_DIR: Final = REPORTS_DIR / "allure-report-single"
HISTORY_DIR: Final = REPORTS_DIR / "allure-history"
CLI_DIR: Final = REPORTS_DIR / ".allure-cli"
CATEGORIES_FILE: Final = REPORTS_DIR / "categories.json"

ALLURE_PACKAGE: Final = "allure@3"
REPORT_NAME: Final = "flowgate"
NPM_INSTALL_HINT: Final = "sudo apt-get install -y nodejs npm  (Node >= 20; or install Node from nodejs.org)"


# --------------------------------------------------------------------------------------------------
# Allure 3 command line
# --------------------------------------------------------------------------------------------------


def _installed_allure(root: Path) -> Path | None:
    binary = root / "node_modules" / ".bin" / "allure"
    manifest = root / "node_modules" / "allure" / "package.json"
    if not (binary.exists() and manifest.exists()):
        return None
    try:
        version = str(json.loads(manifest.read_text(encoding="utf-8")).get("version", ""))
    except (OSError, ValueError):
        return None
    return binary if version.startswith("3.") else None


def ensure_allure_cli(root: Path = CLI_DIR) -> Path:
    """Return the Allure 3 executable, installing ``allure@3`` with npm into ``root`` if needed.

    ``root`` is a private npm folder (default ``reports/.allure-cli``, git-ignored). The first
    call prints a progress line and runs ``npm install``; later calls reuse the install. A file
    lock serialises concurrent nox sessions. ``FLOWGATE_ALLURE`` may name an existing Allure 3
    executable to use instead.

    Raises :class:`ReportError` when npm is missing or the install fails.
    """
    override = os.environ.get("FLOWGATE_ALLURE")
    if override:
        path = Path(override)
        if not path.exists():
            raise ReportError(f"FLOWGATE_ALLURE={override} does not exist")
        return path
    found = _installed_allure(root)
    if found:
        return found
    npm = shutil.which("npm")
    if npm is None:
        raise ReportError(
            f"npm not found: Allure 3 is installed with npm. Install Node.js/npm: {NPM_INSTALL_HINT}"
        )
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _installed_allure(root)  # another process may have finished meanwhile
        if found:
            return found
        package_json = root / "package.json"
        if not package_json.exists():
            package_json.write_text(
                json.dumps({"name": "flowgate-allure-cli", "private": True}, indent=2) + "\n",
                encoding="utf-8",
            )
        _log(f"installing {ALLURE_PACKAGE} with npm into {root} (first use only) ...")
        started = time.monotonic()
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", ALLURE_PACKAGE],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise ReportError(
                f"`npm install {ALLURE_PACKAGE}` failed in {root} (exit {proc.returncode}):\n"
                f"{proc.stdout[-2000:]}{proc.stderr[-4000:]}"
            )
        found = _installed_allure(root)
        if found is None:
            raise ReportError(
                f"`npm install {ALLURE_PACKAGE}` succeeded but {root}/node_modules/.bin/allure is missing"
            )
        _log(f"installed {ALLURE_PACKAGE} in {time.monotonic() - started:.1f}s")
        return found


# --------------------------------------------------------------------------------------------------
# environment.properties and categories
# --------------------------------------------------------------------------------------------------


def _properties_escape(text: str, *, key: bool = False) -> str:
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if key:
        out = out.replace("=", "\\=").replace(":", "\\:").replace(" ", "\\ ")
    return out


def localstack_version(endpoint: str | None = None, *, timeout: float = 2.0) -> str | None:
    """LocalStack's version: ``FLOWGATE_LOCALSTACK_VERSION``, else ``<endpoint>/_localstack/health``.

    ``endpoint`` defaults to ``FLOWGATE_ENDPOINT_URL``; returns ``None`` when unknown.
    """
    pinned = os.environ.get("FLOWGATE_LOCALSTACK_VERSION")
    if pinned:
        return pinned
    endpoint = endpoint or os.environ.get("FLOWGATE_ENDPOINT_URL")
    if not endpoint:
        return None
    url = endpoint.rstrip("/") + "/_localstack/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError, urllib.error.URLError):
        return None
    version = payload.get("version") if isinstance(payload, dict) else None
    if not version:
        return None
    edition = payload.get("edition")
    return f"{version} ({edition})" if edition else str(version)


def environment_values(
    extra: Mapping[str, str] | None = None, *, endpoint: str | None = None
) -> dict[str, str]:
    """The values shown in the report's Environment widget (``extra`` overrides/extends them)."""
    values: dict[str, str] = {
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
    }
    try:
        import boto3

        values["boto3"] = str(boto3.__version__)
    except ImportError:
        values["boto3"] = "not installed"
    ls_version = localstack_version(endpoint)
    if ls_version:
        values["LocalStack"] = ls_version
    implementation = os.environ.get("FLOWGATE_IMPLEMENTATION")
    if implementation:
        values["implementation"] = implementation
    seed = os.environ.get("FLOWGATE_SEED")
    if seed:
        values["seed"] = seed
    values.update({str(k): str(v) for k, v in (extra or {}).items()})
    return values


def load_categories(path: Path = CATEGORIES_FILE) -> list[dict[str, Any]]:
    """The Allure 2 style category list from ``reports/categories.json``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read categories file {path}: {exc}") from exc
    if not isinstance(data, list):
        raise ReportError(f"{path} must contain a JSON list of categories")
    return [dict(item) for item in data]


def write_categories(results_dir: Path, categories_file: Path = CATEGORIES_FILE) -> Path:
    """Copy ``reports/categories.json`` into ``results_dir`` (Allure 2 reader / classic UI)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    target = results_dir / "categories.json"
    shutil.copyfile(categories_file, target)
    return target


def write_environment(
    results_dir: Path,
    extra: Mapping[str, str] | None = None,
    *,
    endpoint: str | None = None,
    categories_file: Path = CATEGORIES_FILE,
) -> Path:
    """Write ``environment.properties`` (and ``categories.json``) into ``results_dir``.

    Keys: ``Python``, ``boto3``, ``LocalStack`` (``FLOWGATE_LOCALSTACK_VERSION`` or the health
    endpoint of ``endpoint``/``FLOWGATE_ENDPOINT_URL``, omitted when unknown), ``implementation``
    (``FLOWGATE_IMPLEMENTATION``) and ``seed`` (``FLOWGATE_SEED``), then ``extra``. Returns the
    properties file path.
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    values = environment_values(extra, endpoint=endpoint)
    lines = [f"{_properties_escape(k, key=True)}={_properties_escape(v)}" for k, v in values.items()]
    target = results_dir / "environment.properties"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if categories_file.exists():
        write_categories(results_dir, categories_file)
    return target


# --------------------------------------------------------------------------------------------------
# the first page: headlines and run-level attachments
# --------------------------------------------------------------------------------------------------

HEADLINE_FILE: Final = "flowgate-headline.json"
#: where each part's headline stands on the first page (lower first); unknown parts go last
HEADLINE_ORDER: Final = {"mutation": 10, "integration": 20, "chaos": 25, "gate": 30, "load": 40}


def write_headline(results_dir: Path, part: str, entries: Mapping[str, str]) -> Path:
    """Record ``entries`` (short label -> one-line value) as ``part``'s headline of a results dir.

    The report shows every headline of every results dir in its *Variables* block on the first
    page, ordered by :data:`HEADLINE_ORDER` (``part``: ``integration``, ``gate``, ``load``, ...).
    Keep labels to about 14 and values to about 30 characters: the overview truncates longer
    ones (the full text is in the part's results). Entries of the same part merge; a later
    write of a label replaces it.
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / HEADLINE_FILE
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        current = {}
    parts: dict[str, dict[str, str]] = current if isinstance(current, dict) else {}
    parts.setdefault(part, {}).update({str(k): str(v) for k, v in entries.items()})
    path.write_text(json.dumps(parts, indent=2), encoding="utf-8")
    return path


def read_headlines(results_dirs: Sequence[Path]) -> dict[str, str]:
    """The first page's variables: the mutation score per suite (counted from the mutant results
    themselves), then every ``flowgate-headline.json`` of ``results_dirs`` in part order."""
    from flowgate.harness.mutants.allure import mutation_summary

    parts: list[tuple[int, str, dict[str, str]]] = []
    scores = mutation_summary(results_dirs)
    if scores:
        parts.append((HEADLINE_ORDER["mutation"], "mutation", {s.label: s.headline() for s in scores}))
    for directory in results_dirs:
        try:
            data = json.loads((directory / HEADLINE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for part, entries in data.items() if isinstance(data, dict) else []:
            if isinstance(entries, dict):
                parts.append(
                    (HEADLINE_ORDER.get(part, 100), part, {str(k): str(v) for k, v in entries.items()})
                )
    variables: dict[str, str] = {}
    for _, _, entries in sorted(parts, key=lambda item: (item[0], item[1])):
        variables.update(entries)
    return variables


def attach_to_run(results_dir: Path, name: str, content: bytes | str, *, mime: str, ext: str) -> str:
    """Add a run-level attachment (the first page's *Global Attachments* tab) to a results dir.

    Allure 3 reads ``*-globals.json`` files (``{"attachments": [...]}``) from results dirs; the
    content is written next to it. Used for what a reviewer should find without opening a test:
    the gate's verdict table, the load run's latency plot and verdict table. Returns the file name.
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    source = f"{uuid.uuid4()}-attachment.{ext}"
    target = results_dir / source
    if isinstance(content, str):
        target.write_text(content, encoding="utf-8")
    else:
        target.write_bytes(content)
    entry = {"name": name, "source": source, "type": mime, "timestamp": int(time.time() * 1000)}
    (results_dir / f"{uuid.uuid4()}-globals.json").write_text(
        json.dumps({"attachments": [entry], "errors": []}), encoding="utf-8"
    )
    return source


# --------------------------------------------------------------------------------------------------
# report generation
# --------------------------------------------------------------------------------------------------


def _has_results(directory: Path) -> bool:
    return any(directory.glob("*-result.json")) or any(directory.glob("*-container.json"))


def find_results_dirs(results_root: Path) -> list[Path]:
    """The per-session results dirs: ``results_root`` itself if it holds results, and each child."""
    if not results_root.is_dir():
        return []
    dirs = [results_root] if _has_results(results_root) else []
    dirs += sorted(p for p in results_root.iterdir() if p.is_dir() and _has_results(p))
    return dirs


def _prepare_output(out: Path) -> None:
    if out.exists():
        stale = out.is_dir() and (not any(out.iterdir()) or (out / "index.html").exists())
        if not stale:
            raise ReportError(
                f"refusing to overwrite {out}: it exists and does not look like an Allure report"
            )
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)


def allure_config(
    out: Path,
    *,
    single_file: bool,
    history_path: Path | None,
    categories: Sequence[Mapping[str, Any]],
    name: str = REPORT_NAME,
    append_history: bool = True,
    variables: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ``allurerc.json`` content used by :func:`generate_report`.

    ``variables`` are the first page's headlines (:func:`read_headlines`: the mutation score,
    the integration summary, the gate and load verdicts). The environment is *not* repeated
    there: Allure 3 already shows the ``environment.properties`` of the results dirs as
    "Metadata".
    """
    config: dict[str, Any] = {
        "name": name,
        "output": str(out),
        "plugins": {
            "awesome": {
                "options": {
                    "reportName": name,
                    "singleFile": single_file,
                    "groupBy": ["epic", "feature", "story"],
                }
            }
        },
        "categories": {"rules": [dict(c) for c in categories]},
    }
    if variables:
        config["variables"] = dict(variables)
    if history_path is not None:
        config["historyPath"] = str(history_path)
        config["appendHistory"] = append_history
    return config


def generate_report(
    results_root: Path = RESULTS_ROOT,
    out: Path = REPORT_DIR,
    *,
    single_file: bool,
    history_path: Path | None = None,
    cli_root: Path = CLI_DIR,
    categories_file: Path = CATEGORIES_FILE,
    name: str = REPORT_NAME,
    timeout: float = 600.0,
) -> Path:
    """Merge every results dir under ``results_root`` into one Allure 3 report at ``out``.

    * ``results_root`` -- ``reports/allure-results``; each ``<session>/`` child holding results
      is merged (and ``results_root`` itself if it directly holds results);
    * ``single_file`` -- one self-contained ``out/index.html`` (mail/CI-artifact friendly)
      instead of ``index.html`` + data files;
    * ``history_path`` -- the Allure 3 JSON-lines history that carries trends and
      new/fixed/regressed marks between runs; default ``reports/allure-history/<out.name>.jsonl``
      next to ``out`` (one per variant so generating both does not count a run twice).

    Writes ``categories.json`` (and a default ``environment.properties`` if a session did not
    write one) into each results dir. Prints and returns ``out/index.html``. Raises
    :class:`ReportError` when there are no results or Allure fails.
    """
    results_dirs = find_results_dirs(results_root)
    if not results_dirs:
        raise ReportError(
            f"no Allure results under {results_root} (expected {results_root}/<session>/*-result.json); "
            "run a session first, e.g. `nox -s tests` (pytest --alluredir reports/allure-results/<session>)"
        )
    allure = ensure_allure_cli(cli_root)
    categories = load_categories(categories_file)
    for directory in results_dirs:
        write_categories(directory, categories_file)
        if not (directory / "environment.properties").exists():
            write_environment(directory, {"session": directory.name}, categories_file=categories_file)
    if history_path is None:
        history_path = out.parent / "allure-history" / f"{out.name}.jsonl"
    history_path.parent.mkdir(parents=True, exist_ok=True)
    _prepare_output(out)
    config = allure_config(
        out,
        single_file=single_file,
        history_path=history_path,
        categories=categories,
        name=name,
        variables=read_headlines(results_dirs),
    )
    with tempfile.TemporaryDirectory(prefix="flowgate-allurerc-") as tmp:
        rc = Path(tmp) / "allurerc.json"
        rc.write_text(json.dumps(config, indent=2), encoding="utf-8")
        cmd = [str(allure), "generate", "--config", str(rc), "--output", str(out), *map(str, results_dirs)]
        started = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=tmp)
        except subprocess.TimeoutExpired as exc:
            raise ReportError(f"allure generate timed out after {timeout:.0f}s: {' '.join(cmd)}") from exc
    index = out / "index.html"
    if proc.returncode != 0 or not index.exists():
        raise ReportError(
            f"allure generate failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    _log(f"generated in {time.monotonic() - started:.1f}s from {len(results_dirs)} results dir(s)")
    print(f"Allure report: {index}", flush=True)
    return index


@dataclass(frozen=True)
class ReportPaths:
    """What :func:`build_reports` produced."""

    report: Path
    single_file: Path | None
    screenshot: Path | None


def build_reports(
    results_root: Path = RESULTS_ROOT,
    reports_dir: Path = REPORTS_DIR,
    *,
    single_file: bool = True,
    screenshot_png: Path | None = None,
) -> ReportPaths:
    """Generate ``allure-report/`` (and ``allure-report-single/index.html``) under ``reports_dir``.

    With ``screenshot_png`` the overview is also rendered in headless Chromium to that PNG.
    This is what the ``report`` nox session and ``flowgate report`` run.
    """
    report = generate_report(results_root, reports_dir / "allure-report", single_file=False)
    single = (
        generate_report(results_root, reports_dir / "allure-report-single", single_file=True)
        if single_file
        else None
    )
    shot = screenshot(report.parent, screenshot_png) if screenshot_png is not None else None
    return ReportPaths(report=report, single_file=single, screenshot=shot)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flowgate.harness.report [--results DIR] [--out DIR] [--no-single-file] [--screenshot PNG] [--serve]``.

    Exit status 0 on success, 2 on a :class:`ReportError` (message on stderr).
    """
    parser = argparse.ArgumentParser(prog="flowgate report", description="Build the Allure 3 HTML report.")
    parser.add_argument(
        "--results", type=Path, default=RESULTS_ROOT, help="results root (default %(default)s)"
    )
    parser.add_argument("--out", type=Path, default=REPORTS_DIR, help="reports dir (default %(default)s)")
    parser.add_argument("--no-single-file", action="store_true", help="skip the single-file variant")
    parser.add_argument("--screenshot", type=Path, default=None, help="also save an overview PNG here")
    parser.add_argument("--serve", action="store_true", help="serve the report on 127.0.0.1 until Ctrl-C")
    args = parser.parse_args(argv)
    try:
        paths = build_reports(
            args.results, args.out, single_file=not args.no_single_file, screenshot_png=args.screenshot
        )
    except ReportError as exc:
        print(f"flowgate report: error: {exc}", file=sys.stderr)
        return 2
    if paths.single_file:
        print(f"Single-file report: {paths.single_file}")
    if paths.screenshot:
        print(f"Overview screenshot: {paths.screenshot}")
    if args.serve:
        serve_forever(paths.report.parent)
    return 0


def serve_forever(report_dir: Path) -> None:
    """Serve a multi-file report (which cannot be opened from ``file://``) until Ctrl-C."""
    with serve_directory(report_dir) as base, contextlib.suppress(KeyboardInterrupt):
        print(f"Serving {report_dir} at {base}index.html (Ctrl-C to stop)", flush=True)
        threading.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
