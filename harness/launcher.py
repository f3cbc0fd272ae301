"""Start, find, and stop LocalStack without Docker.

Resolution order used by :func:`ensure_localstack` (and so by ``flowgate localstack start``,
the pytest session fixture and ``nox -s integration``):

1. ``AWS_ENDPOINT_URL`` (or ``FLOWGATE_ENDPOINT_URL``) is set and its
   ``/_localstack/health`` answers with sqs, sns, kms and sts available: use it as-is,
   start nothing, stop nothing. If it is set but does not answer, that is an error: the
   user asked for that endpoint, silently starting another would test the wrong thing.
2. Something already answers as LocalStack on 127.0.0.1:4566: reuse it (we did not start
   it, so we will not stop it).
3. The port is taken by something that is not LocalStack: clear error naming the port.
4. Otherwise start LocalStack in host mode: ``localstack-core`` in its own virtual
   environment (its pins conflict with ours; it needs Python >= 3.12), created on first use
   from ``localstack/requirements-host.lock.txt`` under the cache folder, then
   ``python -m localstack.runtime.main`` with ``SERVICES=sqs,sns,kms,sts`` and
   ``GATEWAY_LISTEN=127.0.0.1:4566``. Output goes to ``reports/localstack.log``. We wait at
   most ``start_timeout`` seconds for the health endpoint; if the process exits or the
   deadline passes we stop it and raise :class:`LauncherError` with what was tried and the
   last lines of the log -- never hang.

With ``mode="docker"`` (or ``FLOWGATE_LOCALSTACK_MODE=docker``) and a reachable Docker
engine, the official ``localstack/localstack`` image is started through the ``docker`` SDK
instead (``localstack/docker-compose.yml`` documents the same container for compose users).

A small state file (``reports/localstack.state.json``, and a machine-wide copy in the cache
directory, ``~/.cache/flowgate/localstack-4566.state.json``) remembers the process we started so
``flowgate localstack stop|status`` in another process -- or another checkout: a load run leaves
the LocalStack it started running for the next run -- can find it. A record whose pid is gone or
no longer runs LocalStack is dropped, never acted on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

REQUIRED_SERVICES = ("sqs", "sns", "kms", "sts")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4566
REPO_ROOT = Path(__file__).resolve().parent.parent
LOCK_FILE = REPO_ROOT / "localstack" / "requirements-host.lock.txt"
REPORTS = REPO_ROOT / "reports"
LOG_FILE = REPORTS / "localstack.log"
STATE_FILE = REPORTS / "localstack.state.json"
#: the module a host-mode LocalStack runs as (what its command line contains)
LOCALSTACK_MAIN: Final = "localstack.runtime.main"


#: LocalStack processes started by this interpreter, kept so they are reaped (waited for) when
#: stopped instead of being garbage-collected while running
_STARTED: dict[int, subprocess.Popen[bytes]] = {}


class LauncherError(RuntimeError):
    """LocalStack could not be found or started; the message says what was tried."""


@dataclass(frozen=True)
class Endpoint:
    """A LocalStack endpoint and whether this launcher owns (and so must stop) it."""

    url: str
    started_here: bool
    source: str  # "env", "running", "host", "docker"
    pid: int | None = None
    container: str | None = None
    version: str | None = None


def _progress(message: str) -> None:
    print(f"[flowgate localstack] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    root = os.environ.get("FLOWGATE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "flowgate"
    )
    return Path(root)


def health(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The parsed ``/_localstack/health`` document, or ``None`` when nothing answers as LocalStack."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/_localstack/health", timeout=timeout) as resp:
            document = json.loads(resp.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return document if isinstance(document, dict) and "services" in document else None


def services_ready(document: dict[str, Any] | None) -> bool:
    if not document:
        return False
    services = document.get("services", {})
    return all(services.get(name) in ("available", "running") for name in REQUIRED_SERVICES)


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def find_python() -> str:
    """A Python >= 3.12 for LocalStack's venv: FLOWGATE_LOCALSTACK_PYTHON, PATH, then pyenv."""
    candidates: list[str] = []
    if explicit := os.environ.get("FLOWGATE_LOCALSTACK_PYTHON"):
        candidates.append(explicit)
    candidates += [p for name in ("python3.13", "python3.12") if (p := shutil.which(name))]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv")))
    for version_dir in sorted((pyenv_root / "versions").glob("3.1[2-9]*"), reverse=True):
        candidates.append(str(version_dir / "bin" / "python"))
    tried: list[str] = []
    for candidate in candidates:
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys, venv; print(sys.version_info >= (3, 12))"],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            tried.append(f"{candidate} (not runnable)")
            continue
        if out.returncode == 0 and out.stdout.strip() == "True":
            return candidate
        tried.append(f"{candidate} (exit {out.returncode}: {out.stderr.strip()[:80]})")
    raise LauncherError(
        "LocalStack host mode needs Python >= 3.12 (newer LocalStack releases do not run on 3.11). "
        f"Tried: {', '.join(tried) or 'nothing found on PATH or under pyenv'}. Install one "
        "(e.g. `pyenv install 3.13`) or set FLOWGATE_LOCALSTACK_PYTHON to its interpreter."
    )


