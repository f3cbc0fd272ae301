"""Hostile messages on the real listener (issue 13), on the deterministic in-process simulator.

Each hostile message is poison with the right ``DeadLetterReason`` code on the receive where
ApproximateReceiveCount reaches ``max_receive_count``; the valid messages of the same batch take
effect exactly once; ``poll_once`` never raises. Plus: routing per queue role, content-bound
idempotency, handler failures, KMS error classes and the TTL rule.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Mapping
from typing import Any

import pytest
from botocore.exceptions import ClientError
from flowgate_reference_kms import FakeKms

from flowgate.harness.sim import SimAws
from flowgate.reference.config import BusConfiguration, BusOptions
from flowgate.reference.dispatchers import message_attributes
from flowgate.reference.domain.orders import (
    ORDER_COMMANDS,
    ORDER_EVENTS,
    AuthorizePayment,
    InventoryView,
    OrderPlaced,
    OrderSaga,
    OrderView,
    PaymentsView,
    PlaceOrder,
    ReserveInventory,
    order_registry,
)
from flowgate.reference.envelope import KmsEnvelopeCipher, MessageBinding, build_envelope, parse_envelope
from flowgate.reference.errors import ConfigurationError, DecodeError, DecryptionError, TransportError
from flowgate.reference.idempotency import message_digest
from flowgate.reference.messages import Command, Event, Message, encode, event_for, new_command
from flowgate.reference.stores import InMemoryStorage
from flowgate.reference.worker import Runtime, build_runtime

MAX_RECEIVES = 3


class Recorder:
    def __init__(self) -> None:
        self.ops: list[tuple[str, str, dict[str, Any]]] = []

    def observe(self, f: str, kind: str, value: Mapping[str, Any]) -> None:
        self.ops.append((f, kind, dict(value)))

    def of(self, f: str, kind: str = "ok") -> list[dict[str, Any]]:
        return [v for ff, k, v in self.ops if ff == f and k == kind]


class Rig:
    """A worker (command + view listener) on the simulator; ``encrypted`` wires the sim's KMS."""

    def __init__(self, *, encrypted: bool = False, fifo: bool = True, sagas: list[Any] | None = None,
                 views: list[Any] | None = None) -> None:
        self.aws = SimAws(seed=7)
        self.sqs, self.sns, self.kms = self.aws.client("sqs"), self.aws.client("sns"), self.aws.client("kms")
        self.observer = Recorder()
        sfx = ".fifo" if fifo else ""
        self.queue, self.views_queue = f"orders{sfx}", f"order-views{sfx}"
        self.registry = order_registry()
        cfg = (BusConfiguration(self.registry)
               .send(*ORDER_COMMANDS).to_queue(self.queue)
               .raise_events(*ORDER_EVENTS).to_topic(f"order-events{sfx}")
               .listen_to(self.queue)
               .subscribe(self.views_queue).to_topics(f"order-events{sfx}")
               .with_options(visibility_timeout=30, wait_time_seconds=0, max_receive_count=MAX_RECEIVES))
        self.key: str | None = None
        if encrypted:
            self.key = str(self.kms.create_key(Description="t")["KeyMetadata"]["Arn"])
            cfg.with_encryption(self.key)
        self.storage = InMemoryStorage(self.registry)
        self.runtime: Runtime = build_runtime(
            cfg, sqs=self.sqs, sns=self.sns, sts=self.aws.client("sts"), kms=self.kms, storage=self.storage,
            sagas=sagas if sagas is not None else [OrderSaga()],
            views=views if views is not None else [OrderView(), InventoryView(), PaymentsView()],
            clock=self.aws.clock, observer=self.observer)
        self.commands_listener, self.views_listener = self.runtime.listeners
        self.fifo = fifo
        self.sent = 0

    def url(self, queue: str | None = None) -> str:
        return self.runtime.resources.queue_urls[queue or self.queue]

    def send_raw(self, body: str, attrs: dict[str, Any], *, group: str = "g", dedup: str,
                 queue: str | None = None) -> str:
        params: dict[str, Any] = {"QueueUrl": self.url(queue), "MessageBody": body, "MessageAttributes": attrs}
        if self.fifo:
            params["MessageGroupId"] = group
            params["MessageDeduplicationId"] = dedup
        return str(self.sqs.send_message(**params)["MessageId"])

    def send_message(self, message: Message, *, body: str | None = None, queue: str | None = None,
                     destination: str | None = None) -> str:
        """``message`` as a producer would send it (sealed when encrypted), or with ``body``."""
        text = encode(message) if body is None else body
        if self.key is not None:
            binding = MessageBinding(message.event_id, destination or queue or self.queue, message.entity_id,
                                     message.name)
            text = KmsEnvelopeCipher(self.kms, self.key).seal(text, binding)
        attrs = message_attributes(message, encrypted=self.key is not None, traceparent=None)
        self.sent += 1
        return self.send_raw(text, attrs, group=message.entity_id, dedup=f"{message.event_id}-{self.sent}",
                             queue=queue)

    def drain(self, listener: Any = None, rounds: int = MAX_RECEIVES + 2) -> None:
        listener = listener or self.commands_listener
        for _ in range(rounds):
            while listener.poll_once():
                pass
            self.aws.clock.advance(31)

    def dead(self) -> dict[str, str]:
        return {v["message_id"]: v["reason"] for v in self.observer.of("dead_letter")}

    def effects(self) -> list[str]:
        return [v["command_id"] for v in self.observer.of("effect")]


