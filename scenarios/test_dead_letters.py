"""Dead letters on LocalStack, worker PROCESSES.

* Poison -- bad JSON, unknown type, tampered ciphertext, wrong KMS key, oversized body -- ends in
  the queue's DLQ with a ``DeadLetterReason`` once ApproximateReceiveCount reaches
  maxReceiveCount (3), and never produces an effect (``dead_letter`` and
  ``confidentiality_integrity`` checkers, plus the DLQ's content read back).
* A business failure (ConfirmOrder for an order never placed) is retried, then recorded in the
  business dead-letter store, never in the SQS DLQ.
* DLQ replay (``flowgate.reference.dlq.replay_dead_letters``) moves dead-lettered commands back into
  the FIFO queue in group order: per-entity order is judged on the replayed commands' effects.
* Several dead letters of one entity (business failures and poison), replayed after their cause
  is fixed (D24): the refused commands take effect once, in order; the poison goes back to the
  DLQ with its reason (``dlq_replay`` ops; ``total_queue``, ``per_entity_order``,
  ``exactly_once_effect``, ``dead_letter``).
"""

from __future__ import annotations

import dataclasses

import pytest

from flowgate.fixtures.scenario import (
    OrderTopology,
    Producer,
    bootstrap,
    drain,
    judge,
    queue_depth,
    sqlite_url,
)
from flowgate.harness.history import HARNESS, HistoryObserver
from flowgate.harness.workload import generate_orders
from flowgate.reference import dlq
from flowgate.reference.dispatchers import MAX_BODY_BYTES, build_body, message_attributes
from flowgate.reference.domain.orders import AuthorizePayment, ConfirmOrder, PlaceOrder, ReserveInventory
from flowgate.reference.envelope import KmsEnvelopeCipher, build_envelope, parse_envelope
from flowgate.reference.messages import new_command
from flowgate.reference.sql import SqlStorage

pytestmark = pytest.mark.localstack


def _raw_send(s, url, body, attrs, group, dedup):
    return s.aws.sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attrs,
                                  MessageGroupId=group, MessageDeduplicationId=dedup)["MessageId"]


def _poison(s, kind, message_id, **extra):
    s.history.append(HARNESS, "info", "poison", {"message_id": message_id, "kind": kind, **extra})


