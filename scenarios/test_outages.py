"""Dependency outages on LocalStack: two worker processes, a dependency gone for 10 x VT, then back.

* ``store`` -- the workers reach PostgreSQL through a TCP proxy (``flowgate.harness.gate.proxy``); the
  nemesis cuts it (every connection reset, new ones refused) and restores it;
* ``kms_disabled`` -- DisableKey on the bus key, EnableKey afterwards (an encrypted bus);
* ``sqs`` -- the workers reach SQS through the proxy (``AWS_ENDPOINT_URL_SQS``; SNS and KMS go
  straight to LocalStack) and the nemesis cuts it.

VT = 2 s, so each outage lasts 20 s. Half the orders are sent first; once the first effect is in,
the other half is sent and the dependency cut right after, so the outage hits a backlog. Each worker keeps its health in a file
(``FLOWGATE_HEALTH_FILE``), sampled into the history as harness ``health`` ops: ``degraded``
naming the dependency during the outage, ``ok`` after. Expected: 0 valid dead-lettered (messages
SQS's redrive moved are recorded without a reason), 0 lost, exactly once, and the ``outage``
checker's bounds (no receive while a breaker is open, no receive storm).

``kms_disabled`` needs neither proxy nor PostgreSQL and takes < 60 s: it also runs in
``nox -s integration`` (markers ``localstack`` + ``chaos``); the others are ``chaos`` only.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from flowgate.fixtures.scenario import OrderTopology, Producer, bootstrap, drain, judge, scaled, sqlite_url
from flowgate.harness.gate.proxy import OutageProxy
from flowgate.harness.history import HARNESS, NEMESIS
from flowgate.harness.workload import generate_orders

VT = 2
LENGTH = 10 * VT
WORKERS = ("w1", "w2")
DEPENDENCY = {"store": "store", "kms_disabled": "kms", "sqs": "sqs"}


def _health(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {"status": "unknown", "degraded": [], "checks": {}}


def _sample(s: Any, files: dict[str, Path], phase: str) -> list[dict[str, Any]]:
    out = []
    for name, path in files.items():
        report = _health(path)
        value = {
            "worker": name,
            "phase": phase,
            "status": report.get("status"),
            "degraded": report.get("degraded", []),
            "checks": report.get("checks", {}),
        }
        s.history.append(HARNESS, "ok", "health", value)
        out.append(value)
    return out


def _record_redriven(s: Any, urls: dict[str, str]) -> int:
    """Messages SQS's redrive moved to a DLQ carry no DeadLetterReason: recorded without one."""
    moved = 0
    for queue, url in urls.items():
        while True:
            got = s.aws.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300, WaitTimeSeconds=0,
                MessageAttributeNames=["All"], AttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            for m in got:
                attrs = m.get("MessageAttributes") or {}
                if "DeadLetterReason" in attrs:
                    continue
                moved += 1
                value: dict[str, Any] = {"message_id": m["MessageId"], "queue": queue, "redriven_by": "sqs"}
                if "EventId" in attrs and "CommandType" in attrs:
                    value["command_id"] = attrs["EventId"]["StringValue"]
                s.history.append(HARNESS, "ok", "dead_letter", value)
    return moved


