"""The bare boto3 baseline: the same hops as the reference pipeline, no framework.

``producer SendMessageBatch -> SQS FIFO (commands) -> worker PublishBatch -> SNS FIFO topic
-> SQS FIFO (view, raw delivery) -> consumer DeleteMessageBatch``, with plain threads.

It answers one question for the capacity run: how many orders a minute can *this* machine
and *this* LocalStack move through those hops at all? The reference's capacity is then
reported as a ratio to the baseline measured in the same run, so the figure means something
on any machine.

Run it::

    python -m flowgate.harness.baseline --rate 10000 --duration 30
    python -m flowgate.harness.baseline --rate 30000 --duration 30 --json reports/load/baseline.json

It prints the achieved send rate, the delivered rate, p50/p95/p99 end-to-end latency (send
call started -> consumer received), lost/duplicated counts and API calls per order. The
arrival process is open loop: a pacer releases orders at the target rate whatever the
response times, batches of up to 10 are handed to a pool of sender threads, and a backlog
that the senders cannot absorb shows up as an achieved rate below the target.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import queue
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_ENDPOINT = "http://127.0.0.1:4566"
BATCH = 10


# --------------------------------------------------------------------------------------
# Pure arithmetic (unit-tested without LocalStack; the Locust pacer reuses it)
# --------------------------------------------------------------------------------------


@dataclass
class Pacer:
    """Open-loop release schedule: ``rate_per_min`` orders a minute from ``start``.

    :meth:`due` answers how many *new* orders are due at ``now`` (whole orders; the
    fraction carries over), so calling it at any cadence releases exactly
    ``rate * elapsed`` orders in total -- late ticks release more at once instead of
    losing arrivals (no coordinated omission). The rate can change while running
    (:meth:`set_rate`); what was already due stays due.
    """

    rate_per_min: float
    start: float
    released: int = 0
    _credit: float = 0.0
    _last: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._last = self.start

    def set_rate(self, rate_per_min: float, now: float) -> None:
        self._accrue(now)
        self.rate_per_min = rate_per_min

    def _accrue(self, now: float) -> None:
        if now > self._last:
            self._credit += (now - self._last) * self.rate_per_min / 60.0
            self._last = now

    def due(self, now: float) -> int:
        self._accrue(now)
        whole = max(0, math.floor(self._credit + 1e-9))
        self._credit -= whole
        self.released += whole
        return whole

    def next_due_in(self) -> float:
        """Seconds until the next whole order is due at the current rate (inf if rate 0)."""
        if self.rate_per_min <= 0:
            return math.inf
        return max(0.0, (1.0 - self._credit) * 60.0 / self.rate_per_min)


def chunks(items: Sequence[Any], size: int = BATCH) -> list[list[Any]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already-sorted values; nan when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def achieved_per_min(count: int, seconds: float) -> float:
    return count * 60.0 / seconds if seconds > 0 else 0.0


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


@dataclass
class BaselineResult:
    target_per_min: float
    duration_s: float
    released: int
    sent: int
    send_failures: int
    delivered: int
    duplicates: int
    lost: int
    sent_per_min: float
    delivered_per_min: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    api_calls: dict[str, int]
    api_calls_per_order: float
    drain_s: float
    load_average: tuple[float, float, float]
    wire: str = "bare"

    def summary(self) -> str:
        return (
            f"baseline ({self.wire} wire) target {self.target_per_min:,.0f}/min for {self.duration_s:.0f}s: "
            f"sent {self.sent_per_min:,.0f}/min ({self.sent}/{self.released} released, "
            f"{self.send_failures} failed), delivered {self.delivered_per_min:,.0f}/min; "
            f"end-to-end p50 {self.p50_ms:.0f} ms p95 {self.p95_ms:.0f} ms p99 {self.p99_ms:.0f} ms "
            f"max {self.max_ms:.0f} ms; lost {self.lost} dup {self.duplicates}; "
            f"API calls/order {self.api_calls_per_order:.2f} {dict(self.api_calls)}; "
            f"load average {self.load_average[0]:.2f} {self.load_average[1]:.2f} {self.load_average[2]:.2f}"
        )


def _clients(endpoint: str | None, pool: int) -> tuple[Any, Any]:
    """SQS and SNS clients from the one factory (:mod:`flowgate.harness.clients`); ``endpoint`` None:
    boto3's credential chain and endpoint resolution (real AWS)."""
    from flowgate.harness.clients import ClientSettings

    made = ClientSettings.for_endpoint(endpoint, max_pool_connections=pool).clients(("sqs", "sns"))
    return made["sqs"], made["sns"]


