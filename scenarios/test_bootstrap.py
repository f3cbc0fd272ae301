"""Bootstrapper on LocalStack: idempotent on repeated starts, adopts and reconciles pre-existing
resources, and the FIFO rules: a pre-existing FIFO queue WITHOUT content-based dedup is adopted
(logged; explicit dedup ids keep a resend out), a FIFO topic feeding a standard queue is a clear
configuration error (SQS itself forbids a standard queue named ``.fifo``, so a FIFO-ness
mismatch cannot be staged on LocalStack)."""

from __future__ import annotations

import json
import logging

import pytest

from flowgate.fixtures.scenario import OrderTopology, Producer, bootstrap, bus_config, queue_depth
from flowgate.reference.bootstrap import Bootstrapper
from flowgate.reference.domain.orders import PlaceOrder
from flowgate.reference.errors import ConfigurationError
from flowgate.reference.messages import new_command

pytestmark = pytest.mark.localstack


def test_bootstrap_idempotent_and_adopts(scenario, registry, summary, caplog):
    s = scenario
    topo = OrderTopology(s.uid)
    config = topo.config(visibility_timeout=7, max_receive_count=4)
    # pre-existing resources with other settings: FIFO queue without content-based dedup,
    # another visibility timeout, no redrive policy; a FIFO topic without content-based dedup
    pre = s.aws.sqs.create_queue(QueueName=topo.commands, Attributes={"FifoQueue": "true", "VisibilityTimeout": "99"})
    s.aws.sns.create_topic(Name=topo.topic, Attributes={"FifoTopic": "true"})
    problems = []
    with caplog.at_level(logging.INFO, logger="flowgate.reference.bootstrap"):
        first = bootstrap(config, registry, s.aws)
    second = bootstrap(config, registry, s.aws)
    third = bootstrap(config, registry, s.aws)
    if not (first == second == third):
        problems.append(f"repeated bootstraps differ: {first} / {second}")
    if first.queue_urls[topo.commands] != pre["QueueUrl"]:
        problems.append("pre-existing queue not adopted")
    attrs = s.aws.sqs.get_queue_attributes(QueueUrl=pre["QueueUrl"], AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attrs.get("RedrivePolicy") or "{}")
    if attrs.get("VisibilityTimeout") != "7":
        problems.append(f"visibility timeout not reconciled: {attrs.get('VisibilityTimeout')}")
    if redrive.get("deadLetterTargetArn") != first.dlq_arns[topo.commands] or str(redrive.get("maxReceiveCount")) != "12":  # max(10, 3 x 4): headroom
        problems.append(f"redrive policy not reconciled: {redrive}")
    if attrs.get("ContentBasedDeduplication") == "true":
        problems.append("adoption silently changed ContentBasedDeduplication")
    if not any("without content-based dedup" in r.getMessage() for r in caplog.records):
        problems.append("adopting a FIFO queue without content-based dedup was not logged")
    policy = json.loads(s.aws.sqs.get_queue_attributes(QueueUrl=first.queue_urls[topo.view_queue("views")],
                                                       AttributeNames=["Policy"])["Attributes"].get("Policy", "{}"))
    if [st.get("Sid") for st in policy.get("Statement", [])].count("flowgate-sns-to-sqs") != 1:
        problems.append(f"queue policy statement not exactly once after 3 bootstraps: {policy}")
    subs = s.aws.sns.list_subscriptions_by_topic(TopicArn=first.topic_arns[topo.topic])["Subscriptions"]
    if len(subs) != 1:
        problems.append(f"{len(subs)} subscriptions after 3 bootstraps (want 1)")
    # explicit dedup ids: a resend is dropped even though the queue has no content-based dedup
    producer = Producer(config, registry, s.aws, first, s.history)
    cmd = producer.publish(new_command(PlaceOrder("c-1", "SKU-1", 1, 100), f"ord-{s.uid}"))
    producer.resend(cmd)
    producer.close()
    if queue_depth(s.aws, pre["QueueUrl"]) != 1:
        problems.append(f"resend not deduplicated on the adopted queue: depth {queue_depth(s.aws, pre['QueueUrl'])}")
    # clear errors: FIFO topic -> standard queue; FIFO-ness contradicting the name
    bad = topo.config()
    bad["subscribe"] = {f"{topo.prefix}-plain": [topo.topic]}
    with pytest.raises(ConfigurationError, match="FIFO topic"):
        Bootstrapper(bus_config(bad, registry), sqs=s.aws.sqs, sns=s.aws.sns, sts=s.aws.sts).run()
    summary.add("bootstrapper: idempotent, adopts, FIFO rules", orders=1, anomalies=len(problems),
                notes="3 starts, pre-existing queue+topic adopted")
    assert not problems, problems
