"""The worker's replay entry (``--replay`` / ``--replay-entities``) against a SQLite command store
filled by the reference on the deterministic simulator.

Checked: the printed lines are the live events' wire bodies with ``isReplay`` true (same ids,
names, sequence numbers, causation ids, payloads), per entity in command order; unknown entities
print nothing; no AWS client is created; the store is not written (two runs print the same, the
database file is byte-identical); the ``replay-persists`` mutant makes two runs differ.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from flowgate.harness.mutants.catalog import apply_mutant
from flowgate.harness.sim import SimAws
from flowgate.reference.config import BusConfiguration
from flowgate.reference.domain.orders import (
    ORDER_COMMANDS,
    ORDER_EVENTS,
    AuthorizePayment,
    CancelOrder,
    ConfirmOrder,
    OrderSaga,
    PlaceOrder,
    ReserveInventory,
    order_registry,
)
from flowgate.reference.messages import Payload, new_command
from flowgate.reference.sql import SqlStorage
from flowgate.reference.worker import build_runtime, main, open_durable_storage, replay_entities

QUEUE, TOPIC = "orders.fifo", "order-events.fifo"
SCRIPTS: dict[str, list[Payload]] = {
    "o1": [
        PlaceOrder("c1", "S1", 2, 500),
        AuthorizePayment("p1", 500),
        ReserveInventory("S1", 2),
        ConfirmOrder(),
    ],
    "o2": [PlaceOrder("c2", "S2", 1, 90), CancelOrder("changed mind")],
}


def config_data(db: Path) -> dict[str, Any]:
    return {
        "domain": "orders",
        "send": {QUEUE: [c.message_name for c in ORDER_COMMANDS]},
        "raise": {TOPIC: [e.message_name for e in ORDER_EVENTS]},
        "listen": [QUEUE],
        "idempotency": {"url": f"sqlite:///{db}"},
        "options": {"visibility_timeout": 30, "wait_time_seconds": 0},
    }


def populate(db: Path) -> dict[str, list[dict[str, Any]]]:
    """Run the orders through the reference on the simulator; returns the live event bodies per
    entity as a raw-delivery probe queue subscribed to the topic received them."""
    aws = SimAws(seed=11)
    registry = order_registry()
    storage = SqlStorage(registry, f"sqlite:///{db}")
    cfg = BusConfiguration.from_dict(config_data(db), registry)
    sqs, sns = aws.client("sqs"), aws.client("sns")
    rt = build_runtime(
        cfg, sqs=sqs, sns=sns, sts=aws.client("sts"), storage=storage, sagas=[OrderSaga()], clock=aws.clock
    )
    probe = sqs.create_queue(QueueName="probe.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    probe_arn = sqs.get_queue_attributes(QueueUrl=probe, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=rt.resources.topic_arns[TOPIC],
        Protocol="sqs",
        Endpoint=probe_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    commands = [
        new_command(payload, entity, sequence_no=n, is_new=n == 1)
        for entity, script in SCRIPTS.items()
        for n, payload in enumerate(script, start=1)
    ]
    rt.commands.dispatch_many(commands)
    idle = 0
    while idle < 3:
        idle = idle + 1 if rt.poll_all_once() == 0 else 0
        aws.clock.advance(1)
    live: dict[str, list[dict[str, Any]]] = {}
    while got := sqs.receive_message(QueueUrl=probe, MaxNumberOfMessages=10).get("Messages", []):
        for m in got:
            body = json.loads(m["Body"])
            live.setdefault(body["entity"]["id"], []).append(body)
            sqs.delete_message(QueueUrl=probe, ReceiptHandle=m["ReceiptHandle"])
    rt.close()
    storage.engine.dispose()
    assert {k: len(v) for k, v in live.items()} == {"o1": 4, "o2": 2}
    return live


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, Path, dict[str, list[dict[str, Any]]]]:
    db = tmp_path / "reference.db"
    live = populate(db)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(config_data(db)), encoding="utf-8")
    return db, config, live


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_replay_prints_the_live_events_and_writes_nothing(
    store: tuple[Path, Path, dict[str, list[dict[str, Any]]]], capsys: pytest.CaptureFixture[str]
) -> None:
    db, config, live = store
    before, files = digest(db), sorted(p.name for p in db.parent.iterdir())
    no_clients = mock.patch(
        "boto3.session.Session", side_effect=AssertionError("replay created an AWS session")
    )
    with no_clients, mock.patch("boto3.client", side_effect=AssertionError("replay created an AWS client")):
        code = main(["--config", str(config), "--replay", "o2", "--replay-entities", "nobody,o1"])
    assert code == 0
    printed = lines(capsys.readouterr().out)
    assert all(e["metadata"]["isReplay"] is True for e in printed)
    expected = [
        dict(e, metadata={**e["metadata"], "isReplay": True}) for eid in ("o2", "o1") for e in live[eid]
    ]
    assert printed == expected  # ids, names, seq, causation, payloads; o2 then o1, command order
    assert [e["metadata"]["sequenceNo"] for e in printed] == [1, 2, 1, 2, 3, 4]
    assert [e["name"] for e in printed[2:]] == [
        "OrderPlaced",
        "PaymentAuthorized",
        "InventoryReserved",
        "OrderConfirmed",
    ]
    assert digest(db) == before, "replay wrote to the store"
    assert sorted(p.name for p in db.parent.iterdir()) == files
    assert main(["--config", str(config), "--replay-entities", "o1,o2"]) == 0
    again = lines(capsys.readouterr().out)
    assert again == expected[2:] + expected[:2]
    assert digest(db) == before


def test_replay_without_a_store_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    missing = tmp_path / "absent.db"
    config.write_text(json.dumps(config_data(missing)), encoding="utf-8")
    assert main(["--config", str(config), "--replay", "o1"]) == 0
    assert capsys.readouterr().out == ""
    assert not missing.exists(), "replay must not create the database"
    assert open_durable_storage(order_registry(), None) is None
    assert open_durable_storage(order_registry(), "sqlite://") is None


def test_replay_persists_mutant_makes_two_runs_differ(
    store: tuple[Path, Path, dict[str, list[dict[str, Any]]]],
) -> None:
    _, config, _ = store
    data = json.loads(config.read_text(encoding="utf-8"))

    def run() -> tuple[int, str]:
        out = io.StringIO()
        return replay_entities(data, ["o1", "o2"], out), out.getvalue()

    clean = [run(), run()]
    assert clean[0] == clean[1]
    assert clean[0][0] == 0
    with apply_mutant("replay-persists"):
        first, second = run(), run()
    assert first != second, "the mutant's replay appends commands: the next replay must see them"
    assert first == clean[0]