def resolve_endpoint() -> str:
    for var in ("AWS_ENDPOINT_URL", "FLOWGATE_ENDPOINT_URL"):
        if os.environ.get(var):
            return os.environ[var]
    try:  # the lead's launcher, when present: reuse or start LocalStack
        from flowgate.harness.launcher import ensure_localstack

        endpoint = ensure_localstack()
        return str(getattr(endpoint, "url", endpoint))
    except ImportError:
        return DEFAULT_ENDPOINT


class _CallCounter:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, model: Any = None, **_: Any) -> None:
        with self._lock:
            self.counts[model.name if model is not None else "?"] += 1


#: ``wire`` of the baseline: ``bare`` = tiny JSON bodies without message attributes (HARNESS.md's
#: baseline); ``contract`` = bodies and message attributes shaped like the contract's (docs/contract.md
#: sections 2-3: a ~400-byte command body with 5 attributes, an event with 6), to tell what the wire
#: format costs LocalStack from what the reference's own code costs.
WIRES = ("bare", "contract")


def _strings(**values: str) -> dict[str, dict[str, str]]:
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}


def command_entry(i: int, oid: str, now: float, wire: str) -> dict[str, Any]:
    """The SendMessageBatch entry of order ``oid``'s command (``t`` = send time, for latency)."""
    body: dict[str, Any] = {"order": oid, "t": now}
    entry: dict[str, Any] = {"Id": str(i), "MessageGroupId": oid, "MessageDeduplicationId": oid}
    if wire == "contract":
        command_id = str(uuid.uuid5(uuid.NAMESPACE_URL, oid))
        body.update(
            name="PlaceOrder",
            entity={"id": oid, "isNew": True},
            payload={"customerId": "CUST-000001", "sku": "SKU-ABC123", "quantity": 1, "amountCents": 4200},
            metadata={
                "eventId": command_id,
                "isReplay": False,
                "occurredOn": "2026-11-22T00:00:00.000000+00:00",
                "sequenceNo": 1,
                "correlationId": oid,
                "properties": {},
            },
        )
        entry["MessageAttributes"] = _strings(
            CommandType="PlaceOrder", EntityId=oid, SequenceNo="1", EventId=command_id, CorrelationId=oid
        )
    entry["MessageBody"] = json.dumps(body)
    return entry


def event_entry(i: int, body: dict[str, Any], wire: str) -> dict[str, Any]:
    """The PublishBatch entry of the event for a received command ``body``."""
    body["event"] = "Placed"
    oid = body["order"]
    entry: dict[str, Any] = {
        "Id": str(i),
        "MessageGroupId": oid,
        "MessageDeduplicationId": body.get("command_id", oid),
    }
    if wire == "contract":
        event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, oid + ":OrderPlaced"))
        body["name"] = "OrderPlaced"
        body["metadata"] = {**body.get("metadata", {}), "eventId": event_id, "causationId": oid}
        entry["Subject"] = "OrderPlaced"
        entry["MessageAttributes"] = _strings(
            EventType="OrderPlaced",
            EventName="OrderPlaced",
            EntityId=oid,
            SequenceNo="1",
            EventId=event_id,
            CorrelationId=oid,
        )
    entry["Message"] = json.dumps(body)
    return entry


