"""The gate's settling (the wait between the last send and SIGTERM): until every acknowledged
command has an effect, every poison message is in a DLQ, every command queue is empty and no fault
or phase thread runs -- or no progress for a while, or the profile's timeout (see
:meth:`Settler.settle` for the bounds).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from flowgate.harness.gate.poison import PoisonSender
from flowgate.harness.gate.state import RunState

#: SQS's longest long poll (``WaitTimeSeconds`` 20): a consumer that polls receives at least this
#: often, so SQS's own redrive of a message happens within redrive maxReceiveCount x VT + this.
RECEIVE_INTERVAL = 20.0
#: A settle longer than this prints a progress line every this many seconds (stderr).
SETTLE_PROGRESS_SECONDS = 15.0


class Settler:
    """Settles the run in ``state``; ``poison`` says how many poison messages were sent."""

    def __init__(self, state: RunState, poison: PoisonSender) -> None:
        self.s, self.poison = state, poison

    def acked(self) -> set[str]:
        """Command ids of every send SQS acknowledged so far."""
        return {
            str(op.value["command_id"]) for op in self.s.history.ops if op.f == "send" and op.type == "ok"
        }

    def _depth(self, url: str) -> int:
        """Messages in a queue: visible + in flight + delayed (approximate, as SQS reports)."""
        attrs = self.s.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(v) for v in attrs.values())

    def _dlq_depth(self) -> int:
        """Messages in every DLQ of the run."""
        return sum(self._depth(q.dlq_url) for q in self.s.queues if q.dlq_url)

    def _commands_left(self) -> int:
        """Commands still in the command queues: a business failure (contract section 2) is
        dead-lettered only after the implementation's retries (reference: up to 3 receives x VT),
        so the run is not settled while a queue still holds something."""
        return sum(self._depth(q.url) for q in self.s.queues)

    def settle(self, busy: Callable[[], bool]) -> None:
        """Wait until every acknowledged command has an effect, every poison message is in a DLQ,
        every command queue is empty and the nemesis and phase threads are done; or until no
        progress (an event, a DLQ depth change, a command-queue depth change) for
        ``max(20 s, (redrive maxReceiveCount + 1) x VT + 10 s [+ one outage length when outages are
        planned: a consumer's back-off probe notices the recovery late])`` counted from when those
        threads are done (``busy()`` False; or no
        instance is live: a consumer that never forwards poison leaves it to the native redrive);
        at most ``settle_timeout`` plus the length of every planned outage (transport and KMS: while a
        dependency is down a correct consumer stops receiving, so no message advances towards its
        fate; without this a poison message still short of ``maxReceiveCount`` receives when the
        deadline passes was reported as not dead-lettered). Then 2 s of quiet for late publishes.

        v1.3 (unresolved messages): both bounds are at least SQS's own redrive time, redrive
        maxReceiveCount x VT + :data:`RECEIVE_INTERVAL`, so a message no consumer decides on is moved
        by SQS before the run is judged (``dead-letter-without-reason``) instead of being cut off;
        what is still in a command queue then is ``unresolved``. A settle longer than
        :data:`SETTLE_PROGRESS_SECONDS` prints one progress line (stderr) that often."""
        vt, mrc = self.s.profile.visibility_timeout, self.s.profile.redrive_max_receive_count
        # a KMS outage is two windows (v1.4): the key disabled, then the KMS endpoint cut
        outages = self.s.profile.outages + 2 * self.s.profile.kms_outages
        redrive = mrc * vt + RECEIVE_INTERVAL
        # after an outage a correct consumer resumes only when its back-off probe next succeeds:
        # allow one outage length for that on top of the redrive path
        stall = max(20.0, (mrc + 1) * vt + 10.0, redrive) + (
            self.s.profile.outage_seconds if outages else 0.0
        )
        started = time.monotonic()
        deadline = started + max(
            self.s.profile.settle_timeout + outages * self.s.profile.outage_seconds, redrive + 10.0
        )
        acked = self.acked()
        self.s.last_progress = time.monotonic()
        seen = (-1, -1)
        next_report = started + SETTLE_PROGRESS_SECONDS
        while time.monotonic() < deadline:
            self.s.cluster.check_crashes()
            depth, left = self._dlq_depth(), self._commands_left()
            if (depth, left) != seen:
                seen, self.s.last_progress = (depth, left), time.monotonic()
            running = busy()
            if running:  # an outage or a phase still running is not a lack of progress
                self.s.last_progress = time.monotonic()
            acked |= self.acked()  # the phases send while this runs
            poison = self.poison.poison_count()
            if acked <= self.s.effects_seen and depth >= poison and not left and not running:
                break
            # (no instance live during a kill -> restart gap is not the end: wait for the nemesis)
            if not running and (not self.s.cluster.live() or time.monotonic() - self.s.last_progress > stall):
                break
            now = time.monotonic()
            if now >= next_report:
                next_report = now + SETTLE_PROGRESS_SECONDS
                print(
                    f"flowgate gate: settling {now - started:.0f} s: {len(acked & self.s.effects_seen)}/"
                    f"{len(acked)} acknowledged commands took effect, {left} message(s) in the command "
                    f"queues, {depth} in the DLQs, {'faults/phases running' if running else 'idle'} "
                    f"{now - self.s.last_progress:.0f} s (gives up after {stall:.0f} s idle or at "
                    f"{deadline - started:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
            time.sleep(0.5)
        quiet_until = time.monotonic() + 2.0
        while time.monotonic() < quiet_until:
            time.sleep(0.25)
