"""Which LocalStack ``flowgate localstack stop`` stops: the one flowgate started, recorded per
checkout and machine-wide, never a process that merely inherited a recorded pid."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowgate.harness import launcher


@pytest.fixture
def checkouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Two checkouts' report directories and one machine cache; starts in checkout ``a``."""
    a, b = tmp_path / "a" / "reports", tmp_path / "b" / "reports"
    monkeypatch.setenv("FLOWGATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(launcher, "REPORTS", a)
    monkeypatch.setattr(launcher, "STATE_FILE", a / "localstack.state.json")
    return a, b


def _switch_to(monkeypatch: pytest.MonkeyPatch, reports: Path) -> None:
    monkeypatch.setattr(launcher, "REPORTS", reports)
    monkeypatch.setattr(launcher, "STATE_FILE", reports / "localstack.state.json")


def _sleeper(marker: str) -> subprocess.Popen[bytes]:
    """A process whose command line ends with ``marker`` (a stand-in for LocalStack, or not),
    returned once it runs its own program (before its exec, /proc shows the parent's command)."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", marker], start_new_session=True
    )
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    deadline = time.monotonic() + 10
    while marker.encode() not in cmdline.read_bytes():
        assert time.monotonic() < deadline, "the stand-in process never started"
        time.sleep(0.01)
    return process


def test_a_localstack_started_from_another_checkout_is_stopped(
    checkouts: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = checkouts
    fake = _sleeper(launcher.LOCALSTACK_MAIN)
    try:
        launcher._save_state(launcher.Endpoint("http://127.0.0.1:4566", True, "host", pid=fake.pid))
        _switch_to(monkeypatch, b)  # checkout b has no record of its own
        assert launcher.stop() is True
        assert fake.wait(timeout=15) is not None
        assert not launcher._machine_state_file().exists()
        _switch_to(monkeypatch, a)  # a's own record now names a dead process: stale, dropped
        assert (a / "localstack.state.json").exists()
        assert launcher._load_state() is None
        assert not (a / "localstack.state.json").exists()
    finally:
        fake.kill()


def test_a_recorded_pid_that_is_not_localstack_is_left_alone(
    checkouts: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = checkouts
    other = _sleeper("not-the-emulator")
    try:
        launcher._save_state(launcher.Endpoint("http://127.0.0.1:4566", True, "host", pid=other.pid))
        assert launcher.stop() is False
        assert other.poll() is None  # still running
        # the stale records are gone, so the next stop does not look at that pid again
        assert not (a / "localstack.state.json").exists()
        assert not launcher._machine_state_file().exists()
    finally:
        other.kill()
        other.wait(timeout=15)


def test_nothing_recorded_means_nothing_to_stop(checkouts: tuple[Path, Path]) -> None:
    assert launcher.stop() is False