def test_poison_and_business_dead_letters(scenario, registry, kms_key, summary):
    s = scenario
    plain = OrderTopology(s.uid + "p")
    sealed = OrderTopology(s.uid + "k")
    options = {"visibility_timeout": 1, "max_receive_count": 3, "business_max_attempts": 2}
    stores = {t: sqlite_url(s.tmp / f"{t}.db") for t in ("plain", "kms")}
    plain_cfg = plain.config(store=stores["plain"], **options)
    kms_cfg = sealed.config(store=stores["kms"], kms_key=kms_key, **options)
    plain_res = bootstrap(plain_cfg, registry, s.aws)
    kms_res = bootstrap(kms_cfg, registry, s.aws)
    s.workers.spawn("plain", plain_cfg)
    s.workers.spawn("kms", kms_cfg)
    purl, kurl = plain_res.queue_urls[plain.commands], kms_res.queue_urls[sealed.commands]
    cmd = lambda: new_command(PlaceOrder("c-9", "SKU-9", 1, 100), f"ord-{s.uid}-x", sequence_no=1)  # noqa: E731
    poison = 0
    # bad JSON
    c = cmd()
    attrs = message_attributes(c, encrypted=False, traceparent=None)
    _poison(s, "bad_json", _raw_send(s, purl, "{not json", attrs, "p1", "p1"), command_id=c.event_id)
    poison += 1
    # unknown type
    c = cmd()
    attrs = dict(message_attributes(c, encrypted=False, traceparent=None),
                 CommandType={"DataType": "String", "StringValue": "LaunchMissiles"})
    _poison(s, "unknown_type", _raw_send(s, purl, build_body(c, plain.commands, None).replace("PlaceOrder", "LaunchMissiles"),
                                         attrs, "p2", "p2"), command_id=c.event_id)
    poison += 1
    # oversized: SQS itself refuses bodies over 256 KiB at send time (recorded, not sent)
    c = cmd()
    try:
        mid = _raw_send(s, purl, "x" * (MAX_BODY_BYTES + 1), message_attributes(c, encrypted=False, traceparent=None),
                        "p3", "p3")
        oversized = "accepted by LocalStack, dead-lettered by the consumer"
        _poison(s, "oversized", mid, command_id=c.event_id)
        poison += 1
    except Exception as exc:  # botocore ClientError: the refusal is the expected outcome
        oversized = f"refused at send ({type(exc).__name__})"
        s.history.append(HARNESS, "fail", "poison", {"poison_id": "oversized", "kind": "oversized", "error": str(exc)[:200]})
    # tampered ciphertext
    cipher = KmsEnvelopeCipher(s.aws.kms, kms_key)
    c = cmd()
    fields = parse_envelope(build_body(c, sealed.commands, cipher))
    fields["Ciphertext"] = bytes([fields["Ciphertext"][0] ^ 1]) + fields["Ciphertext"][1:]
    _poison(s, "tampered", _raw_send(s, kurl, build_envelope(fields), message_attributes(c, encrypted=True, traceparent=None),
                                     "k1", "k1"), command_id=c.event_id)
    poison += 1
    # wrong key
    other = s.aws.kms.create_key(Description="flowgate wrong key")["KeyMetadata"]["Arn"]
    try:
        c = cmd()
        _poison(s, "wrong_key", _raw_send(s, kurl, build_body(c, sealed.commands, KmsEnvelopeCipher(s.aws.kms, other)),
                                          message_attributes(c, encrypted=True, traceparent=None), "k2", "k2"),
                command_id=c.event_id)
        poison += 1
    finally:
        s.aws.kms.schedule_key_deletion(KeyId=other, PendingWindowInDays=7)
    # business failure: confirm an order that was never placed
    producer = Producer(plain_cfg, registry, s.aws, plain_res, s.history)
    producer.publish(new_command(ConfirmOrder(), f"ord-{s.uid}-never"), expect_business_failure=True)
    producer.close()
    result = drain(s.history, s.workers, s.aws, [purl, kurl], timeout=60, settle=2,
                   until=lambda ops: sum(o["f"] == "dead_letter" for o in ops) >= poison
                   and sum(o["f"] == "business_dead_letter" for o in ops) >= 1)
    s.workers.terminate_all()
    problems = list(result.notes)
    # read the DLQs back: every poison message is there, with a reason
    reasons = []
    for url in (plain_res.dlq_urls[plain.commands], kms_res.dlq_urls[sealed.commands]):
        for _ in range(5):
            got = s.aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                            MessageAttributeNames=["All"]).get("Messages", [])
            if not got:
                break
            for m in got:
                reasons.append((m.get("MessageAttributes") or {}).get("DeadLetterReason", {}).get("StringValue"))
    if len(reasons) != poison or not all(reasons):
        problems.append(f"DLQs hold {len(reasons)} messages (want {poison}), reasons {reasons}")
    dead = SqlStorage(registry, stores["plain"]).dead_letters()
    if len(dead) != 1 or "InvalidTransition" not in dead[0].reason:
        problems.append(f"business dead-letter store: {dead}")
    judge(s.workers.merged_history(), summary=summary, scenario="dead letters: poison + business",
          orders=1, faults=poison, extra_anomalies=problems, require_encryption=False,
          notes=f"{poison} poison, 1 business failure, oversized {oversized}; reasons: "
                + "; ".join(str(r)[:40] for r in reasons))


def test_dlq_replay_keeps_group_order(scenario, registry, summary):
    s = scenario
    topo = OrderTopology(s.uid)
    config = topo.config(store=sqlite_url(s.tmp / "store.db"), visibility_timeout=5)
    res = bootstrap(config, registry, s.aws)
    # dead-lettered commands: sent (by the reference's own dispatcher) straight into the DLQ, as
    # a redrive would have left them -- same group ids, dedup ids and attributes
    into_dlq = dataclasses.replace(res, queue_urls={**res.queue_urls, topo.commands: res.dlq_urls[topo.commands]})
    producer = Producer(config, registry, s.aws, into_dlq, s.history)
    scripts = generate_orders(s.seed + 7, 6, cancel_ratio=0.0)
    commands = producer.send_scripts(scripts)
    producer.close()
    moved = dlq.replay_dead_letters(s.aws.sqs, dlq_url=res.dlq_urls[topo.commands], source_url=res.queue_urls[topo.commands],
                                fifo=True, dedup_suffix="-replay")
    s.history.nemesis("dlq_replay", {"moved": moved})
    s.workers.spawn("w1", config)
    result = drain(s.history, s.workers, s.aws, [res.queue_urls[topo.commands]], effects=len(commands), timeout=60)
    s.workers.terminate_all()
    problems = list(result.notes)
    if moved != len(commands):
        problems.append(f"replayed {moved} of {len(commands)} dead letters")
    if queue_depth(s.aws, res.dlq_urls[topo.commands]):
        problems.append("DLQ not empty after replay")
    judge(s.workers.merged_history(), summary=summary, scenario="DLQ replay keeps FIFO group order",
          orders=len(scripts), faults=0, extra_anomalies=problems, notes=f"{moved} moved back")


