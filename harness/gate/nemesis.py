"""The gate's nemesis: the profile's fault schedule against the implementation's main cluster.

Two threads, both started by the gate at ``t0`` and both ending early when the run's ``done`` is
set: :meth:`Nemesis.run_faults` (SIGKILL + restart, slow-handler windows) and
:meth:`Nemesis.run_outages` (transport outages through the :class:`~flowgate.harness.gate.proxy.OutageProxy`
the main cluster talks through, KMS key outages and KMS transport outages, contract sections 5
and 9), one after another. Every fault is recorded as nemesis ops at its start and end.
"""

from __future__ import annotations

import threading
import time

from botocore.exceptions import BotoCoreError, ClientError

from flowgate.harness.gate.probe import Probe
from flowgate.harness.gate.proxy import OutageProxy
from flowgate.harness.gate.sender import Sender
from flowgate.harness.gate.state import RunState
from flowgate.harness.gate.workload import Fault

#: No transport outage starts sooner than this after a main instance's ready line (section 9).
OUTAGE_READY_MARGIN = 5.0
#: Faults run by the outage thread (one after another), not by the nemesis thread.
OUTAGE_KINDS = frozenset({"outage", "kms-outage"})
#: seconds between the end of a KMS key outage and the KMS transport outage (v1.4): long enough for
#: a breaker that backs off after the key outage to probe, close and receive again
KMS_TRANSPORT_GAP = 10.0


