"""One order's trace on LocalStack: the simulator's trace property (properties/test_telemetry.py)
against the real SQS/SNS wire -- SNS raw delivery must carry the ``traceparent`` and
``CorrelationId`` attributes to the view queue."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from flowgate.fixtures.telemetry import InMemoryTelemetry, RecordingSqs, check_order_trace, span_tree
from flowgate.reference.config import BusConfiguration
from flowgate.reference.domain.orders import (
    ORDER_COMMANDS,
    ORDER_EVENTS,
    InventoryView,
    OrderSaga,
    OrderView,
    PaymentsView,
    PlaceOrder,
)
from flowgate.reference.messages import TypeRegistry, new_command
from flowgate.reference.worker import build_runtime

pytestmark = pytest.mark.localstack


def test_one_order_is_one_trace_on_localstack(
    aws: SimpleNamespace, aws_cleanup: list[Any], registry: TypeRegistry, uid: str
) -> None:
    commands, events, views = f"fg-tr-{uid}.fifo", f"fg-tr-events-{uid}.fifo", f"fg-tr-views-{uid}.fifo"
    config = (
        BusConfiguration(registry)
        .send(*ORDER_COMMANDS)
        .to_queue(commands)
        .raise_events(*ORDER_EVENTS)
        .to_topic(events)
        .listen_to(commands)
        .subscribe(views)
        .to_topics(events)
        .with_options(visibility_timeout=20, wait_time_seconds=1)
    )
    otel = InMemoryTelemetry.create()
    sqs = RecordingSqs(aws.sqs)
    runtime = build_runtime(
        config,
        sqs=sqs,
        sns=aws.sns,
        sts=aws.sts,
        sagas=[OrderSaga()],
        views=[OrderView(), InventoryView(), PaymentsView()],
        telemetry=otel.telemetry,
    )
    aws_cleanup.append(runtime.resources)
    try:
        with otel.tracer_provider.get_tracer("order-client").start_as_current_span(
            "client PlaceOrder"
        ) as root:
            runtime.command_bus.publish(
                new_command(
                    PlaceOrder("C1", "SKU-1", 2, 500), f"o-{uid}", is_new=True, correlation_id=f"corr-{uid}"
                )
            )
        deadline = time.monotonic() + 30
        while (
            runtime.processor.storage.get_view("orders", f"o-{uid}") is None and time.monotonic() < deadline
        ):
            runtime.poll_all_once()
    finally:
        runtime.close()
    assert runtime.processor.storage.get_view("orders", f"o-{uid}") is not None, "the view was not updated"
    spans = otel.finished()
    print(f"\ntrace of order o-{uid} on LocalStack ({len(spans)} spans):\n{span_tree(spans)}")
    urls = runtime.resources.queue_urls
    trace = check_order_trace(
        spans,
        root,
        command_queue=commands,
        view_queue=views,
        event_type="OrderPlaced",
        correlation_id=f"corr-{uid}",
        wire={commands: sqs.attributes(urls[commands])[0], views: sqs.attributes(urls[views])[0]},
    )
    assert not trace.problems, trace.report()