def place(entity: str, seq: int = 1, event_id: str | None = None, qty: int = 1) -> Command:
    return new_command(PlaceOrder("c", "S", qty, 10), entity, is_new=True, sequence_no=seq, event_id=event_id)


def deep_body(cmd: Command, depth: int = 50_000) -> str:
    return encode(cmd).replace('"quantity":1', '"quantity":' + "[" * depth + "1" + "]" * depth)


# ------------------------------------------------------------------ per-message isolation
@pytest.mark.parametrize("encrypted", [False, True], ids=["plaintext", "kms"])
def test_hostile_bodies_are_poison_and_the_valid_ones_around_them_take_effect_once(encrypted: bool) -> None:
    rig = Rig(encrypted=encrypted)
    valid = [place(f"v{i}") for i in range(4)]
    hostile: dict[str, str] = {}
    rig.send_message(valid[0])
    h = place("h1")
    hostile[rig.send_message(h, body=deep_body(h))] = "DecodeError"  # RecursionError inside the plaintext
    rig.send_message(valid[1])
    h = place("h2")
    hostile[rig.send_message(h, body=encode(h).replace('"SKU-', '"SKU-').replace('"S"', '"\\ud800"'))] = (
        "DecodeError")
    h = place("h3")
    hostile[rig.send_message(h, body=encode(h).replace('"S"', '"S","sku":"T"'))] = "DecodeError"  # dup key
    rig.send_message(valid[2])
    h = place("h4")
    hostile[rig.send_message(h, body=encode(h).replace('"isReplay":false', '"isReplay":"false"'))] = "DecodeError"
    rig.send_message(valid[3])
    rig.drain()
    dead = rig.dead()
    assert {m: r.split(":")[0] for m, r in dead.items()} == hostile, dead
    assert sorted(rig.effects()) == sorted(c.event_id for c in valid)


def test_deep_nesting_in_the_envelope_json_is_a_decryption_error() -> None:
    rig = Rig(encrypted=True)
    h = place("h1")
    envelope = base64.b64encode(("[" * 50_000 + "]" * 50_000).encode()).decode()
    attrs = message_attributes(h, encrypted=True, traceparent=None)
    mid = rig.send_raw(envelope, attrs, group="h1", dedup="d1")
    ok = place("v1")
    rig.send_message(ok)
    rig.drain()
    assert rig.dead()[mid].startswith("DecryptionError:")
    assert rig.effects() == [ok.event_id]


def test_lone_surrogate_in_the_body_itself_is_poison_not_a_crash() -> None:
    """A ``str`` body the SQS client could not even encode (UnicodeEncodeError at the size check)."""
    rig = Rig()
    listener = rig.commands_listener
    h = place("h1")
    attrs = message_attributes(h, encrypted=False, traceparent=None)
    m = {"MessageId": "m-1", "ReceiptHandle": "r", "Body": encode(h).replace('"S"', '"\ud800"'),
         "MessageAttributes": attrs, "Attributes": {"ApproximateReceiveCount": "1"}}
    from flowgate.reference.listener import _Flight, _string_attributes

    with pytest.raises(DecodeError, match="lone surrogate"):
        listener._decode(m, _string_attributes(m))
    assert listener._process(_Flight(m, 1, 0.0, 0.0)) is False  # left for redelivery (receive 1 < 3)


