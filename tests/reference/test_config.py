"""Fluent configuration and start-up validation (the IAM policies: properties/test_iam.py)."""

from __future__ import annotations

import pytest

from flowgate.reference.config import BusConfiguration, BusOptions, dlq_name
from flowgate.reference.domain import (
    ConfirmOrder,
    OrderPlaced,
    OrderSaga,
    OrderView,
    PartnerOrderSaga,
    PlaceOrder,
    SubmitPartnerOrder,
)
from flowgate.reference.errors import ConfigurationError
from flowgate.reference.messages import TypeRegistry


def base(registry: TypeRegistry) -> BusConfiguration:
    return (BusConfiguration(registry)
            .send(PlaceOrder, ConfirmOrder).to_queue("orders.fifo")
            .raise_events(OrderPlaced).to_topic("order-events.fifo")
            .listen_to("orders.fifo")
            .subscribe("order-views.fifo").to_topics("order-events.fifo"))


def test_fluent_shape_and_queries(registry: TypeRegistry) -> None:
    cfg = base(registry)
    cfg.validate(sagas=[OrderSaga()], views=[OrderView()])
    assert cfg.queue_for("PlaceOrder") == "orders.fifo"
    assert cfg.topic_for("OrderPlaced") == "order-events.fifo"
    assert cfg.queues() == ["orders.fifo", "order-views.fifo"]
    assert cfg.topics() == ["order-events.fifo"]
    assert dlq_name("orders.fifo") == "orders-dlq.fifo"
    assert dlq_name("notes") == "notes-dlq"


@pytest.mark.parametrize("build", [
    lambda c: c.send(PlaceOrder).to_queue("other.fifo"),                        # routed twice
    lambda c: c.send(OrderPlaced).to_queue("x"),                                # an event as a command
    lambda c: c.raise_events(PlaceOrder).to_topic("t"),                         # a command as an event
    lambda c: c.send(SubmitPartnerOrder).to_queue("bad name!"),                 # invalid name
], ids=["twice", "event-as-command", "command-as-event", "bad-name"])
def test_misrouting_fails_immediately(registry: TypeRegistry, build: object) -> None:
    with pytest.raises(ConfigurationError):
        build(base(registry))  # type: ignore[operator]


def test_startup_validation(registry: TypeRegistry) -> None:
    with pytest.raises(ConfigurationError, match="no saga"):
        base(registry).validate(sagas=[PartnerOrderSaga()])
    with pytest.raises(ConfigurationError, match="subscribes to no topic"):
        base(registry).subscribe("lonely").to_topics().validate()
    with pytest.raises(ConfigurationError, match="FIFO topic"):
        base(registry).subscribe("standard-q").to_topics("order-events.fifo").validate()
    with pytest.raises(ConfigurationError, match="no command is routed"):
        base(registry).listen_to("nothing-here").validate()
    with pytest.raises(ConfigurationError, match="no view projects"):
        base(registry).validate(views=[])
    with pytest.raises(ConfigurationError, match="not routed"):
        BusConfiguration(registry).queue_for("PlaceOrder")


def test_options_are_checked() -> None:
    with pytest.raises(ConfigurationError):
        BusOptions(wait_time_seconds=21)
    with pytest.raises(ConfigurationError):
        BusOptions(max_receive_count=2, business_max_attempts=3)


def test_cleanup_interval_defaults_to_seed_and_is_validated() -> None:
    # SourceFlow's cleanupIntervalMinutes: 60 (doc 001)
    assert BusOptions().idempotency_cleanup_interval == 3600.0
    assert BusOptions().idempotency_cleanup_batch == 1000
    assert BusOptions(idempotency_cleanup_interval=1).idempotency_cleanup_interval == 1
    for bad in (0, 0.5, -1, BusOptions().idempotency_ttl_seconds + 1):
        with pytest.raises(ConfigurationError, match="idempotency_cleanup_interval"):
            BusOptions(idempotency_cleanup_interval=bad)
    with pytest.raises(ConfigurationError, match="idempotency_cleanup_batch"):
        BusOptions(idempotency_cleanup_batch=0)


def test_from_dict_matches_fluent(registry: TypeRegistry) -> None:
    cfg = BusConfiguration.from_dict({
        "region": "eu-west-1", "send": {"orders.fifo": ["PlaceOrder", "ConfirmOrder"]},
        "raise": {"order-events.fifo": ["OrderPlaced"]}, "listen": ["orders.fifo"],
        "subscribe": {"order-views.fifo": ["order-events.fifo"]}, "encryption": {"kmsKeyId": "alias/k"},
        "options": {"visibility_timeout": 45}}, registry)
    ref = base(registry)
    assert (cfg.command_routes, cfg.event_routes, cfg.subscriptions) == (
        ref.command_routes, ref.event_routes, ref.subscriptions)
    assert cfg.options.region == "eu-west-1"
    assert cfg.options.visibility_timeout == 45
    assert cfg.kms_key_id == "alias/k"