def relay_once(sqs: Any, sns: Any, queue_url: str, topic_arn: str, wire: str = "bare") -> int:
    """One turn of a baseline worker thread: receive up to 10 commands (1 s long poll), publish
    their events with one PublishBatch (the body plus ``"event": "Placed"``, group = order,
    deduplication id = the command id or the order; :func:`event_entry`), delete what was
    published with one DeleteMessageBatch. Returns the number of messages deleted; raises on any
    call failure (the messages come back after the 30 s visibility timeout)."""
    extra = {"MessageAttributeNames": ["All"]} if wire == "contract" else {}
    msgs = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=30, **extra
    ).get("Messages", [])
    if not msgs:
        return 0
    entries = [event_entry(i, json.loads(m["Body"]), wire) for i, m in enumerate(msgs)]
    resp = sns.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=entries)
    done = {e["Id"] for e in resp.get("Successful", [])}
    dels = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs) if str(i) in done]
    if dels:
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=dels)
    return len(dels)


def run_baseline(
    rate_per_min: float,
    duration_s: float,
    *,
    endpoint: str | None = None,
    senders: int = 4,
    workers: int = 4,
    consumers: int = 4,
    drain_timeout_s: float = 30.0,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
    wire: str = "bare",
) -> BaselineResult:
    if wire not in WIRES:
        raise ValueError(f"wire must be one of {WIRES}, not {wire!r}")
    endpoint = endpoint or resolve_endpoint()
    sqs, sns = _clients(endpoint, pool=4 * (senders + workers + consumers) + 10)
    counter = _CallCounter()
    for client in (sqs, sns):
        client.meta.events.register("before-call.*.*", counter)

    suffix = uuid.uuid4().hex[:10]
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "true", "VisibilityTimeout": "30"}
    cmd_url = sqs.create_queue(QueueName=f"fg-base-cmd-{suffix}.fifo", Attributes=fifo)["QueueUrl"]
    view_url = sqs.create_queue(QueueName=f"fg-base-view-{suffix}.fifo", Attributes=fifo)["QueueUrl"]
    view_arn = sqs.get_queue_attributes(QueueUrl=view_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    topic_arn = sns.create_topic(
        Name=f"fg-base-evt-{suffix}.fifo",
        Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "true"},
    )["TopicArn"]
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=view_arn,
        Attributes={"RawMessageDelivery": "true"},
        ReturnSubscriptionArn=True,
    )
    setup_calls = sum(counter.counts.values())
    counter.counts.clear()

    batches: queue.Queue[list[str] | None] = queue.Queue()
    lock = threading.Lock()
    latencies: list[float] = []
    seen: Counter[str] = Counter()
    sent_ids: set[str] = set()
    failures = [0]
    stop_producing = threading.Event()
    stop_all = threading.Event()

    def sender() -> None:
        while True:
            batch = batches.get()
            if batch is None:
                return
            now = time.time()
            entries = [command_entry(i, oid, now, wire) for i, oid in enumerate(batch)]
            try:
                resp = sqs.send_message_batch(QueueUrl=cmd_url, Entries=entries)
                ok = {batch[int(e["Id"])] for e in resp.get("Successful", [])}
            except Exception as exc:
                log(f"send failed: {exc}")
                ok = set()
            with lock:
                sent_ids.update(ok)
                failures[0] += len(batch) - len(ok)

    def worker() -> None:
        while not stop_all.is_set():
            try:
                relay_once(sqs, sns, cmd_url, topic_arn, wire)
            except Exception as exc:
                if not stop_all.is_set():
                    log(f"worker error: {exc}")
                    time.sleep(0.2)

    def consumer() -> None:
        while not stop_all.is_set():
            try:
                msgs = sqs.receive_message(
                    QueueUrl=view_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=1,
                    MessageAttributeNames=["All"] if wire == "contract" else [],
                ).get("Messages", [])
                if not msgs:
                    continue
                now = time.time()
                with lock:
                    for m in msgs:
                        body = json.loads(m["Body"])
                        seen[body["order"]] += 1
                        if seen[body["order"]] == 1:
                            latencies.append((now - body["t"]) * 1000.0)
                sqs.delete_message_batch(
                    QueueUrl=view_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)],
                )
            except Exception as exc:
                if not stop_all.is_set():
                    log(f"consumer error: {exc}")
                    time.sleep(0.2)

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(senders)]
    threads += [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    threads += [threading.Thread(target=consumer, daemon=True) for _ in range(consumers)]
    for t in threads:
        t.start()

    start = time.time()
    pacer = Pacer(rate_per_min, start)
    pending: list[str] = []
    linger = 0.05  # a partial batch waits at most 50 ms
    oldest = 0.0
    try:
        while True:
            now = time.time()
            if now - start >= duration_s:
                break
            n = pacer.due(now)
            if n and not pending:
                oldest = now
            pending.extend(f"o-{suffix}-{pacer.released - n + i}" for i in range(n))
            while len(pending) >= BATCH:
                batches.put(pending[:BATCH])
                del pending[:BATCH]
            if pending and now - oldest >= linger:
                batches.put(pending)
                pending = []
            time.sleep(min(0.01, pacer.next_due_in()))
        if pending:
            batches.put(pending)
        for _ in range(senders):
            batches.put(None)
        for t in threads[:senders]:
            t.join()
        send_end = time.time()
        stop_producing.set()
        deadline = send_end + drain_timeout_s
        while time.time() < deadline:
            with lock:
                if sent_ids.issubset(seen.keys()):
                    break
            time.sleep(0.1)
        drain_end = time.time()
    finally:
        stop_all.set()
        for t in threads[senders:]:
            t.join(timeout=5)
        calls = Counter(counter.counts)
        with contextlib.suppress(Exception):
            sns.delete_topic(TopicArn=topic_arn)
        for url in (cmd_url, view_url):
            with contextlib.suppress(Exception):
                sqs.delete_queue(QueueUrl=url)

    lat = sorted(latencies)
    delivered = sum(1 for o in sent_ids if seen[o] >= 1)
    last_delivery_window = max(duration_s, drain_end - start) if delivered < len(sent_ids) else duration_s
    result = BaselineResult(
        target_per_min=rate_per_min,
        duration_s=duration_s,
        released=pacer.released,
        sent=len(sent_ids),
        send_failures=failures[0],
        delivered=delivered,
        duplicates=sum(c - 1 for c in seen.values() if c > 1),
        lost=len(sent_ids) - delivered,
        sent_per_min=achieved_per_min(len(sent_ids), send_end - start),
        delivered_per_min=achieved_per_min(delivered, last_delivery_window),
        p50_ms=percentile(lat, 50),
        p95_ms=percentile(lat, 95),
        p99_ms=percentile(lat, 99),
        max_ms=lat[-1] if lat else math.nan,
        api_calls=dict(calls),
        api_calls_per_order=(sum(calls.values()) / delivered) if delivered else math.nan,
        drain_s=drain_end - send_end,
        load_average=os.getloadavg(),
        wire=wire,
    )
    log(f"(setup used {setup_calls} API calls, not counted per order)")
    return result


def worker_loop(queue_url: str, topic_arn: str, threads: int, endpoint: str | None = None) -> int:
    """The baseline worker alone (SQS FIFO -> SNS FIFO), until SIGTERM/SIGINT: used by the
    Locust ``--sut raw`` system under load. Each thread: receive 10, PublishBatch, delete."""
    import signal

    endpoint = endpoint or resolve_endpoint()
    sqs, sns = _clients(endpoint, pool=2 * threads + 4)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def loop() -> None:
        while not stop.is_set():
            try:
                relay_once(sqs, sns, queue_url, topic_arn)
            except Exception as exc:
                if not stop.is_set():
                    print(f"worker error: {exc}", file=sys.stderr)
                    time.sleep(0.2)

    pool = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    while not stop.is_set():
        stop.wait(0.5)
    for t in pool:
        t.join(timeout=5)
    return 0


def capacity_search(
    *,
    start: float,
    step: float,
    step_s: float,
    p99_limit_ms: float,
    max_rate: float,
    min_ratio: float = 0.98,
    endpoint: str | None = None,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
    wire: str = "bare",
) -> tuple[float, list[BaselineResult]]:
    """Step the baseline up from ``start`` by ``step`` until a step falls short (achieved <
    ``min_ratio`` of target, p99 above the limit, or anything lost); returns the last good rate."""
    rate, best, results = start, 0.0, []
    while rate <= max_rate:
        res = run_baseline(rate, step_s, endpoint=endpoint, drain_timeout_s=15, log=log, wire=wire)
        results.append(res)
        log(res.summary())
        ok = (
            res.lost == 0
            and res.sent >= min_ratio * rate * step_s / 60.0
            and res.delivered_per_min >= min_ratio * rate
            and res.p99_ms <= p99_limit_ms
        )
        if not ok:
            break
        best = rate
        rate += step
    return best, results


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:
        wp = argparse.ArgumentParser(prog="python -m flowgate.harness.baseline worker")
        wp.add_argument("--queue-url", required=True)
        wp.add_argument("--topic-arn", required=True)
        wp.add_argument("--threads", type=int, default=4)
        wp.add_argument("--endpoint", default=None)
        wa = wp.parse_args(argv[1:])
        return worker_loop(wa.queue_url, wa.topic_arn, wa.threads, wa.endpoint)
    if argv[:1] == ["capacity"]:
        cp = argparse.ArgumentParser(prog="python -m flowgate.harness.baseline capacity")
        cp.add_argument("--start", type=float, default=5_000)
        cp.add_argument("--step", type=float, default=2_500)
        cp.add_argument("--step-seconds", type=float, default=20)
        cp.add_argument("--p99-ms", type=float, default=2_000)
        cp.add_argument("--max-rate", type=float, default=40_000)
        cp.add_argument("--endpoint", default=None)
        cp.add_argument("--json", default=None)
        cp.add_argument("--wire", choices=WIRES, default="bare", help="message shape (see WIRES)")
        ca = cp.parse_args(argv[1:])
        best, results = capacity_search(
            start=ca.start,
            step=ca.step,
            step_s=ca.step_seconds,
            p99_limit_ms=ca.p99_ms,
            max_rate=ca.max_rate,
            endpoint=ca.endpoint,
            wire=ca.wire,
        )
        print(f"baseline capacity ({ca.wire} wire) {best:,.0f} orders/min")
        if ca.json:
            from pathlib import Path

            Path(ca.json).parent.mkdir(parents=True, exist_ok=True)
            Path(ca.json).write_text(
                json.dumps(
                    {"capacity_per_min": best, "steps": [asdict(r) for r in results]}, indent=2, default=str
                )
            )
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m flowgate.harness.baseline", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rate", type=float, default=10_000, help="target orders per minute")
    parser.add_argument("--duration", type=float, default=30, help="seconds of load")
    parser.add_argument(
        "--endpoint", default=None, help="AWS endpoint (default: launcher / AWS_ENDPOINT_URL)"
    )
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--drain-timeout", type=float, default=30)
    parser.add_argument("--json", default=None, help="also write the result as JSON to this path")
    parser.add_argument("--wire", choices=WIRES, default="bare", help="message shape (see WIRES)")
    args = parser.parse_args(argv)
    result = run_baseline(
        args.rate,
        args.duration,
        endpoint=args.endpoint,
        senders=args.senders,
        workers=args.workers,
        consumers=args.consumers,
        drain_timeout_s=args.drain_timeout,
        wire=args.wire,
    )
    print(result.summary())
    if args.json:
        from pathlib import Path

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(asdict(result), indent=2, default=str))
    return 1 if (result.lost or result.duplicates) else 0


if __name__ == "__main__":
    raise SystemExit(main())