def test_an_unexpected_store_failure_for_one_message_does_not_take_down_the_batch() -> None:
    rig = Rig()
    bad, good = place("bad"), place("good")
    orig = rig.storage.claim

    def claim(key: str, **kw: Any) -> Any:
        if bad.event_id in key:
            raise OverflowError("simulated bug in the store")
        return orig(key, **kw)

    rig.storage.claim = claim  # type: ignore[method-assign]
    rig.send_message(bad)
    rig.send_message(good)
    assert rig.commands_listener.poll_once() == 2  # no exception
    assert rig.effects() == [good.event_id]
    assert not rig.dead()  # infrastructure-like: never poison, left for redelivery


# ------------------------------------------------------------------ handler failures (D21)
class ExplodingSaga(OrderSaga):
    def decide(self, state: Any, command: Command) -> Any:
        if command.entity_id == "boom":
            raise ZeroDivisionError("saga bug")
        return super().decide(state, command)


class ExplodingView(OrderView):
    def project(self, row: Any, event: Event) -> Any:
        if event.entity_id == "boom":
            raise KeyError("view bug")
        return super().project(row, event)


def test_unexpected_saga_exception_is_retried_then_dead_lettered_as_handler_error() -> None:
    rig = Rig(sagas=[ExplodingSaga()])
    boom, ok = place("boom"), place("ok")
    mid = rig.send_message(boom)
    rig.send_message(ok)
    rig.commands_listener.poll_once()
    assert not rig.dead()  # first receives: left for redelivery, the claim released
    assert rig.effects() == [ok.event_id]
    rig.drain()
    assert rig.dead()[mid].startswith("HandlerError: saga on PlaceOrder: ZeroDivisionError: saga bug")
    assert rig.effects() == [ok.event_id]
    assert not rig.storage._m.records.get(f"command:{boom.event_id}")  # released: a DLQ replay can apply


def test_unexpected_view_exception_is_dead_lettered_as_handler_error() -> None:
    rig = Rig(views=[ExplodingView(), InventoryView(), PaymentsView()])
    rig.send_message(place("boom"))
    rig.send_message(place("ok"))
    rig.drain()
    rig.drain(rig.views_listener)
    reasons = list(rig.dead().values())
    assert len(reasons) == 1
    assert reasons[0].startswith("HandlerError: view orders: KeyError")
    assert [v["entity_id"] for v in rig.observer.of("project") if v["view"] == "orders"] == ["ok"]


# ------------------------------------------------------------------ routing
def test_an_event_on_the_command_queue_is_poison_never_projected() -> None:
    rig = Rig()
    cmd = place("o1")
    evt = event_for(cmd, 0, OrderPlaced("c", "S", 1, 10))
    mid = rig.send_message(evt)
    rig.drain()
    assert rig.dead()[mid].startswith("UnknownMessageType:")
    assert not rig.observer.of("project")


def test_a_command_on_the_view_queue_is_poison() -> None:
    rig = Rig()
    cmd = place("o1")
    mid = rig.send_message(cmd, queue=rig.views_queue)
    rig.drain(rig.views_listener)
    assert rig.dead()[mid].startswith("UnknownMessageType:")
    assert not rig.effects()


def test_listener_roles_come_from_the_configuration() -> None:
    rig = Rig()
    assert rig.commands_listener.accepts == "command"
    assert rig.commands_listener.accepted_types == {c.message_name for c in ORDER_COMMANDS}
    assert rig.views_listener.accepts == "event"
    assert rig.views_listener.accepted_types == {e.message_name for e in ORDER_EVENTS}


# ------------------------------------------------------------------ content-bound idempotency
def test_a_reused_command_id_with_other_content_is_an_idempotency_conflict() -> None:
    rig = Rig()
    first = place("o1", event_id="11111111-1111-4111-8111-111111111111", qty=1)
    forged = place("o1", event_id=first.event_id, qty=99)
    rig.send_message(first)
    rig.drain()
    mid = rig.send_message(forged)
    resent = rig.send_message(first, body=encode(first) + " ")  # same content, another SQS message
    rig.drain()
    assert rig.dead()[mid].startswith("IdempotencyConflict:")
    assert resent not in rig.dead()
    assert rig.effects() == [first.event_id]
    assert len(rig.observer.of("duplicate")) == 1


