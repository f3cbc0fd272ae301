"""Property 9: hostile messages never take valid ones down (issue 13).

The real listener runs on the deterministic simulator; between the valid orders' commands the
harness sends one hostile message of a kind drawn from :data:`KINDS` (each the reproduction of a
fixed defect, and the killer of the mutant that brings it back). The history is judged by the
checkers: the hostile message is a ``poison`` op carrying the ``expected_reason`` code, so it must
end as a ``dead_letter`` op with that code (``dead-letter-wrong-reason`` /
``poison-not-dead-lettered`` otherwise), and every valid command takes effect exactly once
(``total_queue``, ``exactly_once_effect``, ``dead_letter``'s ``valid-dead-lettered``).

Polling follows the production run loop (:meth:`flowgate.reference.listener.SqsListener.run`): an
exception escaping a poll is logged and polling goes on -- what the poll did not delete is
redelivered, so a hostile message that crashes the poll takes its batch with it until SQS's
redrive moves them all (``valid-dead-lettered``).

Two more properties: a KMS outage (key disabled) is never blamed on the messages, and a copy of a
message that comes back within the queue + DLQ retention is still recognised (the TTL rule).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowgate.harness.faults import FaultPlan
from flowgate.harness.mutants import MUTANTS, apply_mutant
from flowgate.harness.simulation import SimConfig, SimResult, Simulation, _quiet_reference
from properties.support import active_mutant, assert_valid, sim_label

log = logging.getLogger(__name__)
HARNESS = "harness"
#: hostile kind -> the DeadLetterReason code it must be dead-lettered with
KINDS: dict[str, str] = {
    "deep_body": "DecodeError",  # RecursionError while parsing (plaintext, or inside a sealed body)
    "event_on_command_queue": "UnknownMessageType",  # would be projected: a forged view effect
    "reused_event_id": "IdempotencyConflict",  # a completed command's id with other content
    "invalid_group_id": "DecodeError",  # entity id no SQS MessageGroupId can carry
}
#: the catalog kind (flowgate.harness.hostile, docs/hostile.md) each of these sends
CATALOG_KIND: dict[str, str] = {
    "deep_body": "deep_payload",  # 5000 nested arrays in a payload field; plaintext or sealed
    "event_on_command_queue": "event_on_command_queue",
    "reused_event_id": "reused_event_id_applied",
    "invalid_group_id": "entity_id_spaces",
}
CHECKERS = ["total_queue", "exactly_once_effect", "dead_letter", "per_entity_order"]


class HostileSim(Simulation):
    """:class:`Simulation` plus the hostile messages of this file, polling like the run loop."""

    def __init__(self, config: SimConfig) -> None:
        super().__init__(config)
        self.poll_failures = 0
        self.hostile_sent = 0

    def poll(self, index: int, queue: str | None = None) -> int:
        try:
            return super().poll(index, queue)
        except Exception as exc:  # SqsListener.run: log, back off, poll on
            self.poll_failures += 1
            log.debug("poll failed: %s: %s", type(exc).__name__, exc)
            return 0

    def raise_redrive_limit(self, extra: int) -> None:
        """Give the queues' RedrivePolicy ``extra`` more receives than the listener's
        ``max_receive_count`` (a queue provisioned by someone else): the listener's own decision
        is then what puts a message in the DLQ."""
        for queue in (self.config.command_queue, self.views_queue):
            self.sqs.set_queue_attributes(
                QueueUrl=self.resources.queue_urls[queue],
                Attributes={"RedrivePolicy": json.dumps({
                    "deadLetterTargetArn": self._dlq_arn(queue),
                    "maxReceiveCount": str(self.config.max_receive_count + extra),
                })},
            )

    def _dlq_arn(self, queue: str) -> str:
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.resources.dlq_urls[queue], AttributeNames=["QueueArn"])
        return str(attrs["Attributes"]["QueueArn"])

    # ------------------------------------------------------------------ hostile messages
    def send_hostile(self, kind: str) -> None:
        """One message of the hostile-input catalog kind behind ``kind`` (:data:`CATALOG_KIND`),
        recorded with its ``expected_reason``."""
        self.hostile_sent += 1
        sent = self.send_poison(CATALOG_KIND[kind], expected_reason=True)
        assert sent is not None, f"{kind} ({CATALOG_KIND[kind]}) could not be sent"

    def drive(self, hostile: list[tuple[int, str]]) -> None:
        """Send every order's commands (one random order per step, polls in between) and the
        hostile ``(position, kind)`` messages before the position-th valid send."""
        queues = (self.config.command_queue, self.views_queue)
        pending = sorted(hostile)
        sent = 0
        budget = 100 * (sum(len(o.script.steps) for o in self.orders) + len(hostile)) + 100
        while budget > 0:  # bounded: a command whose send failed would leave its order waiting
            budget -= 1
            while pending and pending[0][0] <= sent and (pending[0][1] != "reused_event_id" or self.deliveries.done_commands):
                self.send_hostile(pending.pop(0)[1])
            n = self.pick_sendable()
            if n is None and not self.producers.active:
                break
            if n is not None and self.rng.random() < 0.5:
                self.send_next(n)
                sent += 1
            else:
                got = self.poll(self.rng.randrange(self.config.workers), queues[self.rng.random() < 0.4])
                if not got:
                    self.clock.advance(self.config.visibility_timeout / 2)
            self.clock.advance(self.rng.random() * 0.2)
        self.drain()
        for _, kind in pending:  # still unsent (e.g. needed a completed command): send now
            self.drained = None
            self.send_hostile(kind)
        if self.drained is None:
            self.drain()


def _configs(**overrides: Any) -> st.SearchStrategy[SimConfig]:
    values: dict[str, Any] = {
        "seed": st.integers(0, 2**32 - 1),
        "orders": st.integers(2, 4),
        "workers": st.integers(1, 2),
        "fifo": st.booleans(),
        "encryption": st.booleans(),
        "max_receive_count": st.sampled_from([2, 3]),
        "faults": st.just(FaultPlan()),
        "cancel_ratio": st.just(0.0),
        "wire_samples": st.just(0),
        "snapshots": st.just(False),
    }
    values.update({k: st.just(v) for k, v in overrides.items()})
    return st.builds(SimConfig, **values)


def _run(config: SimConfig, hostile: list[tuple[int, str]], *, redrive_extra: int = 0) -> SimResult:
    with _quiet_reference():
        sim = HostileSim(config)
        try:
            if redrive_extra:
                sim.raise_redrive_limit(redrive_extra)
            sim.drive(hostile)
            return sim.finish(active_mutant())
        finally:
            sim.close()


@settings(max_examples=25, deadline=None)
@given(_configs(), st.lists(st.tuples(st.integers(0, 6), st.sampled_from(sorted(KINDS))), min_size=1, max_size=2))
def test_hostile_message_is_dead_lettered_with_its_reason_and_valid_ones_apply_once(
    config: SimConfig, hostile: list[tuple[int, str]]
) -> None:
    sim_label("Dead letters", "hostile messages", "decode, routing, id reuse, group ids")
    result = _run(config, hostile)
    assert_valid(result, CHECKERS)


@settings(max_examples=10, deadline=None)
@given(_configs(encryption=True), st.integers(1, 3))
def test_a_kms_outage_is_never_blamed_on_the_messages(config: SimConfig, outage_polls: int) -> None:
    """The key is disabled after the orders' first commands were sent, for ``max_receive_count``
    + ``outage_polls`` receives of each; then enabled and the run goes on. On a queue whose redrive allows more receives than the listener's
    ``max_receive_count``, nothing valid is dead-lettered and everything takes effect once."""
    sim_label("Encryption", "KMS outage", "disabled key is transient, never poison")
    with _quiet_reference():
        sim = HostileSim(config)
        try:
            sim.raise_redrive_limit(config.max_receive_count + outage_polls + 2)
            assert sim.key_arn is not None
            for index in range(config.workers):  # the start-up probes, with the key enabled (see _outage)
                sim.poll(index, config.command_queue)
            while (n := sim.pick_sendable()) is not None and sim.orders[n].sent == 0:
                sim.send_next(n)  # each order's first command (standard queues wait for its effect)
            sim.kms.disable_key(KeyId=sim.key_arn)
            sim.history.nemesis("kms_outage", {"key": sim.key_arn})
            for _ in range(config.max_receive_count + outage_polls):
                for index in range(config.workers):
                    sim.poll(index, config.command_queue)
                sim.clock.advance(config.visibility_timeout + 1)
            sim.kms.enable_key(KeyId=sim.key_arn)
            sim.drive([])
            result = sim.finish(active_mutant())
        finally:
            sim.close()
    assert_valid(result, CHECKERS)


@settings(max_examples=10, deadline=None)
@given(_configs(), st.sampled_from([25 * 3600.0, 7 * 86400.0, 20 * 86400.0]), st.integers(0, 50))
def test_a_copy_within_queue_plus_dlq_retention_is_still_a_duplicate(
    config: SimConfig, later: float, which: int
) -> None:
    """After the run, a producer resends one of its commands ``later`` seconds on (within
    14 + 14 days: the copy could still be in the queue or its DLQ): it must be a duplicate."""
    sim_label("Deduplication", "idempotency TTL", "TTL outlives queue + DLQ retention")
    with _quiet_reference():
        sim = HostileSim(config)
        try:
            sim.drive([])
            sim.clock.advance(later)
            order = which % len(sim.orders)
            sim.resend(order, which)
            sim.drained = None
            sim.drain()
            result = sim.finish(active_mutant())
        finally:
            sim.close()
    assert_valid(result, CHECKERS)


def test_every_kind_is_generated() -> None:
    """Each kind is known to :meth:`HostileSim.send_hostile` and names a DeadLetterReason code."""
    codes = {"DecodeError", "UnknownMessageType", "IdempotencyConflict", "DecryptionError", "MissingAttribute",
             "OversizedMessage", "BusinessError", "HandlerError"}
    assert set(KINDS.values()) <= codes
    sim = HostileSim(SimConfig(seed=1, orders=0, wire_samples=0, snapshots=False))
    try:
        for kind in sorted(set(KINDS) - {"reused_event_id"}):
            sim.send_hostile(kind)
        assert [op.value["kind"] for op in sim.history.ops if op.f == "poison"] == [
            CATALOG_KIND[k] for k in sorted(set(KINDS) - {"reused_event_id"})]
    finally:
        sim.close()


# ------------------------------------------------------------------ known kills of this file's mutants
# (the standard schedule of tests/simulation/test_simulation.py sends none of these messages)
def _cfg(**kw: object) -> SimConfig:
    return SimConfig(**{"seed": 3, "orders": 3, "workers": 2, "max_receive_count": 3, "wire_samples": 0,
                        "snapshots": False, "cancel_ratio": 0.0, **kw})  # type: ignore[arg-type]


def _outage(config: SimConfig) -> SimResult:
    with_outage = HostileSim(config)
    try:
        with_outage.raise_redrive_limit(config.max_receive_count + 3)
        assert with_outage.key_arn is not None
        # the listeners' first polls (nothing to receive yet) run the start-up probe while the key
        # is enabled: the key is disabled under messages in flight, not before a worker starts
        for index in range(config.workers):
            with_outage.poll(index, config.command_queue)
        while (n := with_outage.pick_sendable()) is not None and with_outage.orders[n].sent == 0:
            with_outage.send_next(n)
        with_outage.kms.disable_key(KeyId=with_outage.key_arn)
        for _ in range(config.max_receive_count + 1):
            for index in range(config.workers):
                with_outage.poll(index, config.command_queue)
            with_outage.clock.advance(config.visibility_timeout + 1)
        with_outage.kms.enable_key(KeyId=with_outage.key_arn)
        with_outage.drive([])
        return with_outage.finish()
    finally:
        with_outage.close()


def _kms_unreachable(config: SimConfig) -> SimResult:
    """v1.4: KMS cut (every KMS call raises botocore's EndpointConnectionError) while SQS works,
    for ``max_receive_count`` + 1 receives of the orders' first commands; then restored."""
    sim = HostileSim(config)
    try:
        sim.raise_redrive_limit(config.max_receive_count + 3)
        for index in range(config.workers):  # the start-up probes, with KMS reachable
            sim.poll(index, config.command_queue)
        while (n := sim.pick_sendable()) is not None and sim.orders[n].sent == 0:
            sim.send_next(n)
        sim.aws.set_unreachable("kms")
        sim.history.nemesis("kms_transport_outage", {})
        for _ in range(config.max_receive_count + 1):
            for index in range(config.workers):
                sim.poll(index, config.command_queue)
            sim.clock.advance(config.visibility_timeout + 1)
        sim.aws.set_unreachable("kms", False)
        sim.drive([])
        return sim.finish()
    finally:
        sim.close()


def _late_resend(config: SimConfig) -> SimResult:
    sim = HostileSim(config)
    try:
        sim.drive([])
        sim.clock.advance(7 * 86400.0)
        sim.resend(0, 0)
        sim.drained = None
        sim.drain()
        return sim.finish()
    finally:
        sim.close()


RUNS: dict[str, Callable[[], SimResult]] = {
    "recursion-escapes-poll": lambda: _run(_cfg(), [(2, "deep_body")]),
    "id-reuse-is-duplicate": lambda: _run(_cfg(), [(2, "reused_event_id")]),
    "event-on-command-queue-projected": lambda: _run(_cfg(), [(2, "event_on_command_queue")]),
    "unvalidated-group-id": lambda: _run(_cfg(), [(2, "invalid_group_id")]),
    "kms-disabled-is-poison": lambda: _outage(_cfg(encryption=True)),
    "kms-transport-is-poison": lambda: _kms_unreachable(_cfg(encryption=True)),
    "ttl-shorter-than-retention": lambda: _late_resend(_cfg()),
    # the simulated workers' scheduled cleanup (flowgate.reference.cleanup) sweeps during the 7 days
    "cleanup-deletes-unexpired": lambda: _late_resend(_cfg()),
}


def test_every_hostile_mutant_has_a_known_kill() -> None:
    """The mutants killed only here (tests/simulation/test_simulation.py excludes them)."""
    hostile = {n for n, m in MUTANTS.items() if m.killers and any("test_hostile_decode" in k for k in m.killers)}
    assert hostile == set(RUNS)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_hostile_mutant_is_killed_by_a_known_run(name: str) -> None:
    clean = RUNS[name]()
    assert clean.valid, clean.summary()
    if active_mutant():
        pytest.skip("installs mutants itself")
    with apply_mutant(name):
        killed = RUNS[name]()
    assert not killed.valid
    assert set(killed.anomaly_kinds()) & set(MUTANTS[name].expected), killed.anomaly_kinds()


class _UnreachableKms:
    """A KMS client whose Decrypt cannot reach KMS (the transport error botocore raises once its
    retries are spent); every other call goes to the simulator's KMS."""

    def __init__(self, kms: Any, error: Exception) -> None:
        self._kms, self._error = kms, error

    def decrypt(self, **kw: Any) -> Any:
        raise self._error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kms, name)


