"""The gate's phases on their own queues (contract sections 1, 4 and 9): the heartbeat phase (a
handler longer than the visibility timeout: only a heartbeat keeps the message) and the shutdown
phase (SIGTERM with messages in hand and queued behind their group's head). Each runs in its own
thread with its own instances and queue, independent of the main cluster's faults, and returns
early when the run is over (``done``), so it never holds the settle loop past its timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from flowgate.harness import topology as topo
from flowgate.harness.checkers.model import Anomaly
from flowgate.harness.gate.cluster import GateError, Instance
from flowgate.harness.gate.sender import Sender
from flowgate.harness.gate.state import RunState
from flowgate.harness.gate.workload import REDRIVE_HEADROOM, PlannedCommand, Profile


def phase_specs(p: Profile, fifo: bool) -> dict[str, topo.QueueSpec]:
    """The dedicated queue of each phase the profile ``p`` runs (visibility, redrive threshold);
    ``fifo``: whether the run's command queue is FIFO (the phase queues are alike)."""
    suffix = ".fifo" if fifo else ""

    def spec(phase: str, visibility: int, max_receive: int, headroom: int) -> topo.QueueSpec:
        return topo.QueueSpec(
            f"{phase}-commands{suffix}",
            fifo=fifo,
            visibility_timeout=visibility,
            dlq_name=f"{phase}-dlq{suffix}",
            max_receive_count=max_receive,
            redrive_headroom=headroom,
        )

    specs: dict[str, topo.QueueSpec] = {}
    if p.heartbeat_orders:  # headroom 1: this phase tests exactly SQS's native redrive
        specs["heartbeat"] = spec("heartbeat", p.heartbeat_visibility, p.heartbeat_max_receive, 1)
    if p.shutdown_orders:
        specs["shutdown"] = spec("shutdown", p.shutdown_visibility, p.max_receive_count, REDRIVE_HEADROOM)
    return specs