def test_digest_equal_for_resend_replay_and_republish_and_different_for_other_content() -> None:
    cmd = place("o1", event_id="22222222-2222-4222-8222-222222222222")
    from dataclasses import replace

    replayed = replace(cmd, metadata=replace(cmd.metadata, is_replay=True, occurred_on="2030-01-01T00:00:00.000Z",
                                             properties={"traceparent": "x"}))
    assert message_digest(replayed) == message_digest(cmd)
    assert message_digest(place("o1", event_id=cmd.event_id, qty=2)) != message_digest(cmd)
    assert message_digest(place("o2", event_id=cmd.event_id)) != message_digest(cmd)
    assert message_digest(replace(cmd, metadata=replace(cmd.metadata, sequence_no=2))) != message_digest(cmd)
    evt = event_for(cmd, 0, OrderPlaced("c", "S", 1, 10))
    evt_replay = event_for(replayed, 0, OrderPlaced("c", "S", 1, 10))
    assert evt_replay.metadata.is_replay
    assert message_digest(evt, "orders") == message_digest(evt_replay, "orders")
    assert message_digest(evt, "orders") != message_digest(evt, "inventory")
    assert message_digest(evt, "orders") != message_digest(
        replace(evt, metadata=replace(evt.metadata, causation_id="other")), "orders")


# ------------------------------------------------------------------ KMS error classes
class RefusingKms(FakeKms):
    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code

    def decrypt(self, **kw: Any) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": self.code, "Message": self.code}}, "Decrypt")


KEY = "arn:aws:kms:us-east-1:000000000000:key/k1"
B = MessageBinding("m-1", "orders.fifo", "o-1", "PlaceOrder")


@pytest.mark.parametrize("code", ["InvalidCiphertextException", "IncorrectKeyException", "ValidationException"])
def test_kms_refusals_of_the_message_are_poison(code: str) -> None:
    sealed = KmsEnvelopeCipher(FakeKms(KEY), KEY).seal("{}", B)
    with pytest.raises(DecryptionError):
        KmsEnvelopeCipher(RefusingKms(code), KEY).open(sealed, message_id="m-1", entity_id="o-1",
                                                        message_type="PlaceOrder", destinations={"orders.fifo"})


@pytest.mark.parametrize("code", ["DisabledException", "KMSInvalidStateException", "NotFoundException",
                                  "AccessDeniedException", "KeyUnavailableException", "DependencyTimeoutException",
                                  "KMSInternalException", "ThrottlingException", "InternalFailure",
                                  "InvalidKeyUsageException", "ServiceUnavailable"])
def test_kms_unavailability_is_transport_never_poison(code: str) -> None:
    sealed = KmsEnvelopeCipher(FakeKms(KEY), KEY).seal("{}", B)
    with pytest.raises(TransportError):
        KmsEnvelopeCipher(RefusingKms(code), KEY).open(sealed, message_id="m-1", entity_id="o-1",
                                                        message_type="PlaceOrder", destinations={"orders.fifo"})


def test_a_disabled_key_leaves_messages_for_redelivery_and_they_apply_once_it_is_enabled() -> None:
    rig = Rig(encrypted=True)
    cmd = place("o1")
    rig.send_message(cmd)
    assert rig.key is not None
    rig.kms.disable_key(KeyId=rig.key)
    rig.drain(rounds=MAX_RECEIVES - 1)  # (a third receive would let the SQS redrive policy move it)
    assert not rig.dead()
    assert not rig.effects()
    rig.kms.enable_key(KeyId=rig.key)
    rig.drain(rounds=1)
    assert rig.effects() == [cmd.event_id]


def test_malformed_envelope_fields_are_decryption_errors() -> None:
    sealed = KmsEnvelopeCipher(FakeKms(KEY), KEY).seal("{}", B)
    env = json.loads(base64.b64decode(sealed))
    env["KeyId"] = ["not", "a", "string"]
    bad = base64.b64encode(json.dumps(env).encode()).decode()
    with pytest.raises(DecryptionError):
        parse_envelope(bad)
    good = parse_envelope(sealed)
    assert parse_envelope(build_envelope(good)) == good


