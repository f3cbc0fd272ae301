"""A queue's dead-letter queue may be named in the configuration (queues provisioned elsewhere)."""

from __future__ import annotations

import pytest

from flowgate.reference.config import BusConfiguration
from flowgate.reference.domain.orders import order_registry
from flowgate.reference.errors import ConfigurationError


def test_dead_letter_queue_names_come_from_the_config_file() -> None:
    data = {
        "send": {"a.fifo": ["PlaceOrder"]},
        "listen": ["a.fifo"],
        "deadLetterQueues": {"a.fifo": "gate-dlq.fifo"},
    }
    cfg = BusConfiguration.from_dict(data, order_registry())
    assert cfg.dlq_for("a.fifo") == "gate-dlq.fifo"
    assert cfg.dlq_for("b.fifo") == "b-dlq.fifo"
    with pytest.raises(ConfigurationError, match="FIFO"):
        cfg.with_dead_letter_queue("a.fifo", "plain-dlq")