class Phases:
    """Runs the phases of the run in ``state`` whose queues were provisioned; :attr:`threads` are
    the running phase threads (the settler counts them as busy, a KMS outage waits for them)."""

    def __init__(self, state: RunState, sender: Sender) -> None:
        self.s, self.sender = state, sender
        self.threads: list[threading.Thread] = []

    def _phase_env(self, queue: topo.CommandQueue) -> dict[str, str]:
        """A phase instance's environment: the contract's, pointed at the phase's queue, with the
        real endpoint (a phase is independent of the main cluster's transport outages)."""
        env = {
            "FLOWGATE_COMMAND_QUEUE_URL": queue.url,
            "FLOWGATE_COMMAND_QUEUE_NAME": queue.name,
            "FLOWGATE_DEAD_LETTER_QUEUE_URL": queue.dlq_url,
            "FLOWGATE_VISIBILITY_TIMEOUT": str(queue.visibility_timeout),
            "FLOWGATE_MAX_RECEIVE_COUNT": str(queue.max_receive_count),
            "FLOWGATE_REDRIVE_MAX_RECEIVE_COUNT": str(queue.redrive_max_receive_count),
        }
        if self.s.endpoint:
            env.update(AWS_ENDPOINT_URL=self.s.endpoint, FLOWGATE_ENDPOINT_URL=self.s.endpoint)
            env.update(AWS_ENDPOINT_URL_KMS=self.s.endpoint, FLOWGATE_KMS_ENDPOINT_URL=self.s.endpoint)
        return env

    def _start_phase_instance(self, phase: str, index: int, delay_ms: int) -> Instance:
        """Start one instance on ``phase``'s queue and wait (up to 30 s) for its ready line."""
        queue = self.s.phase_queues[phase]
        inst = self.s.cluster.start(index, delay_ms, env=self._phase_env(queue), phase=phase)
        self.s.cluster.wait_ready([inst], timeout=30.0)
        return inst

    def _wait_effects(self, commands: list[PlannedCommand], timeout: float, done: threading.Event) -> bool:
        """Wait until the probe has seen an effect of every one of ``commands``, for at most
        ``timeout`` seconds, returning early (False) when ``done`` is set (the run is over)."""
        wanted = {c.command_id for c in commands}
        deadline = time.monotonic() + timeout
        while not wanted <= self.s.effects_seen:
            if time.monotonic() >= deadline or done.wait(0.25):
                return False
        return True

    def _phase_heartbeat(self, index: int, done: threading.Event) -> None:
        """Heartbeat phase (contract sections 4 and 9). ONE instance on a queue with a short
        visibility timeout ``VT`` and redrive threshold ``M`` handles new orders with a handler
        delay > (M + 1) x VT. Only a worker that extends the visibility (heartbeat) keeps them
        invisible; otherwise each is redelivered every VT, SQS's native redrive moves it to the
        phase DLQ without a reason (``valid-dead-lettered``, ``dead-letter-without-reason``).

        Waits for the orders' effects up to ``2 x delay + (M + 1) x VT + 15 s``, then SIGTERMs the
        instance (grace ``max(15 s, 2 x VT)`` plus the delay: a handler in hand may finish)."""
        p, queue = self.s.profile, self.s.phase_queues["heartbeat"]
        orders = [self.s.plan.commands[i] for i in self.s.plan.phase_orders["heartbeat"]]
        inst = self._start_phase_instance("heartbeat", index, p.heartbeat_delay_ms)
        self.s.history.nemesis(
            "heartbeat_phase",
            {
                "instance": index,
                "queue": queue.name,
                "visibility_timeout": queue.visibility_timeout,
                "max_receive_count": queue.max_receive_count,
                "delay_ms": p.heartbeat_delay_ms,
                "orders": [c.entity_id for c in orders],
            },
        )
        for c in orders:
            self.sender.send_command(c)
        bound = (
            2 * p.heartbeat_delay_ms / 1000 + (queue.max_receive_count + 1) * queue.visibility_timeout + 15
        )
        deadline = time.monotonic() + bound
        seen = armed = False
        while not seen and time.monotonic() < deadline and not done.is_set():
            armed = self._probe_lapse(queue, len(orders), armed)
            seen = self._wait_effects(orders, 0.5, done)
        grace = max(15.0, 2.0 * queue.visibility_timeout) + p.heartbeat_delay_ms / 1000
        code = self.s.cluster.terminate(inst, grace)
        self.s.history.nemesis(
            "heartbeat_phase_end", {"instance": index, "all_effects_seen": seen, "exit_code": code}
        )

    def _probe_lapse(self, queue: topo.CommandQueue, sent: int, armed: bool) -> bool:
        """The gate's own receive on the heartbeat queue, once it is *armed*: all ``sent`` messages
        were in flight at the same time (the instance has received each). From then on a correct
        worker keeps them invisible until it deletes them, so the gate receives nothing; a message
        whose visibility lapsed is received by it (``heartbeat_lapse`` op) and, as the redrive
        maxReceiveCount is 2, moved by SQS's native redrive to the phase DLQ on the next receive -- a missing heartbeat
        shows whatever the implementation's concurrency. The receive uses VisibilityTimeout 0, so
        a message it gets is at once visible to the instance again. Returns the armed state."""
        if not armed:
            attrs = self.s.sqs.get_queue_attributes(
                QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            return int(attrs["ApproximateNumberOfMessagesNotVisible"]) >= sent
        resp = self.s.sqs.receive_message(
            QueueUrl=queue.url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=0,
            AttributeNames=["All"],
        )
        for msg in resp.get("Messages", []):
            self.s.history.nemesis(
                "heartbeat_lapse",
                {
                    "queue": queue.name,
                    "message_id": msg["MessageId"],
                    "receive_count": msg.get("Attributes", {}).get("ApproximateReceiveCount"),
                },
            )
        return True

    def _phase_shutdown(self, index: int, done: threading.Event) -> None:
        """Shutdown phase (contract sections 1 and 9). ONE instance with a handler delay ``D`` on a
        queue with a long visibility timeout: send one order and wait for its effect (the instance
        is polling and handling), send the others in one SendMessageBatch (distinct groups), wait
        ``D / 2`` (they are in hand, mid-handler; v1.4: the batch also holds a second command of
        three of those orders, waiting behind its group's head -- received, not started -- which
        must be finished or released), SIGTERM it and wait for its exit (the usual
        grace, ``max(15 s, 2 x VT)``). Right after the exit ``ApproximateNumberOfMessagesNotVisible``
        of the queue must be 0: anything still invisible was received and neither finished nor
        released (``lifecycle: sigterm-abandoned-messages``). Then a normal instance (no delay)
        takes over the queue until every order has its effect (bound: VT + 30 s -- abandoned
        messages come back only after VT) and is SIGTERMed."""
        p, queue = self.s.profile, self.s.phase_queues["shutdown"]
        orders = [self.s.plan.commands[i] for i in self.s.plan.phase_orders["shutdown"]]
        delay = p.shutdown_delay_ms / 1000
        grace = max(15.0, 2.0 * queue.visibility_timeout)
        inst = self._start_phase_instance("shutdown", index, p.shutdown_delay_ms)
        self.s.history.nemesis(
            "shutdown_phase",
            {
                "instance": index,
                "queue": queue.name,
                "visibility_timeout": queue.visibility_timeout,
                "delay_ms": p.shutdown_delay_ms,
                "orders": [c.entity_id for c in orders],
            },
        )
        self.sender.send_command(orders[0])
        busy = self._wait_effects(orders[:1], 2 * delay + 30.0, done)
        for start in range(1, len(orders), 10):
            self.sender.send_batch(orders[start : start + 10])
        if done.wait(delay / 2):
            return
        self.s.history.nemesis(
            "shutdown_sigterm", {"instance": index, "pid": inst.process.pid, "first_effect_seen": busy}
        )
        code = self.s.cluster.terminate(inst, grace)
        attrs = self.s.sqs.get_queue_attributes(
            QueueUrl=queue.url,
            AttributeNames=["ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessages"],
        )["Attributes"]
        in_flight = int(attrs.get("ApproximateNumberOfMessagesNotVisible", "0"))
        self.s.history.nemesis(
            "shutdown_exit",
            {
                "instance": index,
                "exit_code": code,
                "not_visible": in_flight,
                "visible": int(attrs.get("ApproximateNumberOfMessages", "0")),
            },
        )
        if in_flight > 0 and code is not None:
            self.s.cluster.anomalies.append(
                Anomaly(
                    "sigterm-abandoned-messages",
                    f"instance {index} exited {code} after SIGTERM with {in_flight} message(s) of "
                    f"{queue.name} still in flight (received, neither finished nor released); "
                    "contract section 1: finish or release what you hold",
                )
            )
        if self._wait_effects(orders, 1.0, done):  # all done already: nothing to take over
            self.s.history.nemesis("shutdown_phase_end", {"all_effects_seen": True})
            return
        rescue = self._start_phase_instance("shutdown", index + 1, 0)
        seen = self._wait_effects(orders, queue.visibility_timeout + 30.0, done)
        code = self.s.cluster.terminate(rescue, grace)
        self.s.history.nemesis(
            "shutdown_phase_end", {"instance": index + 1, "all_effects_seen": seen, "exit_code": code}
        )

    def start(self, done: threading.Event) -> None:
        """One thread per phase; instance indexes after the main cluster and its slow windows."""
        runners = {
            "heartbeat": (self._phase_heartbeat, self.s.instances + 2),
            "shutdown": (self._phase_shutdown, self.s.instances + 3),
        }
        for phase in self.s.phase_queues:
            run, index = runners[phase]
            thread = threading.Thread(target=self._guard_phase, args=(phase, run, index, done), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _guard_phase(
        self, phase: str, run: Callable[[int, threading.Event], None], index: int, done: threading.Event
    ) -> None:
        """Run a phase; an AWS error aborts it (recorded), never the whole gate."""
        try:
            run(index, done)
        except (ClientError, BotoCoreError, GateError) as exc:
            self.s.history.nemesis(f"{phase}_phase_error", {"error": str(exc)})