def _run(s: Any, registry: Any, summary: Any, kind: str, postgres_url: str | None = None) -> None:
    if s.workers.endpoint_url is None:
        pytest.skip("needs a LocalStack endpoint")
    started = time.monotonic()
    orders = scaled(12, 30)
    topo = OrderTopology(s.uid)
    proxy: OutageProxy | None = None
    kms_key = None
    store = sqlite_url(s.tmp / "shared.db")
    database = None
    if kind == "store":
        assert postgres_url is not None
        target = make_url(postgres_url)
        database = f"fg_{s.uid}"  # a database of its own: no state left by another run
        _admin(postgres_url, f'CREATE DATABASE "{database}"')
        proxy = OutageProxy(target.host or "127.0.0.1", target.port or 5432).start()
        store = target.set(host="127.0.0.1", port=proxy.port, database=database).render_as_string(
            hide_password=False
        )
    elif kind == "sqs":
        proxy = OutageProxy.for_url(s.workers.endpoint_url).start()
    elif kind == "kms_disabled":
        kms_key = s.aws.kms.create_key(Description=f"fg-{s.uid} outage")["KeyMetadata"]["Arn"]
    try:
        config = topo.config(
            store=store, kms_key=kms_key, visibility_timeout=VT,
            breaker_initial_backoff=0.5, breaker_max_backoff=2.0,
        )
        resources = bootstrap(config, registry, s.aws)
        files = {name: s.tmp / f"health-{name}.json" for name in WORKERS}
        for name in WORKERS:
            env = {"FLOWGATE_HEALTH_FILE": str(files[name])}
            if kind == "sqs":
                assert proxy is not None
                env["AWS_ENDPOINT_URL_SQS"] = proxy.url
            s.workers.spawn(name, config, env=env)
        producer = Producer(config, registry, s.aws, resources, s.history)
        scripts = generate_orders(s.seed + 11, orders, cancel_ratio=0.1)
        half = len(scripts) // 2
        commands = producer.send_scripts(scripts[:half])
        deadline = time.monotonic() + 60
        while s.workers.count("effect") == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        # the second half right before the cut: a backlog the outage hits (and the producer can
        # still seal while the key is enabled)
        commands += producer.send_scripts(scripts[half:])
        queues = [topo.commands, topo.view_queue("views")]
        s.history.append(NEMESIS, "invoke", "outage", {
            "kind": kind, "dependency": DEPENDENCY[kind], "workers": len(WORKERS),
            "queues": queues, "seconds": LENGTH,
        })
        if proxy is not None:
            proxy.cut()
        else:
            s.aws.kms.disable_key(KeyId=kms_key)
        outage_start = time.monotonic()
        degraded_seen = False
        while time.monotonic() - outage_start < LENGTH:
            time.sleep(2.0)
            sample = _sample(s, files, "during")
            degraded_seen = degraded_seen or any(DEPENDENCY[kind] in v["degraded"] for v in sample)
        if proxy is not None:
            proxy.restore()
        else:
            s.aws.kms.enable_key(KeyId=kms_key)
        s.history.append(NEMESIS, "ok", "outage", {"kind": kind, "dependency": DEPENDENCY[kind]})
        outage_s = time.monotonic() - outage_start
        producer.close()
        result = drain(s.history, s.workers, s.aws, [resources.queue_urls[q] for q in queues],
                       effects=len(commands), timeout=scaled(90, 180))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_health(p).get("status") != "ok" for p in files.values()):
            time.sleep(0.5)
        after = _sample(s, files, "after")
        redriven = _record_redriven(s, {q: resources.dlq_urls[q] for q in queues})
        s.workers.terminate_all()
        history = s.workers.merged_history()
        ops = history.ops
        # merged in wall-time order (harness ops keep their place, not their time): the window by index
        window = [op.index for op in ops if op.f == "outage"]
        receives = [op for op in ops[window[0] : window[-1] + 1] if op.f == "receive" and op.type == "ok"]
        per_worker: dict[tuple[str, str], int] = {}
        for op in receives:
            key = (op.process, str(op.value.get("message_id")))
            per_worker[key] = per_worker.get(key, 0) + 1
        problems = list(result.notes)
        if not degraded_seen:
            problems.append(f"no worker reported {DEPENDENCY[kind]} degraded during the outage")
        if any(v["status"] != "ok" for v in after):
            problems.append(f"health not ok after the outage: {after}")
        if redriven:
            problems.append(f"{redriven} message(s) moved to a DLQ by SQS's redrive (no reason)")
        judge(
            history, summary=summary, scenario=f"outage: {kind} for {LENGTH} s (10 x VT)", orders=orders,
            faults=1, extra_anomalies=problems,
            notes=(f"{kind}: {outage_s:.0f} s outage, {len(receives)} receives of "
                   f"{len({k[1] for k in per_worker})} messages in it (max "
                   f"{max(per_worker.values(), default=0)} per worker and message), "
                   f"{redriven} redriven, "
                   + (f"{proxy.refused} connections refused by the cut proxy, " if proxy is not None else "")
                   + f"{time.monotonic() - started:.0f} s wall"),
        )
    finally:
        if proxy is not None:
            proxy.close()
        if database is not None:
            with contextlib.suppress(Exception):
                _admin(str(postgres_url), f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _admin(url: str, statement: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


@pytest.mark.localstack
@pytest.mark.chaos
def test_kms_key_disabled_for_10_vt(scenario, registry, summary):
    _run(scenario, registry, summary, "kms_disabled")


@pytest.mark.chaos
@pytest.mark.postgres
def test_store_down_for_10_vt(scenario, registry, summary, postgres_url):
    _run(scenario, registry, summary, "store", postgres_url)


@pytest.mark.chaos
def test_sqs_unreachable_for_10_vt(scenario, registry, summary):
    _run(scenario, registry, summary, "sqs")
