"""The report in headless Debian Chromium: find (or apt-install) the browser, serve a generated
Allure report from a throw-away ``http.server`` on 127.0.0.1, and take a screenshot, dump its DOM
or read its overview counters -- so tests can check what a reviewer sees. Offline flags
(:data:`CHROMIUM_FLAGS`); every browser call has a timeout and raises :class:`ReportError` with
what to do about a failure. Used through :mod:`flowgate.harness.report`, which re-exports these names.
"""

from __future__ import annotations

import contextlib
import functools
import html.parser
import http.server
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

#: Where :func:`screenshot` writes by default (``reports/allure-overview.png``).
OVERVIEW_PNG: Final = Path(__file__).resolve().parents[1] / "reports" / "allure-overview.png"
CHROMIUM_INSTALL_HINT: Final = "sudo apt-get update && sudo apt-get install -y chromium"

CHROMIUM_FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)


class ReportError(RuntimeError):
    """A reporting step failed; the message says what to do about it."""


def _log(message: str) -> None:
    print(f"[flowgate report] {message}", file=sys.stderr, flush=True)


def ensure_chromium(*, install: bool = True) -> str:
    """Return a Chromium executable, installing Debian's ``chromium`` when root with apt-get.

    ``FLOWGATE_CHROMIUM`` may name the browser explicitly. Raises :class:`ReportError` with the
    exact install command when no browser can be had.
    """
    override = os.environ.get("FLOWGATE_CHROMIUM")
    if override:
        if shutil.which(override) is None and not Path(override).exists():
            raise ReportError(f"FLOWGATE_CHROMIUM={override} not found")
        return override
    for candidate in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(candidate)
        if found:
            return found
    apt = shutil.which("apt-get")
    if install and apt and os.geteuid() == 0:
        _log("chromium not found; installing it with `apt-get install -y chromium` ...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", "chromium"]):
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if proc.returncode != 0:
                raise ReportError(
                    f"`{' '.join(cmd)}` failed (exit {proc.returncode}); install Chromium with: "
                    f"{CHROMIUM_INSTALL_HINT}\n{proc.stderr[-2000:]}"
                )
        found = shutil.which("chromium")
        if found:
            return found
    raise ReportError(
        f"Chromium not found; install it with: {CHROMIUM_INSTALL_HINT} (or set FLOWGATE_CHROMIUM)"
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on ``http://127.0.0.1:<random port>/`` for the duration of the block."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="flowgate-report-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _report_root(report: Path) -> Path:
    return report.parent if report.is_file() else report


def _run_chromium(args: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    browser = ensure_chromium()
    with tempfile.TemporaryDirectory(prefix="flowgate-chromium-") as profile:
        cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ReportError(f"chromium timed out after {timeout:.0f}s: {' '.join(cmd)}") from exc


def screenshot(
    report_dir: Path,
    png_path: Path = OVERVIEW_PNG,
    *,
    width: int = 1440,
    height: int = 1400,
    budget_ms: int = 15000,
    timeout: float = 120.0,
    route: str = "",
) -> Path:
    """Render the report's overview page in headless Chromium and save it as ``png_path``.

    ``report_dir`` is a generated report directory (or its ``index.html``); it is served over
    a local ``http.server`` because the multi-file report fetches its data with XHR, which
    Chromium refuses on ``file://``. ``route`` renders another page of the report instead of
    the overview: Allure 3's hash route, e.g. ``"#/globalAttachments"`` (the run-level
    attachments) or ``"#/<test result id>"`` (one result). Returns ``png_path``.
    """
    root = _report_root(report_dir)
    png_path = png_path.resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    if png_path.exists():
        png_path.unlink()
    with serve_directory(root) as base:
        proc = _run_chromium(
            [
                f"--window-size={width},{height}",
                f"--virtual-time-budget={budget_ms}",
                f"--screenshot={png_path}",
                base + "index.html" + route,
            ],
            timeout=timeout,
        )
    if not png_path.exists() or png_path.stat().st_size == 0:
        raise ReportError(
            f"chromium did not write {png_path} (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    return png_path


def dump_dom(report_dir: Path, *, budget_ms: int = 15000, timeout: float = 120.0, route: str = "") -> str:
    """The report's overview DOM (or ``route``'s page, see :func:`screenshot`) after JavaScript
    ran (``chromium --dump-dom``)."""
    root = _report_root(report_dir)
    with serve_directory(root) as base:
        proc = _run_chromium(
            [
                "--window-size=1440,1000",
                f"--virtual-time-budget={budget_ms}",
                "--dump-dom",
                base + "index.html" + route,
            ],
            timeout=timeout,
        )
    if proc.returncode != 0 or "<" not in proc.stdout:
        raise ReportError(f"chromium --dump-dom failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


class _TextExtractor(html.parser.HTMLParser):
    _SKIP: Final = frozenset({"script", "style", "noscript", "template"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def html_text(document: str) -> str:
    """Visible text of an HTML document, one text node per line."""
    parser = _TextExtractor()
    parser.feed(document)
    return "\n".join(parser.parts)


def overview_text(report_dir: Path, *, budget_ms: int = 15000, attempts: int = 3) -> str:
    """The rendered overview's visible text, for assertions on what a reviewer sees.

    Chromium's ``--virtual-time-budget`` advances virtual time only while the page is idle, so on
    a loaded machine the dump can come back before the report's scripts fetched and drew the
    summary (no status counters in the text). Such a dump is taken again with twice the budget,
    up to ``attempts`` dumps in all; the last text is returned whatever it shows, so a report
    that really lacks its counters still fails the caller's assertion.
    """
    text = ""
    for attempt in range(max(1, attempts)):
        text = html_text(dump_dom(report_dir, budget_ms=budget_ms * 2**attempt))
        if overview_counts(text):
            break
    return text


OVERVIEW_COUNTERS: Final = ("Total", "Failed", "Broken", "Passed", "Skipped")


def overview_counts(text: str) -> dict[str, int]:
    """The status counters of the overview summary (first ``<label>`` line followed by a number).

    ``{"Total": 6, "Failed": 1, "Broken": 1, "Passed": 3, "Skipped": 1}``; a counter the report
    does not show (e.g. ``Broken`` when nothing broke) is absent.
    """
    lines = [line.strip() for line in text.splitlines()]
    counts: dict[str, int] = {}
    for here, after in itertools.pairwise(lines):
        if here in OVERVIEW_COUNTERS and here not in counts and after.isdigit():
            counts[here] = int(after)
    return counts


# --------------------------------------------------------------------------------------------------
# command line: python -m flowgate.harness.report
# --------------------------------------------------------------------------------------------------