# ------------------------------------------------------------------ TTL vs retention (D22)
def test_default_ttl_outlives_queue_plus_dlq_retention() -> None:
    o = BusOptions()
    assert o.idempotency_ttl_seconds >= 2 * o.message_retention_seconds


@pytest.mark.parametrize(("ttl", "retention", "ok"), [
    (24 * 3600.0, 1_209_600, False),  # SourceFlow's 24 h against 14 days
    (1_209_600.0, 1_209_600, False),  # the queue's retention alone is not enough
    (2 * 1_209_600.0, 1_209_600, True),
    (2 * 3600.0, 3600, True),
    (2 * 3600.0 - 1, 3600, False),
])
def test_ttl_shorter_than_every_copy_of_a_message_is_refused(ttl: float, retention: int, ok: bool) -> None:
    if ok:
        BusOptions(idempotency_ttl_seconds=ttl, message_retention_seconds=retention)
    else:
        with pytest.raises(ConfigurationError, match="idempotency_ttl_seconds"):
            BusOptions(idempotency_ttl_seconds=ttl, message_retention_seconds=retention)


# ------------------------------------------------------------------ fuzzing _decode / _process
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from flowgate.reference.errors import MessageError  # noqa: E402
from flowgate.reference.listener import _Flight, _string_attributes  # noqa: E402

_VALID = place("fz", event_id="33333333-3333-4333-8333-333333333333")
_ATTRS = {k: v["StringValue"] for k, v in message_attributes(_VALID, encrypted=False, traceparent=None).items()}
_TEXT = st.text(max_size=40) | st.sampled_from(["", "PlaceOrder", "OrderPlaced", "1", "0", "-1", "9" * 30,
                                                "fz", "kms-aes256gcm-v1", "\ud800", "\x00"])


@st.composite
def _messages(draw: st.DrawFn) -> dict[str, Any]:
    attrs = dict(_ATTRS)
    for name in draw(st.lists(st.sampled_from(["CommandType", "EventType", "EntityId", "SequenceNo", "EventId",
                                               "Encryption", "CorrelationId"]), max_size=3)):
        if draw(st.booleans()):
            attrs.pop(name, None)
        else:
            attrs[name] = draw(_TEXT)
    body = encode(_VALID)
    choice = draw(st.integers(0, 3))
    if choice == 1:
        body = draw(st.text(max_size=200))
    elif choice == 2:
        start = draw(st.integers(0, len(body)))
        body = body[:start] + draw(st.text(max_size=20)) + body[start + draw(st.integers(0, 10)):]
    elif choice == 3:
        body = body.replace('"quantity":1', '"quantity":' + draw(st.sampled_from(
            ["1.5", "true", "null", "[1]", "1e400", "-0", "NaN", "\"1\"", "9" * 40, "[" * 3000 + "]" * 3000])))
    return {"MessageId": "m", "ReceiptHandle": "r", "Body": body,
            "MessageAttributes": {k: {"DataType": "String", "StringValue": v} for k, v in attrs.items()},
            "Attributes": {"ApproximateReceiveCount": "1"}}


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_messages())
def test_fuzz_decode_raises_only_message_errors_and_process_never_raises(m: dict[str, Any]) -> None:
    rig = _FUZZ_RIG
    try:
        message = rig.commands_listener._decode(m, _string_attributes(m))
    except MessageError:
        pass
    else:
        # a mutation may leave another well-formed message (a plaintext body whose eventId lost a
        # character, with no EventId attribute to contradict it): what decodes must agree with
        # every attribute it was sent with (contract section 2, decode rule 7)
        attrs = _string_attributes(m)
        assert message.name == attrs["CommandType"]
        assert message.entity_id == attrs["EntityId"]
        assert str(message.metadata.sequence_no) == attrs["SequenceNo"]
        if "EventId" in attrs:
            assert message.event_id == attrs["EventId"]
    assert rig.commands_listener._process(_Flight(m, 1, 0.0, 0.0)) in (True, False)


_FUZZ_RIG = Rig()