def _wait(s, what, pred, timeout=40.0):
    """Poll the workers' histories until ``pred(ops)`` holds (bounded); a miss is returned as a note."""
    import time

    deadline = time.monotonic() + (min(timeout, 25.0) if s.mutant else timeout)
    while time.monotonic() < deadline:
        if pred(list(s.workers.worker_ops())):
            return []
        time.sleep(0.5)
    return [f"timed out waiting for {what}"]


def test_replay_of_fixed_dead_letters_of_one_entity(scenario, registry, summary):
    """Contract v1.3 section 7 / D24: several dead letters of one FIFO group -- three commands the
    domain refused (their order was not placed yet: the cause) and a poison message between them
    -- are replayed, in order, after the cause is fixed (the PlaceOrder is sent): the three take
    effect once each, in sequence order; the poison goes back to the DLQ with DecodeError."""
    s = scenario
    topo = OrderTopology(s.uid)
    config = topo.config(store=sqlite_url(s.tmp / "store.db"), visibility_timeout=1, max_receive_count=3,
                         business_max_attempts=2, business_failures_to_dlq=True)
    res = bootstrap(config, registry, s.aws)
    url, dlq_url = res.queue_urls[topo.commands], res.dlq_urls[topo.commands]
    s.workers.spawn("w1", config)
    producer = Producer(config, registry, s.aws, res, s.history)
    entity = f"ord-{s.uid}-r"
    later = [AuthorizePayment("pay-1", 700), ReserveInventory("SKU-7", 2), ConfirmOrder()]
    refused = [new_command(later[0], entity, sequence_no=2)]
    producer.publish(refused[0], expect_business_failure=True)
    fake = new_command(ConfirmOrder(), entity, sequence_no=9)  # valid attributes, a body that is not JSON
    _poison(s, "bad_json", _raw_send(s, url, "{not json", message_attributes(fake, encrypted=False, traceparent=None),
                                     entity, f"{s.uid}-poison"), expected_reason="DecodeError")
    for seq, payload in enumerate(later[1:], start=3):
        refused.append(new_command(payload, entity, sequence_no=seq))
        producer.publish(refused[-1], expect_business_failure=True)
    problems = _wait(s, "3 business dead letters and the poison's", lambda ops: sum(
        o["f"] == "business_dead_letter" for o in ops) >= 3 and sum(o["f"] == "dead_letter" for o in ops) >= 4)
    # the fix: the order is placed
    producer.publish(new_command(PlaceOrder("c-1", "SKU-7", 2, 700), entity, sequence_no=1, is_new=True))
    problems += _wait(s, "the PlaceOrder's effect", lambda ops: any(o["f"] == "effect" and o["value"].get("seq") == 1
                                                                     for o in ops))
    producer.close()
    depth = queue_depth(s.aws, dlq_url)
    moved = dlq.replay_dead_letters(s.aws.sqs, dlq_url=dlq_url, source_url=url, fifo=True, limit=depth,
                                    dedup_suffix="-replay", observer=HistoryObserver(s.history, "dlq-replay"))
    result = drain(s.history, s.workers, s.aws, [url], effects=4, timeout=45,
                   until=lambda ops: sum(o["f"] == "dead_letter" for o in ops) >= 5)
    s.workers.terminate_all()
    problems += list(result.notes)
    if moved != 4:
        problems.append(f"replayed {moved} dead letters (want 4: 3 refused commands and the poison)")
    left = s.aws.sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                     MessageAttributeNames=["All"]).get("Messages", [])
    reasons = [(m.get("MessageAttributes") or {}).get("DeadLetterReason", {}).get("StringValue", "") for m in left]
    if len(reasons) != 1 or not reasons[0].startswith("DecodeError"):
        problems.append(f"after the replay the DLQ holds {reasons} (want the poison alone, with DecodeError)")
    judge(s.workers.merged_history(), summary=summary, scenario="DLQ replay of fixed dead letters of one entity",
          orders=1, faults=moved, extra_anomalies=problems, require_encryption=False,
          notes=f"{moved} replayed; DLQ after: {[r[:30] for r in reasons]}")