class Nemesis:
    """Injects the faults of the run in ``state``. ``proxy`` / ``kms_proxy``: the main cluster's
    endpoint and KMS endpoint proxies (None on real AWS: those outages are skipped, and said so in
    ``state.skipped``). ``phases``: the heartbeat and shutdown phase threads a KMS outage waits for
    (their instances use the same key); filled by the gate before the outage thread starts."""

    def __init__(
        self,
        state: RunState,
        sender: Sender,
        probe: Probe,
        *,
        proxy: OutageProxy | None,
        kms_proxy: OutageProxy | None,
        phases: list[threading.Thread],
    ) -> None:
        self.s, self.sender, self.probe = state, sender, probe
        self.proxy, self.kms_proxy, self.phases = proxy, kms_proxy, phases

    def run_faults(self, faults: list[Fault], t0: float, done: threading.Event) -> None:
        """The nemesis thread: each ``kill`` (SIGKILL a main instance, restart it 1 s later),
        ``slow`` and ``slow-kill`` fault (an extra instance whose handler outlasts the visibility
        timeout, ended after ``slow_window_seconds`` by SIGTERM -- grace ``max(30 s, 12 x delay)``
        -- or, mid-handler, by SIGKILL) at ``t0 + fault.at``. Returns as soon as ``done`` is set."""
        vt = self.s.profile.visibility_timeout
        for fault in faults:
            if done.wait(max(0.0, t0 + fault.at - time.monotonic())):
                return
            if fault.kind == "kill":
                main = [i for i in self.s.cluster.live() if i.delay_ms == 0 and not i.phase]
                targets = [i for i in main if i.index == fault.instance] or main
                if not targets:
                    continue
                victim = targets[0]
                self.s.history.nemesis(
                    "kill", {"instance": victim.index, "pid": victim.process.pid, "signal": "SIGKILL"}
                )
                self.s.cluster.kill(victim)
                time.sleep(1.0)
                with self.s.cluster.boot_lock:
                    fresh = self.s.cluster.start(victim.index)
                self.s.history.nemesis("restart", {"instance": victim.index, "pid": fresh.process.pid})
            elif fault.kind in ("slow", "slow-kill"):
                delay = vt * 1000 + 1500
                with self.s.cluster.boot_lock:
                    slow = self.s.cluster.start(fault.instance, delay_ms=delay)
                self.s.history.nemesis(
                    "stall",
                    {
                        "instance": fault.instance,
                        "delay_ms": delay,
                        "visibility_timeout": vt,
                        "window": self.s.profile.slow_window_seconds,
                        "ends_with": "SIGKILL" if fault.kind == "slow-kill" else "SIGTERM",
                    },
                )
                if done.wait(self.s.profile.slow_window_seconds):
                    if fault.kind == "slow-kill" and slow.process.poll() is None:
                        self.s.cluster.kill(slow)
                    return
                if (
                    fault.kind == "slow-kill"
                ):  # a crash in the middle of a (slow) handler: nothing may be lost
                    self.s.history.nemesis(
                        "kill",
                        {
                            "instance": fault.instance,
                            "pid": slow.process.pid,
                            "signal": "SIGKILL",
                            "mid_handler": True,
                        },
                    )
                    self.s.cluster.kill(slow)
                else:
                    self.s.cluster.terminate(slow, grace=max(30.0, 12 * delay / 1000))
                self.s.history.nemesis("stall_end", {"instance": fault.instance})

    def run_outages(self, faults: list[Fault], t0: float, done: threading.Event) -> None:
        """The outage thread: each ``outage`` (transport) and ``kms-outage`` fault at its time, one
        after another, each ``profile.outage_seconds`` (10 x VT) long. A transport outage starts
        not before every live main instance has been ready for :data:`OUTAGE_READY_MARGIN` (waiting
        at most 60 s for that) and holds the cluster's ``boot_lock`` for the whole cut, so the
        nemesis starts no instance while the endpoint is down; without a proxy (real AWS) it is
        skipped. A KMS outage first waits (at most 150 s) for the heartbeat and shutdown phases to
        end (their instances use the same key). An outage is never shortened: the endpoint or the
        key is restored before the next step, even when the run ends meanwhile."""
        for fault in faults:
            if done.wait(max(0.0, t0 + fault.at - time.monotonic())):
                return
            if fault.kind == "kms-outage":
                give_up = time.monotonic() + 150.0
                for thread in self.phases:
                    thread.join(timeout=max(0.0, give_up - time.monotonic()))
                if done.is_set():
                    return
                self._kms_outage(fault.instance)
                continue
            if self.proxy is None:
                self.s.history.nemesis("outage_skipped", {"why": "no endpoint to cut (real AWS: no proxy)"})
                self.s.skipped["transport-outage"] = "not injected: the gate has no proxy on real AWS"
                continue
            give_up = time.monotonic() + 60.0
            while True:
                self.s.cluster.boot_lock.acquire()
                now = time.monotonic()
                main = [i for i in self.s.cluster.live() if not i.phase]
                if (
                    all(i.ready.is_set() and now - i.ready_at >= OUTAGE_READY_MARGIN for i in main)
                    or now > give_up
                ):
                    break
                self.s.cluster.boot_lock.release()
                if done.wait(0.5):
                    return
            try:
                self._cut(self.proxy, self.s.profile.outage_seconds, [i.index for i in main], fault.instance)
            finally:
                self.s.cluster.boot_lock.release()

    def _cut(self, proxy: OutageProxy, seconds: float, instances: list[int], number: int = 0) -> None:
        """One transport outage: cut, send the outage's new orders (the gate's own clients go
        direct), ``seconds`` of downtime, restore; both ends recorded as nemesis ops."""
        severed = proxy.cut()
        orders = self.s.orders(f"outage-{number}")
        self.s.history.nemesis(
            "outage",
            {
                "endpoint": proxy.url,
                "seconds": seconds,
                "connections_closed": severed,
                "instances": instances,
                "orders": [c.entity_id for c in orders],
            },
        )
        ends = time.monotonic() + seconds
        for c in orders:
            self.sender.send_command(c)
        time.sleep(max(0.0, ends - time.monotonic()))
        proxy.restore()
        self.s.history.nemesis("outage_end", {"endpoint": proxy.url, "connections_refused": proxy.refused})

    def _kms_outage(self, number: int) -> None:
        """One KMS outage (contract v1.2 sections 5 and 9): the outage's new orders are sealed while
        the key works, then the probe pauses (it cannot open events either), the gate calls
        ``DisableKey`` on the run's key, sends the orders at once (they are received while the key
        is disabled: GenerateDataKey and Decrypt fail with ``DisabledException``, a transient
        failure that MUST NOT dead-letter them), waits ``outage_seconds`` and calls ``EnableKey``.
        Nemesis ops ``kms_outage`` / ``kms_outage_end``."""
        key, seconds = self.s.prov.kms_key_id, self.s.profile.outage_seconds
        orders = self.s.orders(f"kms-outage-{number}")
        wires = [self.sender.wire_command(c, self.s.main_queue) for c in orders]
        with self.probe.lock:
            self.probe.kms_down.set()
        try:
            self.s.kms.disable_key(KeyId=key)
            self.s.history.nemesis(
                "kms_outage",
                {"key_id": key, "seconds": seconds, "orders": [c.entity_id for c in orders]},
            )
            ends = time.monotonic() + seconds
            for c, wire in zip(orders, wires, strict=True):
                self.sender.send_command(c, wire=wire)
            time.sleep(max(0.0, ends - time.monotonic()))
        finally:
            for attempt in range(5):
                try:
                    self.s.kms.enable_key(KeyId=key)
                    break
                except (ClientError, BotoCoreError):
                    if attempt == 4:
                        raise
                    time.sleep(1.0)
            self.probe.kms_down.clear()
            self.s.history.nemesis("kms_outage_end", {"key_id": key})
        self._kms_transport_outage(number)

    def _kms_transport_outage(self, number: int) -> None:
        """v1.4 (contract sections 5 and 9): after the key outage, once the implementation had
        ``KMS_TRANSPORT_GAP`` seconds to close its breaker, the gate cuts the implementation's KMS
        endpoint (its own proxy, ``FLOWGATE_KMS_ENDPOINT_URL``; SQS and SNS keep working) for
        ``outage_seconds``: connections are closed and refused, so Decrypt and GenerateDataKey fail
        with transport errors -- transient, never a reason to dead-letter. The outage's orders are
        sealed before and sent at the cut, so they are received while KMS cannot be reached.
        Skipped (and said so) without a proxy (real AWS). Nemesis ops ``kms_transport_outage`` /
        ``kms_transport_outage_end``."""
        if self.kms_proxy is None:
            self.s.history.nemesis("kms_transport_outage_skipped", {"why": "no KMS proxy (real AWS)"})
            self.s.skipped["kms-transport-outage"] = "not injected: the gate has no proxy on real AWS"
            return
        orders = self.s.orders(f"kms-transport-{number}")
        wires = [self.sender.wire_command(c, self.s.main_queue) for c in orders]
        time.sleep(KMS_TRANSPORT_GAP)
        severed = self.kms_proxy.cut()
        seconds = self.s.profile.outage_seconds
        self.s.history.nemesis(
            "kms_transport_outage",
            {
                "endpoint": self.kms_proxy.url,
                "seconds": seconds,
                "connections_closed": severed,
                "orders": [c.entity_id for c in orders],
            },
        )
        ends = time.monotonic() + seconds
        try:
            for c, wire in zip(orders, wires, strict=True):
                self.sender.send_command(c, wire=wire)
            time.sleep(max(0.0, ends - time.monotonic()))
        finally:
            self.kms_proxy.restore()
            self.s.history.nemesis(
                "kms_transport_outage_end",
                {"endpoint": self.kms_proxy.url, "connections_refused": self.kms_proxy.refused},
            )