def test_every_reason_code_is_in_the_contract() -> None:
    """Each MessageError subclass's ``reason`` is a code the gate accepts and the DLQ-attribute schema
    allows (contract section 6), so no implementation is blamed for using the reference's codes."""
    import re
    from pathlib import Path

    import flowgate.reference.errors as errors
    from flowgate.harness.gate.dlq import DEAD_LETTER_REASONS

    codes = {c.reason for c in vars(errors).values()
             if isinstance(c, type) and issubclass(c, errors.MessageError) and c is not errors.MessageError}
    assert {"IdempotencyConflict", "HandlerError", "DecodeError"} <= codes
    assert codes <= DEAD_LETTER_REASONS
    docs = Path(__file__).resolve().parents[2] / "docs"
    pattern = json.loads((docs / "schemas" / "dead-letter-attributes.schema.json").read_text())
    regex = re.compile(re.search(r'"pattern": "([^"]+)"', json.dumps(pattern)).group(1))  # type: ignore[union-attr]
    contract = (docs / "contract.md").read_text()
    for code in codes:
        assert regex.match(f"{code}: detail"), code
        assert f"| `{code}` |" in contract, code


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["Version", "KeyId", "Destination", "EncryptedDataKey", "Nonce", "Tag", "Ciphertext", "extra"]),
       _JSON | st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()))
def test_fuzz_envelope_fields_only_decryption_errors(field: str, value: Any) -> None:
    """Any JSON value in any envelope field: opening raises DecryptionError (or succeeds when the
    field does not matter), never anything else."""
    kms = FakeKms(KEY)
    env = json.loads(base64.b64decode(KmsEnvelopeCipher(kms, KEY).seal("{}", B)))
    env[field] = value
    sealed = base64.b64encode(json.dumps(env).encode()).decode()
    with contextlib.suppress(DecryptionError):
        KmsEnvelopeCipher(kms, KEY).open(sealed, message_id="m-1", entity_id="o-1", message_type="PlaceOrder",
                                         destinations={"orders.fifo"})


def test_a_row_id_the_stores_refuse_is_poison_and_its_projection_is_recorded_failed() -> None:
    """A SKU of 201 characters decodes (payload strings are unbounded) but is the inventory view's
    row id, longer than any store keeps: the projection fails alike on every backend and the event
    is dead-lettered as DecodeError; the order itself and the other views are unaffected."""
    rig = Rig()
    cmd = new_command(PlaceOrder("c", "S" * 201, 1, 10), "o1", is_new=True, sequence_no=1)
    rig.send_message(cmd)
    rig.drain()
    assert rig.effects() == [cmd.event_id]
    rig.send_message(new_command(AuthorizePayment("p", 10), "o1", sequence_no=2))
    rig.send_message(new_command(ReserveInventory("S" * 201, 1), "o1", sequence_no=3))
    rig.drain()
    rig.drain(rig.views_listener)
    reasons = list(rig.dead().values())
    assert len(reasons) == 1
    assert reasons[0].startswith("DecodeError: row id")
    failed = rig.observer.of("project", "fail")
    assert failed
    assert {v["view"] for v in failed} == {"inventory"}


def _flight(message: Message, receive_count: int) -> _Flight:
    attrs = message_attributes(message, encrypted=False, traceparent=None)
    m = {"MessageId": f"m-{receive_count}", "ReceiptHandle": "r", "Body": encode(message),
         "MessageAttributes": attrs, "Attributes": {"ApproximateReceiveCount": str(receive_count)}}
    return _Flight(m, receive_count, 0.0, 0.0)


def test_any_exception_while_decoding_is_poison_decode_error_on_the_last_receive(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig()

    def explode(body: Any, registry: Any) -> Any:
        raise OverflowError("int too large to convert")

    monkeypatch.setattr("flowgate.reference.listener.decode", explode)
    assert rig.commands_listener._process(_flight(place("o1"), 1)) is False  # left for redelivery
    assert not rig.dead()
    rig.commands_listener._process(_flight(place("o1"), MAX_RECEIVES))  # forwarded, then deleted
    [reason] = rig.dead().values()
    assert reason == "DecodeError: undecodable message: OverflowError: int too large to convert"


def test_a_transport_error_while_decoding_is_never_poison_not_even_on_the_last_receive(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig()

    def unavailable(body: Any, registry: Any) -> Any:
        raise TransportError("KMS Decrypt failed: KMSInternalException")

    monkeypatch.setattr("flowgate.reference.listener.decode", unavailable)
    assert rig.commands_listener._process(_flight(place("o1"), MAX_RECEIVES + 5)) is False
    assert not rig.dead()