def venv_dir() -> Path:
    digest = hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()[:10]
    return cache_dir() / f"localstack-venv-{digest}"


def ensure_venv() -> Path:
    """LocalStack's own venv, created from the lock file on first use (~45 s, progress shown)."""
    target = venv_dir()
    python = target / "bin" / "python"
    marker = target / ".flowgate-complete"
    if marker.exists() and python.exists():
        return python
    interpreter = find_python()
    _progress(f"creating LocalStack venv with {interpreter} at {target} (first use, about a minute)")
    if target.exists():
        shutil.rmtree(target)
    started = time.monotonic()
    subprocess.run([interpreter, "-m", "venv", str(target)], check=True)
    result = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "-q",
            "-r",
            str(LOCK_FILE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise LauncherError(
            f"installing LocalStack from {LOCK_FILE} into {target} failed "
            f"(exit {result.returncode}):\n{result.stderr[-2000:]}"
        )
    marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    _progress(f"LocalStack venv ready in {time.monotonic() - started:.0f} s")
    return python


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _state_file(url: str | None = None) -> Path:
    """The state file of the instance at ``url``: the default port's is :data:`STATE_FILE`.

    Instances on other ports (chaos scenarios restart their own) keep their own file, so they
    never overwrite the record of the main instance.
    """
    port = urllib.parse.urlsplit(url).port if url else DEFAULT_PORT
    return STATE_FILE if port in (None, DEFAULT_PORT) else REPORTS / f"localstack-{port}.state.json"


def _machine_state_file(url: str | None = None) -> Path:
    """The machine-wide record of the instance at ``url`` (in :func:`cache_dir`), so that a
    LocalStack started from one checkout (say a fresh clone's load run, which leaves it running
    for the next run) can be found and stopped from another."""
    port = urllib.parse.urlsplit(url).port if url else DEFAULT_PORT
    return cache_dir() / f"localstack-{port or DEFAULT_PORT}.state.json"


def _save_state(endpoint: Endpoint) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(asdict(endpoint), indent=2)
    _state_file(endpoint.url).write_text(text)
    machine = _machine_state_file(endpoint.url)
    with contextlib.suppress(OSError):
        machine.parent.mkdir(parents=True, exist_ok=True)
        machine.write_text(text)


def _load_state() -> Endpoint | None:
    """The record of the default-port instance: this checkout's, else the machine-wide one.

    A record whose process is gone, or whose pid now belongs to something that is not LocalStack
    (pids are reused), is stale: it is deleted and skipped."""
    for path in (STATE_FILE, _machine_state_file()):
        try:
            endpoint = Endpoint(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if endpoint.pid is None or _is_localstack(endpoint.pid):
            return endpoint
        with contextlib.suppress(OSError):
            path.unlink()
    return None


def _is_localstack(pid: int) -> bool:
    """``pid`` is alive and runs LocalStack (its command line names :data:`LOCALSTACK_MAIN`;
    without ``/proc``, a live pid is trusted)."""
    if not _pid_alive(pid):
        return False
    try:
        return LOCALSTACK_MAIN.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_ready(url: str, deadline: float, process: subprocess.Popen[bytes] | None) -> dict[str, Any]:
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise LauncherError(
                f"LocalStack exited with code {process.returncode} before becoming ready. "
                f"Log: {LOG_FILE}\n{_tail(LOG_FILE)}"
            )
        last = health(url)
        if services_ready(last):
            assert last is not None
            return last
        time.sleep(0.5)
    states = (last or {}).get("services", {})
    missing = {name: states.get(name, "no answer") for name in REQUIRED_SERVICES}
    raise LauncherError(
        f"LocalStack at {url} was not ready in time (services: {missing}). Log: {LOG_FILE}\n{_tail(LOG_FILE)}"
    )


def start_host(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, start_timeout: float = 90.0) -> Endpoint:
    python = ensure_venv()
    url = f"http://{host}:{port}"
    REPORTS.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SERVICES": ",".join(REQUIRED_SERVICES),
        "GATEWAY_LISTEN": f"{host}:{port}",
        "EAGER_SERVICE_LOADING": "1",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DISABLE_EVENTS": "1",
        "LOCALSTACK_CLI": "0",
        # one INFO line per API call ("AWS sqs.ReceiveMessage => 200") cost ~7 % of LocalStack's
        # samples under load (error responses are INFO lines too; LocalStack's own warnings and
        # errors still log). Set LOG_LEVEL_OVERRIDES yourself (e.g. to "") to get them back.
        "LOG_LEVEL_OVERRIDES": os.environ.get(
            "LOG_LEVEL_OVERRIDES", "localstack.request.aws=WARNING,localstack.request.http=WARNING"
        ),
    }
    env.pop("AWS_ENDPOINT_URL", None)
    _progress(f"starting host-mode LocalStack on {url} (log: {LOG_FILE})")
    with LOG_FILE.open("ab") as log:
        process = subprocess.Popen(
            [str(python), "-m", LOCALSTACK_MAIN],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            cwd=str(cache_dir()),
        )
    _STARTED[process.pid] = process
    started = time.monotonic()
    try:
        document = _wait_ready(url, started + start_timeout, process)
    except BaseException:
        _terminate(process.pid)
        raise
    endpoint = Endpoint(url, True, "host", pid=process.pid, version=str(document.get("version")))
    _save_state(endpoint)
    _progress(
        f"LocalStack {endpoint.version} ready in {time.monotonic() - started:.1f} s (pid {process.pid})"
    )
    return endpoint


def start_docker(port: int = DEFAULT_PORT, start_timeout: float = 120.0) -> Endpoint:
    try:
        import docker  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise LauncherError(
            "docker mode needs the docker SDK: pip install 'flowgate-harness[docker]'"
        ) from exc
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise LauncherError(f"docker mode: no Docker engine reachable ({exc}); use host mode") from exc
    container = client.containers.run(
        "localstack/localstack:4",
        detach=True,
        remove=True,
        name=f"flowgate-localstack-{port}",
        ports={"4566/tcp": ("127.0.0.1", port)},
        environment={"SERVICES": ",".join(REQUIRED_SERVICES)},
    )
    url = f"http://{DEFAULT_HOST}:{port}"
    document = _wait_ready(url, time.monotonic() + start_timeout, None)
    endpoint = Endpoint(url, True, "docker", container=container.id, version=str(document.get("version")))
    _save_state(endpoint)
    return endpoint


def ensure_localstack(*, mode: str | None = None, start_timeout: float = 90.0) -> Endpoint:
    """Find or start a LocalStack endpoint as described in the module docstring."""
    configured = os.environ.get("FLOWGATE_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    if configured:
        document = health(configured)
        if services_ready(document):
            assert document is not None
            return Endpoint(configured, False, "env", version=str(document.get("version")))
        raise LauncherError(
            f"AWS_ENDPOINT_URL={configured} is set but its /_localstack/health does not report "
            f"{', '.join(REQUIRED_SERVICES)} available (answer: {document}). Start it, or unset "
            "AWS_ENDPOINT_URL to let flowgate start LocalStack itself."
        )
    url = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
    document = health(url)
    if document is not None:
        if not services_ready(document):
            document = _wait_ready(url, time.monotonic() + start_timeout, None)
        return Endpoint(url, False, "running", version=str(document.get("version")))
    if port_open(DEFAULT_HOST, DEFAULT_PORT):
        raise LauncherError(
            f"port {DEFAULT_PORT} on {DEFAULT_HOST} is taken by something that is not LocalStack "
            "(no /_localstack/health answer). Stop it, or set AWS_ENDPOINT_URL to a running LocalStack."
        )
    mode = mode or os.environ.get("FLOWGATE_LOCALSTACK_MODE", "host")
    if mode == "docker":
        return start_docker(start_timeout=max(start_timeout, 120.0))
    if mode != "host":
        raise LauncherError(f"unknown LocalStack mode {mode!r}: use 'host' or 'docker'")
    return start_host(start_timeout=start_timeout)


def _terminate(pid: int, grace: float = 10.0) -> None:
    process = _STARTED.pop(pid, None)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    if process is not None:
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            process.wait(timeout=grace)
            return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _pid_alive(pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def stop(endpoint: Endpoint | None = None) -> bool:
    """Stop LocalStack if flowgate started it: ``endpoint``, else the recorded instance on the
    default port (this checkout's record, else the machine-wide one: see :func:`_load_state`)."""
    endpoint = endpoint or _load_state()
    if endpoint is None or not endpoint.started_here:
        return False
    if endpoint.pid is not None:
        _terminate(endpoint.pid)
    if endpoint.container is not None:
        with contextlib.suppress(Exception):
            import docker  # type: ignore[import-not-found,unused-ignore]

            docker.from_env().containers.get(endpoint.container).stop(timeout=10)
    for record in (_state_file(endpoint.url), _machine_state_file(endpoint.url)):
        with contextlib.suppress(OSError):
            record.unlink()
    _progress(f"stopped LocalStack at {endpoint.url}")
    return True


def restart(endpoint: Endpoint, start_timeout: float = 90.0) -> Endpoint:
    """Stop and start a LocalStack this launcher owns (chaos: all state is lost)."""
    if not endpoint.started_here:
        raise LauncherError("cannot restart a LocalStack this launcher did not start")
    where = urllib.parse.urlsplit(endpoint.url)
    stop(endpoint)
    return start_host(where.hostname or DEFAULT_HOST, where.port or DEFAULT_PORT, start_timeout=start_timeout)


def status() -> dict[str, Any]:
    """What ``flowgate localstack status`` prints: endpoint, health, ownership, venv, log."""
    state = _load_state()
    configured = os.environ.get("FLOWGATE_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    url = configured or (state.url if state else f"http://{DEFAULT_HOST}:{DEFAULT_PORT}")
    document = health(url)
    return {
        "endpoint": url,
        "answering": document is not None,
        "ready": services_ready(document),
        "version": (document or {}).get("version"),
        "services": {k: (document or {}).get("services", {}).get(k) for k in REQUIRED_SERVICES},
        "started_by_flowgate": bool(state and state.started_here and state.pid and _pid_alive(state.pid)),
        "pid": state.pid if state else None,
        "venv": str(venv_dir()),
        "venv_ready": (venv_dir() / ".flowgate-complete").exists(),
        "log": str(LOG_FILE),
    }


@contextlib.contextmanager
def localstack(*, mode: str | None = None) -> Iterator[Endpoint]:
    """Context manager: ensure an endpoint, stop it afterwards only if it was started here."""
    endpoint = ensure_localstack(mode=mode)
    try:
        yield endpoint
    finally:
        if endpoint.started_here:
            stop(endpoint)
