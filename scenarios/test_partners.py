"""Partner feed (NexusStream, ``004_48c16dd55921a57a.txt``; ``reference/domain/partners.py``) on
LocalStack with a worker PROCESS: valid partner orders are accepted (``PartnerOrderValidated``
to the accepted topic), invalid ones (unknown partner, missing SKU, quantity <= 0) go to the
error queue (``PartnerOrderRejected`` topic -> error queue) with their errors, and duplicates by
``partnerId:externalOrderId`` are dropped: a resubmission within the FIFO dedup window by SQS, one
"after the window" (new dedup id, same partner key) by the idempotency store."""

from __future__ import annotations

import dataclasses

import pytest

from flowgate.fixtures.scenario import Producer, WireTap, bootstrap, drain, judge, sqlite_url
from flowgate.reference.dispatchers import build_body, message_attributes
from flowgate.reference.domain.partners import SubmitPartnerOrder, partner_command

pytestmark = pytest.mark.localstack

VALID = [("PARTNER_A", "A-1", "SKU-1", 2, 500), ("PARTNER_A", "A-2", "SKU-2", 1, 0),
         ("PARTNER_B", "B-1", "SKU-1", 5, 1200), ("PARTNER_B", "B-2", "SKU-3", 1, 99)]
INVALID = [("PARTNER_X", "X-1", "SKU-1", 1, 100), ("PARTNER_A", "A-3", "", 1, 100),
           ("PARTNER_B", "B-3", "SKU-1", 0, 100)]


def test_partner_feed(scenario, registry, summary):
    s = scenario
    p = f"fg-{s.uid}"
    queue, ok_topic, err_topic = f"{p}-partner-orders.fifo", f"{p}-partner-accepted.fifo", f"{p}-partner-rejected.fifo"
    config = {"domain": "partners", "region": "us-east-1",
              "send": {queue: ["SubmitPartnerOrder"]},
              "raise": {ok_topic: ["PartnerOrderValidated"], err_topic: ["PartnerOrderRejected"]},
              "listen": [queue], "idempotency": {"url": sqlite_url(s.tmp / "partners.db")},
              "options": {"visibility_timeout": 5, "wait_time_seconds": 1}}
    res = bootstrap(config, registry, s.aws)
    accepted = WireTap(s.aws, res.topic_arns[ok_topic], f"{p}-accepted.fifo", s.history)
    errors = WireTap(s.aws, res.topic_arns[err_topic], f"{p}-errors.fifo", s.history)
    s.workers.spawn("w1", config)
    producer = Producer(config, registry, s.aws, res, s.history)
    sent = [producer.publish(partner_command(SubmitPartnerOrder(*o))) for o in VALID + INVALID]
    for again in (VALID[0], INVALID[0]):  # resubmitted: same partner key -> same dedup id
        s.history.nemesis("duplicate_delivery", {"partner_key": f"{again[0]}:{again[1]}", "window": "within"})
        producer.resend(partner_command(SubmitPartnerOrder(*again)))
    # the same command resubmitted (its sequence number as first sent: 1; 0 is "unassigned" and
    # never valid on the wire), with a dedup id SQS has not seen
    first = partner_command(SubmitPartnerOrder(*VALID[1]))
    late = dataclasses.replace(first, metadata=dataclasses.replace(first.metadata, sequence_no=1))
    s.history.nemesis("duplicate_delivery", {"partner_key": late.entity_id, "window": "after (new dedup id)"})
    s.aws.sqs.send_message(QueueUrl=res.queue_urls[queue], MessageBody=build_body(late, queue, None),
                           MessageAttributes=message_attributes(late, encrypted=False, traceparent=None),
                           MessageGroupId=late.entity_id, MessageDeduplicationId=f"{late.event_id}-late")
    producer.close()
    result = drain(s.history, s.workers, s.aws, [res.queue_urls[queue]], effects=len(sent), timeout=60,
                   until=lambda ops: any(o["f"] == "duplicate" for o in ops), settle=2)
    s.workers.terminate_all()
    accepted.collect(until=len(VALID) + 1, timeout=4)
    errors.collect(until=len(INVALID) + 1, timeout=4)
    keys = lambda msgs: sorted((m["MessageAttributes"]["EntityId"]["StringValue"]) for m in msgs)  # noqa: E731
    problems = list(result.notes)
    want_ok, want_err = sorted(f"{o[0]}:{o[1]}" for o in VALID), sorted(f"{o[0]}:{o[1]}" for o in INVALID)
    if keys(accepted.messages) != want_ok:
        problems.append(f"accepted {keys(accepted.messages)} != {want_ok}")
    if keys(errors.messages) != want_err:
        problems.append(f"error queue {keys(errors.messages)} != {want_err}")
    for m in errors.messages:
        if '"errors"' not in m["Body"]:
            problems.append(f"rejection without errors: {m['Body'][:200]}")
    judge(s.workers.merged_history(), summary=summary, scenario="partner feed: valid/invalid/duplicates",
          orders=len(sent), faults=3, extra_anomalies=problems,
          notes=f"{len(accepted.messages)} accepted, {len(errors.messages)} to the error queue, 3 resubmissions")
