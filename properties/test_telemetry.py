"""Telemetry and health under test, on the simulator (no LocalStack).

The real dispatchers and listeners run on :class:`flowgate.harness.sim.SimAws` with the OpenTelemetry SDK's
in-memory exporters (``InMemorySpanExporter``, ``InMemoryMetricReader``) handed to
:class:`flowgate.reference.telemetry.Telemetry`:

* one order's command, the saga's event and the view update form ONE trace -- client span ->
  ``AwsSqsCommandDispatcher.Dispatch`` -> ``AwsSqsCommandListener.ProcessMessage`` (command queue)
  -> ``AwsSnsEventDispatcher.Dispatch`` -> ``AwsSqsCommandListener.ProcessMessage`` (view queue),
  each the parent of the next, the W3C ``traceparent`` of each producer span on the wire, and the
  correlation id on every hop (span attribute and ``CorrelationId`` wire attribute);
* every metric name of doc 000 is emitted, with the counts the run implies;
* ``check_health`` reports every queue, DLQ, topic and the KMS key, and names what is missing.

The names are written out in :mod:`flowgate.fixtures.telemetry` as doc 000 spells them (not imported from
the reference), so a renamed metric or span fails. A failure names its anomaly kind
(``flowgate-anomalies: ...``) for ``flowgate mutants``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from flowgate.fixtures.telemetry import (
    COMMAND_DISPATCH,
    EVENT_DISPATCH,
    PROCESS,
    SEED_METRICS,
    InMemoryTelemetry,
    RecordingSqs,
    check_order_trace,
    span_tree,
)
from flowgate.harness.sim import SimAws
from flowgate.reference.config import BusConfiguration
from flowgate.reference.domain.orders import (
    ORDER_COMMANDS,
    ORDER_EVENTS,
    AuthorizePayment,
    ConfirmOrder,
    InventoryView,
    OrderSaga,
    OrderView,
    PaymentsView,
    PlaceOrder,
    ReserveInventory,
    order_registry,
)
from flowgate.reference.health import check_health
from flowgate.reference.messages import new_command
from flowgate.reference.worker import Runtime, build_runtime

COMMANDS, EVENTS, VIEWS = "orders.fifo", "order-events.fifo", "order-views.fifo"


@dataclass
class Rig:
    aws: SimAws
    sqs: RecordingSqs
    runtime: Runtime
    otel: InMemoryTelemetry

    def poll(self, queue: str) -> int:
        return next(lst for lst in self.runtime.listeners if lst.queue == queue).poll_once()


@pytest.fixture
def rig() -> Iterator[Rig]:
    aws = SimAws(seed=17)
    otel = InMemoryTelemetry.create()
    config = (
        BusConfiguration(order_registry())
        .send(*ORDER_COMMANDS)
        .to_queue(COMMANDS)
        .raise_events(*ORDER_EVENTS)
        .to_topic(EVENTS)
        .listen_to(COMMANDS)
        .subscribe(VIEWS)
        .to_topics(EVENTS)
        .with_options(visibility_timeout=10, wait_time_seconds=0, max_receive_count=3)
    )
    sqs = RecordingSqs(aws.client("sqs"))
    runtime = build_runtime(
        config,
        sqs=sqs,
        sns=aws.client("sns"),
        sts=aws.client("sts"),
        kms=aws.client("kms"),
        sagas=[OrderSaga()],
        views=[OrderView(), InventoryView(), PaymentsView()],
        clock=aws.clock,
        telemetry=otel.telemetry,
    )
    try:
        yield Rig(aws, sqs, runtime, otel)
    finally:
        runtime.close()


def test_one_order_is_one_trace_from_the_client_command_to_the_view_update(rig: Rig) -> None:
    client = rig.otel.tracer_provider.get_tracer("order-client")
    with client.start_as_current_span("client PlaceOrder") as root:
        rig.runtime.command_bus.publish(
            new_command(PlaceOrder("C1", "SKU-1", 2, 500), "o-1", is_new=True, correlation_id="corr-o-1")
        )
    assert rig.poll(COMMANDS) == 1
    assert rig.poll(VIEWS) == 1
    assert rig.runtime.processor.storage.get_view("orders", "o-1") is not None, "the view was not updated"
    spans = rig.otel.finished()
    print(f"\ntrace of order o-1 ({len(spans)} spans):\n{span_tree(spans)}")
    urls = rig.runtime.resources.queue_urls
    (command_wire,) = rig.sqs.attributes(urls[COMMANDS])
    (event_wire,) = rig.sqs.attributes(urls[VIEWS])
    trace = check_order_trace(
        spans,
        root,
        command_queue=COMMANDS,
        view_queue=VIEWS,
        event_type="OrderPlaced",
        correlation_id="corr-o-1",
        wire={COMMANDS: command_wire, VIEWS: event_wire},
    )
    assert not trace.problems, trace.report()
    assert len(spans) == 5  # the client's span and the four hops, nothing else


def test_every_seed_metric_is_emitted(rig: Rig) -> None:
    assert rig.poll(COMMANDS) == rig.poll(VIEWS) == 0  # the listeners' start-up probes, with SNS up
    lifecycle = (
        PlaceOrder("C1", "SKU-1", 2, 500),
        AuthorizePayment("pay-1", 500),
        ReserveInventory("SKU-1", 2),
        ConfirmOrder(),
    )
    for payload in lifecycle:
        rig.runtime.command_bus.publish(new_command(payload, "o-1", correlation_id="corr-o-1"))
    # a dispatch that fails: SQS unreachable for the producer
    rig.aws.set_unreachable("sqs")
    with pytest.raises(Exception, match="SendMessage"):
        rig.runtime.commands.dispatch(new_command(PlaceOrder("C2", "SKU-1", 1, 1), "o-2", sequence_no=1))
    rig.aws.set_unreachable("sqs", False)
    # an event publish that fails: SNS unreachable while the commands are processed
    rig.aws.set_unreachable("sns")
    assert rig.poll(COMMANDS) == 4
    rig.aws.set_unreachable("sns", False)
    for _ in range(6):  # the breaker closes, redeliveries are duplicates and re-publish
        rig.aws.clock.advance(31)
        rig.poll(COMMANDS)
        rig.poll(VIEWS)
    assert rig.runtime.processor.storage.get_view("orders", "o-1")["status"] == "CONFIRMED"  # type: ignore[index]

    got = rig.otel.metric_totals()
    missing = [name for name in SEED_METRICS if name not in got]
    print(f"\nmetrics: { {k: got[k] for k in sorted(got)} }")
    assert not missing, f"flowgate-anomalies: missing-metric\nnot emitted: {missing}"
    assert got["sourceflow.aws.command.dispatched"] == 4
    assert got["sourceflow.aws.command.dispatch_duration"] == 4
    assert got["sourceflow.aws.command.dispatch_error"] == 1
    assert got["sourceflow.aws.event.published"] >= 4  # one per command's event, re-publishes too
    assert got["sourceflow.aws.event.publish_duration"] == got["sourceflow.aws.event.published"]
    assert got["sourceflow.aws.event.publish_error"] >= 1
    assert got["sourceflow.aws.message.received"] >= 8  # 4 commands (+ redeliveries) + >= 4 events
    assert got["sourceflow.aws.message.processed"] >= 8
    assert got["sourceflow.aws.message.processing_duration"] == got["sourceflow.aws.message.processed"]
    assert got["sourceflow.aws.message.processing_error"] >= 1
    # producer and consumer spans for every hop of the run, failed sends with ERROR status
    spans = rig.otel.finished()
    names = {s.name for s in spans}
    assert {COMMAND_DISPATCH, EVENT_DISPATCH, PROCESS} <= names, f"flowgate-anomalies: missing-span\n{names}"
    assert sum(s.name == COMMAND_DISPATCH for s in spans) == 5
    assert any(s.name == COMMAND_DISPATCH and not s.status.is_ok for s in spans)
    assert any(s.name == EVENT_DISPATCH and not s.status.is_ok for s in spans)


def test_health_check_on_the_simulator_names_what_is_missing(rig: Rig) -> None:
    rt, sqs, sns, kms = rig.runtime, rig.aws.client("sqs"), rig.aws.client("sns"), rig.aws.client("kms")
    report = check_health(rt.config, rt.resources, sqs=sqs, sns=sns, kms=kms, listeners=rt.listeners)
    assert report.status == "ok", report.checks
    expected = {
        f"sqs:{COMMANDS}",
        f"sqs:{COMMANDS}:dlq",
        f"sqs:{VIEWS}",
        f"sqs:{VIEWS}:dlq",
        f"sns:{EVENTS}",
        f"breaker:{COMMANDS}",
        f"breaker:{VIEWS}",
    }
    assert set(report.checks) == expected
    # a DLQ and the topic deleted: unhealthy, and exactly those checks say why
    sqs.delete_queue(QueueUrl=rt.resources.dlq_urls[VIEWS])
    sns.delete_topic(TopicArn=rt.resources.topic_arns[EVENTS])
    report = check_health(rt.config, rt.resources, sqs=sqs, sns=sns, kms=kms, listeners=rt.listeners)
    assert report.status == "unhealthy", f"flowgate-anomalies: health-ok-while-missing\n{report.checks}"
    failing = {name for name, value in report.checks.items() if value != "ok"}
    assert failing == {f"sqs:{VIEWS}:dlq", f"sns:{EVENTS}"}, (
        f"flowgate-anomalies: health-ok-while-missing\n{report.checks}"
    )
    # encryption configured: the key is checked; an unknown key fails, a missing client is named
    key = kms.create_key(Description="health")["KeyMetadata"]["Arn"]
    rt.config.with_encryption(key)
    assert check_health(rt.config, rt.resources, sqs=sqs, sns=sns, kms=kms).checks["kms"] == "ok"
    rt.config.with_encryption("arn:aws:kms:us-east-1:000000000000:key/00000000-0000-0000-0000-000000000000")
    assert check_health(rt.config, rt.resources, sqs=sqs, sns=sns, kms=kms).checks["kms"] != "ok"
    assert check_health(rt.config, rt.resources, sqs=sqs, sns=sns).checks["kms"] != "ok"
    # SQS unreachable: every queue check fails, the report never raises
    rig.aws.set_unreachable("sqs")
    report = check_health(rt.config, rt.resources, sqs=rig.aws.client("sqs"), sns=sns)
    assert report.status == "unhealthy"
    assert all(report.checks[q] != "ok" for q in (f"sqs:{COMMANDS}", f"sqs:{VIEWS}"))


def test_a_malformed_traceparent_is_ignored_not_refused(rig: Rig) -> None:
    """Contract v1.4 (telemetry): ``traceparent`` is OPTIONAL; a bad value starts a new trace and
    the message takes effect."""
    cmd = new_command(
        PlaceOrder("C1", "SKU-1", 1, 100), "o-9", is_new=True, sequence_no=1, correlation_id="c-9"
    )
    entry = rig.runtime.commands._entry(cmd, COMMANDS)
    entry["MessageAttributes"]["traceparent"] = {"DataType": "String", "StringValue": "00-zz-not-a-trace"}
    rig.aws.client("sqs").send_message(QueueUrl=rig.runtime.resources.queue_urls[COMMANDS], **entry)
    assert rig.poll(COMMANDS) == 1
    assert rig.runtime.processor.storage.get_entity("order", "o-9") is not None
    (handle,) = [s for s in rig.otel.finished() if s.name == PROCESS]
    assert handle.parent is None  # a new trace
    assert (handle.attributes or {}).get("sourceflow.outcome") == "done"