@pytest.mark.parametrize("error", ["refused", "reset", "timeout"])
def test_kms_transport_errors_are_transient_never_poison(error: str) -> None:
    """Contract v1.4 section 5: KMS unreachable (connection refused or reset, a timeout) says
    nothing about the message: the envelope's open raises a TransportError (the message is left
    for redelivery), never a DecryptionError (poison)."""
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

    from flowgate.harness.sim import SimAws
    from flowgate.reference.envelope import KmsEnvelopeCipher, MessageBinding
    from flowgate.reference.errors import DecryptionError, TransportError

    url = "http://127.0.0.1:1"
    exc = {
        "refused": EndpointConnectionError(endpoint_url=url),
        "reset": ConnectionClosedError(endpoint_url=url),
        "timeout": ReadTimeoutError(endpoint_url=url),
    }[error]
    kms = SimAws(seed=5).client("kms")
    arn = kms.create_key(Description="k")["KeyMetadata"]["Arn"]
    binding = MessageBinding("e1", "q.fifo", "o-1", "PlaceOrder")
    sealed = KmsEnvelopeCipher(kms, arn).seal("{}", binding)
    with pytest.raises(TransportError) as info:
        KmsEnvelopeCipher(_UnreachableKms(kms, exc), arn).open(
            sealed, message_id="e1", entity_id="o-1", message_type="PlaceOrder", destinations={"q.fifo"}
        )
    assert not isinstance(info.value, DecryptionError)
