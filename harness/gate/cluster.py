"""The implementation's processes (the gate's process supervisor): start an instance with the
contract's environment, pump its stdout into ``impl-<index>.log`` while watching for its ready line,
SIGKILL it, SIGTERM it within a grace period, and notice when one exits on its own.

Lifecycle anomalies it records (in :attr:`Cluster.anomalies`; the judge reports them as the
``lifecycle`` verdict): ``sigterm-timeout``, ``sigterm-exit-code``, ``crashed``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from flowgate.harness.checkers.model import Anomaly
from flowgate.harness.gate.replay import READY_TOKEN, parse_capabilities
from flowgate.harness.history import History


class GateError(RuntimeError):
    """The gate could not run (no backend, provisioning failed): exit code 3, no verdict."""


@dataclass(slots=True)
class Instance:
    index: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    delay_ms: int = 0
    phase: str = ""  # "" = the main cluster; else the phase that owns it (never a nemesis target)
    ready: threading.Event = field(default_factory=threading.Event)
    ready_at: float = 0.0  # time.monotonic() of its ready line
    capabilities: frozenset[str] = frozenset()  # declared on its ready line
    stopping: bool = False  # SIGTERM or SIGKILL sent by the gate
    killed: bool = False
    pump: threading.Thread | None = None


class Cluster:
    """The implementation's processes."""

    def __init__(self, argv: list[str], env: dict[str, str], out_dir: Path, history: History) -> None:
        self.argv, self.env, self.out_dir, self.history = argv, env, out_dir, history
        self.instances: list[Instance] = []
        self.anomalies: list[Anomaly] = []
        self.lock = threading.Lock()
        #: held by a transport outage for its whole cut; the nemesis takes it to start an instance,
        #: so no main instance starts while its endpoint is down
        self.boot_lock = threading.Lock()

    def start(
        self, index: int, delay_ms: int = 0, *, env: dict[str, str] | None = None, phase: str = ""
    ) -> Instance:
        """Start instance ``index`` (not waiting for it to be ready); ``env`` overrides the cluster's
        environment (a phase's own queue and endpoint)."""
        env = dict(
            self.env,
            **(env or {}),
            FLOWGATE_INSTANCE_ID=f"instance-{index}",
            FLOWGATE_HANDLER_DELAY_MS=str(delay_ms),
        )
        log = (self.out_dir / f"impl-{index}.log").open("ab")
        log.write(f"--- start {datetime.now(UTC).isoformat()} delay_ms={delay_ms} phase={phase}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                self.argv, env=env, stdout=subprocess.PIPE, stderr=log, start_new_session=True
            )
        except OSError as exc:
            raise GateError(f"cannot start implementation {self.argv!r}: {exc}") from exc
        inst = Instance(index, proc, log, delay_ms, phase)
        inst.pump = threading.Thread(target=self._pump, args=(inst,), daemon=True)
        inst.pump.start()
        with self.lock:
            self.instances.append(inst)
        self.history.append(
            "harness",
            "info",
            "start",
            {"instance": index, "pid": proc.pid, "delay_ms": delay_ms, **({"phase": phase} if phase else {})},
        )
        return inst

    @staticmethod
    def _pump(inst: Instance) -> None:
        assert inst.process.stdout is not None
        try:
            for line in inst.process.stdout:
                if line.startswith(READY_TOKEN.encode()) and not inst.ready.is_set():
                    inst.capabilities = parse_capabilities(line)
                    inst.ready_at = time.monotonic()
                    inst.ready.set()
                inst.log.write(line)
                inst.log.flush()
        finally:  # EOF: the process (and any child holding its stdout) is gone
            inst.process.stdout.close()
            inst.log.close()

    def close(self) -> None:
        """Wait for every output pump to reach EOF (all processes must have exited)."""
        with self.lock:
            instances = list(self.instances)
        for inst in instances:
            if inst.pump is not None:
                inst.pump.join(timeout=10)

    def live(self) -> list[Instance]:
        """Instances still running that the gate has not asked to stop."""
        with self.lock:
            return [i for i in self.instances if i.process.poll() is None and not i.stopping]

    def wait_ready(self, insts: list[Instance], timeout: float) -> None:
        """Wait until each of ``insts`` printed its ready line or exited, at most ``timeout``
        seconds in all (not each); returns without raising either way (check ``inst.ready``)."""
        deadline = time.monotonic() + timeout
        for inst in insts:
            while not inst.ready.is_set() and inst.process.poll() is None and time.monotonic() < deadline:
                inst.ready.wait(0.1)

    def kill(self, inst: Instance) -> None:
        """SIGKILL ``inst``'s process group and wait for the process to exit."""
        inst.stopping = inst.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(inst.process.pid, signal.SIGKILL)
        inst.process.wait()

    def terminate(self, inst: Instance, grace: float) -> int | None:
        """SIGTERM: the contract says finish in-flight work and exit 0 within the grace period.
        Blocks until the process exits or ``grace`` passes (then SIGKILL, ``sigterm-timeout``);
        returns the exit code (``None`` if it had to be killed)."""
        inst.stopping = True
        if inst.process.poll() is not None:
            return inst.process.returncode
        try:
            os.killpg(inst.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return inst.process.poll()
        try:
            code = inst.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.anomalies.append(
                Anomaly(
                    "sigterm-timeout",
                    f"instance {inst.index} (pid {inst.process.pid}) "
                    f"did not exit within {grace:.0f}s of SIGTERM; killed",
                )
            )
            self.kill(inst)
            return None
        if code != 0:
            self.anomalies.append(
                Anomaly(
                    "sigterm-exit-code",
                    f"instance {inst.index} exited {code} after SIGTERM (the contract says 0)",
                )
            )
        return code

    def check_crashes(self) -> None:
        """Record ``crashed`` for every instance that exited without the gate stopping it."""
        with self.lock:
            for inst in self.instances:
                code = inst.process.poll()
                if code is not None and not inst.stopping:
                    inst.stopping = True
                    self.anomalies.append(
                        Anomaly(
                            "crashed",
                            f"instance {inst.index} (pid {inst.process.pid}) "
                            f"exited {code} on its own; see impl-{inst.index}.log",
                        )
                    )
                    self.history.append("harness", "info", "exited", {"instance": inst.index, "code": code})
