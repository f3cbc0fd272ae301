"""Per-process run state for the Locust load test: clients, batcher, probe, history, figures.

Imported only from ``loadtests/locustfile.py`` (after Locust has monkey-patched with gevent,
so botocore's sockets cooperate). One shared boto3 client per service with a connection
pool sized for the send concurrency, made by the one client factory
(:class:`flowgate.harness.clients.ClientSettings`; a test passes the simulator's ``SimAws`` instead).

Roles (:attr:`Run.role`): ``local`` (one Locust process: it starts the system under load, sends,
observes and judges), ``master`` (Locust's distributed mode: starts the system under load once,
observes, merges what the senders report, judges) and ``sender`` (a Locust worker: a send-only
copy of the system, :meth:`Run.attach`; it paces its share of the users, records its own sends
and ships them to the master, :meth:`Run.take_updates`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import gevent
from gevent.event import Event as GEvent
from gevent.pool import Pool

from flowgate.harness.baseline import BATCH, percentile
from flowgate.harness.clients import ClientSettings
from flowgate.harness.history import History, Op

from ._sut import SUT, SUTS, ObservedEvent, Order


@dataclass
class Config:
    shape: str = "steady-10k"
    target_rate: float | None = None
    duration_s: float | None = None
    user_rate: float = 100.0
    workers: int = 1
    sut: str = "reference"
    p99_ms: float | None = None
    p95_ms: float | None = None
    min_ratio: float = 0.98
    min_effect_ratio: float = 0.95
    drain_timeout_s: float = 60.0
    send_concurrency: int = 32
    linger_s: float = 0.02
    probe_pollers: int = 2
    commands_per_order: int = 1
    storage_url: str | None = None
    pollers: int | None = 1  # reference: BusOptions.pollers (None: the reference's default)
    receive_linger_ms: float = 200.0  # reference: BusOptions.receive_linger, in ms
    adaptive_linger: bool = True  # reference: BusOptions.adaptive_linger (D35)
    worker_history: bool = True
    effect_at: str = "auto"  # "view" (worker history project ops), "probe" (probe queue) or "auto"
    bus_config: str | None = None
    report_dir: Path = Path("reports/load")
    capacity_p99_ms: float = 2_000.0
    step_s: float = 30.0
    baseline: bool = True
    #: seconds of baseline traffic before the system under load starts; None = 30 s when this run
    #: started LocalStack itself, else 0
    warmup_s: float | None = None
    warmup_rate: float = 8_000.0
    #: reference: encrypted bus (a KMS key for the run); with data_key_cache the D6 cache on
    encryption: bool = False
    data_key_cache: bool = False
    #: ``localstack`` (an endpoint: the launcher's, or AWS_ENDPOINT_URL) or ``aws`` (the
    #: environment's AWS: credential chain, region, no warm-up, no LocalStack CPU figure)
    backend: str = "localstack"


#: a LocalStack started seconds before a 10,000/min load fell behind in its first minute and
#: did not catch up (5 runs of 5), where one that had served traffic kept up (5 of 5)
AUTO_WARMUP_S = 30.0


def resolve_endpoint() -> tuple[str, bool]:
    """The endpoint URL, and whether LocalStack was started just now for this run."""
    for var in ("AWS_ENDPOINT_URL", "FLOWGATE_ENDPOINT_URL"):
        if os.environ.get(var):
            return os.environ[var], False
    try:
        from flowgate.harness.launcher import ensure_localstack
    except ImportError:
        return "http://127.0.0.1:4566", False
    endpoint = ensure_localstack()
    return str(getattr(endpoint, "url", endpoint)), bool(getattr(endpoint, "started_here", False))


def warm_up(endpoint: str, seconds: float, rate: float, log: Callable[[str], None]) -> None:
    """Drive ``seconds`` of bare-baseline traffic (its own queues and topic, contract-shaped
    messages, deleted afterwards) through LocalStack before the measured run. Not part of the
    run's history or figures; a failure is logged, never fatal."""
    log(f"warming up LocalStack: {seconds:.0f} s of baseline traffic at {rate:,.0f}/min (not measured)")
    argv = [
        sys.executable,
        "-m",
        "flowgate.harness.baseline",
        "--rate",
        str(rate),
        "--duration",
        str(seconds),
    ]
    argv += ["--wire", "contract", "--endpoint", endpoint]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        log(f"warm-up exited with {done.returncode} (going on): {done.stderr.strip()[-500:]}")


def _localstack_cpu() -> float:
    """CPU seconds used so far by LocalStack processes on this host (read-only /proc scan)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"localstack" not in f.read():
                    continue
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return total


def cpu_snapshot(localstack: bool = True) -> dict[str, float]:
    """CPU seconds so far of this process, its waited-for children and (with ``localstack``)
    the LocalStack processes on this host; against AWS there is no service CPU to read."""
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = {
        "wall": time.time(),
        "locust": me.ru_utime + me.ru_stime,
        "workers": kids.ru_utime + kids.ru_stime,  # waited-for children: the worker subprocesses
    }
    if localstack:
        out["localstack"] = _localstack_cpu()
    return out


def cpu_split(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Cores used by each part between two snapshots (1.0 = one full core)."""
    wall = max(1e-6, after["wall"] - before["wall"])
    return {k: round((after[k] - before[k]) / wall, 2) for k in before if k != "wall"}


@dataclass
class Tracked:
    due: float
    order: Order
    sent: float = 0.0
    acked: bool = False
    effected: float = 0.0
    events: set[str] = field(default_factory=set)


@dataclass
class Run:
    cfg: Config
    fire: Callable[..., None]  # environment.events.request.fire
    log: Callable[[str], None] = print
    history: History = field(default_factory=lambda: History(clock=time.time))
    orders: dict[str, Tracked] = field(default_factory=dict)  # entity id -> tracking
    buffer: list[tuple[Order, float]] = field(default_factory=list)
    released: int = 0
    acked: int = 0
    failed: int = 0
    effected: int = 0
    duplicates: int = 0
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (time effected, ms)
    started: float = 0.0
    shape_started: float = 0.0
    load_stopped: float = 0.0
    stopping: bool = False
    sut: SUT | None = None
    queued: dict[str, int] = field(default_factory=dict)
    #: ``local``, ``master`` or ``sender`` (module docstring)
    role: str = "local"
    #: the client factory: anything with ``client(service)`` (None: made from ``cfg.backend``)
    aws: Any = None
    #: the history's process name of this process's sends (a sender's is ``producer-<n>``)
    producer: str = "producer"
    #: master: per sender node, its latest counters and whether it has finished
    senders: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: master: the senders' history ops as (time, node order, Op)
    remote_ops: list[tuple[float, int, Op]] = field(default_factory=list)
    #: master: effects observed before their sender reported the order (entity -> observations)
    unmatched: dict[str, list[tuple[ObservedEvent, float]]] = field(default_factory=dict)

    # -- setup ---------------------------------------------------------------------
    def _clients(self, endpoint: str | None) -> None:
        """The run's clients from ``self.aws``, made by the one factory when not given."""
        pool = self.cfg.send_concurrency + self.cfg.probe_pollers * 2 + 16
        if self.aws is None:
            self.aws = ClientSettings.for_endpoint(endpoint, max_pool_connections=pool)
        aws = self.aws

        def make() -> tuple[Any, Any, Any, Any]:
            return aws.client("sqs"), aws.client("sns"), aws.client("kms"), aws.client("sts")

        # making a client loads its service model: seconds of CPU on a busy machine, done in a
        # thread so that this process's gevent loop keeps answering Locust's heartbeats
        self.sqs, self.sns, self.kms, self.sts = gevent.get_hub().threadpool.apply(make)
        self.producer_calls: dict[str, int] = {}

    def _resolve_backend(self) -> bool:
        """Set ``self.endpoint``; True when LocalStack was started just now for this run."""
        if self.cfg.backend == "aws":
            self.endpoint = None  # botocore resolves it (real AWS)
            return False
        if self.cfg.backend != "localstack":
            raise ValueError(f"unknown backend {self.cfg.backend!r} (localstack or aws)")
        if self.aws is not None:
            self.endpoint = getattr(self.aws, "endpoint_url", None)  # a given factory (a test's)
            return False
        self.endpoint, started_here = resolve_endpoint()
        return started_here

    def start(self) -> None:
        started_here = self._resolve_backend()
        warmup = (
            self.cfg.warmup_s if self.cfg.warmup_s is not None else (AUTO_WARMUP_S if started_here else 0.0)
        )
        if warmup > 0 and self.cfg.backend == "localstack" and self.endpoint:
            warm_up(self.endpoint, warmup, self.cfg.warmup_rate, self.log)
        self._clients(self.endpoint)
        suffix = uuid.uuid4().hex[:10]
        # per-run artifacts (bus config, worker logs, call counts, worker histories)
        self.run_dir = self.cfg.report_dir / "runs" / f"{time.strftime('%Y%m%dT%H%M%S')}-{suffix}"
        self.sut = SUTS[self.cfg.sut](
            endpoint=self.endpoint,
            sqs=self.sqs,
            sns=self.sns,
            report_dir=self.run_dir,
            log=self.log,
            suffix=suffix,
            aws=self.aws,
            sts=self.sts,
        )
        self.sut.commands_per_order = self.cfg.commands_per_order
        self.sut.storage_url = self.cfg.storage_url
        self.sut.pollers = self.cfg.pollers
        self.sut.receive_linger_ms = self.cfg.receive_linger_ms
        self.sut.adaptive_linger = self.cfg.adaptive_linger
        self.sut.bus_config = self.cfg.bus_config
        self.sut.kms = self.kms
        self.sut.encryption = self.cfg.encryption
        self.sut.data_key_cache = self.cfg.data_key_cache
        self.sut.worker_history = self.cfg.worker_history and self.cfg.sut == "reference"
        self.sut.history_observer = self.history.observer(self.producer)
        where = self.endpoint or f"AWS ({getattr(self.sqs.meta, 'endpoint_url', '?')})"
        self.log(f"endpoint {where}; system under load: {self.cfg.sut} with {self.cfg.workers} workers")
        self.sut.start(self.cfg.workers)
        self.effect_at = self._effect_source()
        if self.effect_at == "view":
            self.log("effects observed where the view is updated (the workers' project ops); no probe queue")
            self._start_view_tail()
        else:
            self.log("effects observed at a probe queue subscribed to the event topic")
            self._start_probe()
        gevent.sleep(1.0)  # a worker that cannot start usually dies within a second
        dead = [p for p in self.sut.procs if p.poll() is not None]
        if dead:
            raise RuntimeError(
                f"{len(dead)} worker process(es) exited at start (codes {[p.returncode for p in dead]}); "
                f"see {self.run_dir}/*worker-*.log"
            )
        self._start_sending()
        self.cpu_before = cpu_snapshot(localstack=self.cfg.backend == "localstack")

    def _start_sending(self) -> None:
        self.pool = Pool(self.cfg.send_concurrency)
        self.wake = GEvent()
        self.stop_event = GEvent()
        self.batcher = gevent.spawn(self._batcher)
        self.started = time.time()

    # -- distributed mode ----------------------------------------------------------
    def sender_spec(self) -> dict[str, Any]:
        """master: what each Locust worker needs to become a sender (:meth:`attach`)."""
        assert self.sut is not None
        return {
            "sut": self.cfg.sut,
            "suffix": self.sut.suffix,
            "backend": self.cfg.backend,
            "endpoint": self.endpoint,
            "system": self.sut.sender_spec(),
        }

    def attach(self, spec: dict[str, Any], index: int) -> None:
        """sender: a send-only copy of the master's system under load (creates nothing)."""
        self.role = "sender"
        self.producer = f"producer-{index}"
        self.endpoint = spec["endpoint"] if spec["backend"] == "localstack" else None
        self._clients(self.endpoint)
        self.outbox: list[list[Any]] = []
        self.shipped_ops = 0
        self.sut = SUTS[str(spec["sut"])](
            endpoint=self.endpoint,
            sqs=self.sqs,
            sns=self.sns,
            report_dir=self.cfg.report_dir,
            log=self.log,
            suffix=str(spec["suffix"]),
            aws=self.aws,
            sts=self.sts,
        )
        self.sut.kms = self.kms
        self.sut.history_observer = self.history.observer(self.producer)
        self.sut.attach(spec["system"])
        self._start_sending()

    def take_updates(self, final: bool = False) -> dict[str, Any]:
        """sender: what happened since the last call (the new history ops, one record per sent
        order, the counters), for the master (:meth:`merge_updates`)."""
        ops = self.history.ops[self.shipped_ops :]
        self.shipped_ops += len(ops)
        sent, self.outbox = self.outbox, []
        return {
            "ops": [[op.process, op.type, op.f, op.value, op.time] for op in ops],
            "sent": sent,
            "released": self.released,
            "calls": dict(self.producer_calls),
            "kms_calls": dict(self.sut.producer_kms_calls) if self.sut is not None else {},
            "final": final,
        }

    def merge_updates(self, node: str, data: dict[str, Any]) -> None:
        """master: take a sender's updates into the run (its orders, ops and counters)."""
        state = self.senders.setdefault(node, {"order": len(self.senders) + 1, "released": 0, "final": False})
        for process, kind, f, value, when in data["ops"]:
            op = Op(0, str(process), str(kind), str(f), dict(value), float(when))
            self.remote_ops.append((op.time, 1000 + state["order"], op))
        for entity_id, command_id, seq, command_type, commands, due, sent, ok in data["sent"]:
            order = Order(command_id, entity_id, seq, command_type, commands=[tuple(c) for c in commands])
            tracked = self.orders.setdefault(entity_id, Tracked(due=due, order=order))
            tracked.sent = sent
            if ok:
                tracked.acked = True
                self.acked += 1
            else:
                self.failed += 1
            for event, when in self.unmatched.pop(entity_id, []):
                self._observed(event, when)
        state["attached"] = True
        state["released"] = int(data["released"])
        state["calls"], state["kms_calls"] = data["calls"], data["kms_calls"]
        state["final"] = state["final"] or bool(data["final"])
        self.released = sum(int(s["released"]) for s in self.senders.values())
        self.producer_calls = _sum_counts(s.get("calls", {}) for s in self.senders.values())
        if self.sut is not None:
            self.sut.producer_kms_calls = _sum_counts(s.get("kms_calls", {}) for s in self.senders.values())

    def senders_pending(self) -> list[str]:
        """master: the sender nodes that have not sent their final updates."""
        return [node for node, s in self.senders.items() if not s["final"]]

    def _effect_source(self) -> str:
        """Where an order's effect is observed.

        ``view``: the moment the worker's view listener projected the order's final event (its
        ``project`` op, stamped by the worker with the wall clock of this machine), read by tailing
        the workers' history files. The view update *is* the effect (HARNESS.md: command -> saga ->
        event on SNS -> view updated), and nothing is added to the system under load: like the
        baseline, whose consumer is both view and observer. ``probe``: a second queue subscribed
        to the event topic, read by the load test; it doubles the topic's fan-out work inside
        LocalStack (one sequential delivery thread per FIFO topic), so it measures a heavier
        system than the baseline. ``auto``: ``view`` when the reference workers write histories.
        """
        assert self.sut is not None
        wanted = self.cfg.effect_at
        can_view = self.sut.worker_history and self.cfg.workers > 0
        if wanted == "view" and not can_view:
            raise RuntimeError(
                "--effect-at view needs reference workers started by the load test with their history "
                "(not --no-worker-history, --workers 0 or --sut raw)"
            )
        if wanted == "auto":
            return "view" if can_view else "probe"
        return wanted

    def _start_view_tail(self) -> None:
        self.probe_url = ""
        self.probe_stop = GEvent()
        self.probes = [gevent.spawn(self._tail_histories)]

    def _tail_histories(self) -> None:
        """Follow every worker's history file; each projected final event is an order's effect."""
        assert self.sut is not None
        final = self.sut.final_event
        handles: dict[Path, tuple[TextIO, list[str]]] = {}
        try:
            while True:
                stopping = self.probe_stop.is_set()
                for path in self.sut.worker_histories():
                    if path not in handles and path.exists():
                        handles[path] = (path.open(encoding="utf-8"), [])
                for src, partial in handles.values():
                    chunk = src.read()
                    if not chunk:
                        continue
                    lines = ("".join(partial) + chunk).split("\n")
                    partial[:] = [lines.pop()]  # an unfinished last line waits for its newline
                    for line in lines:
                        self._history_line(line, final)
                if stopping:
                    return
                gevent.sleep(0.05)
        finally:
            for src, _ in handles.values():
                src.close()

    def _history_line(self, line: str, final: str) -> None:
        if '"project"' not in line:
            return
        try:
            raw = json.loads(line)
            value = raw["value"]
            if raw["f"] != "project" or raw["type"] != "ok" or value.get("event_type") != final:
                return
            event = ObservedEvent(str(value["entity_id"]), final, str(value["event_id"]), True)
            when = float(raw["time"])
        except (ValueError, KeyError, TypeError):
            return
        self._observed(event, when)

    def _start_probe(self) -> None:
        assert self.sut is not None
        fifo = self.sut.fifo_events
        name = f"fg-load-probe-{self.sut.suffix}" + (".fifo" if fifo else "")
        attrs: dict[Any, str] = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
        self.probe_url = self.sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        self.sut.queues.append(self.probe_url)
        arn = self.sqs.get_queue_attributes(QueueUrl=self.probe_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sub_attrs = {"RawMessageDelivery": "true"}
        policy = self.sut.probe_filter()
        if policy:
            sub_attrs["FilterPolicy"] = json.dumps(policy)
        for topic in self.sut.event_topics():
            self.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes=sub_attrs)
        self.probe_stop = GEvent()
        self.probes = [gevent.spawn(self._probe) for _ in range(self.cfg.probe_pollers)]

    # -- producing -----------------------------------------------------------------
    def submit(self, n: int, due: float) -> None:
        """Release ``n`` orders due at ``due`` (never blocks: open loop)."""
        assert self.sut is not None
        if self.stopping:
            return
        for order in self.sut.make_orders(n):
            self.released += 1
            self.orders[order.entity_id] = Tracked(due=due, order=order)
            self.buffer.append((order, due))
        if len(self.buffer) >= self.sut.orders_per_batch:
            self.wake.set()

    def _batcher(self) -> None:
        """Full batches go at once; a partial batch waits at most ``linger_s``."""
        while True:
            self.wake.wait(timeout=self.cfg.linger_s)
            self.wake.clear()
            stopping = self.stop_event.is_set()
            size = self.sut.orders_per_batch if self.sut is not None else BATCH
            while len(self.buffer) >= size or (
                self.buffer and (stopping or time.time() - self.buffer[0][1] >= self.cfg.linger_s)
            ):
                batch = self.buffer[:size]
                del self.buffer[:size]
                self.pool.spawn(self._send, batch)  # blocks when the pool is full: backlog grows
            if stopping and not self.buffer:
                return

    def _send(self, batch: list[tuple[Order, float]]) -> None:
        assert self.sut is not None
        destination = self.cfg.sut
        for order, _ in [] if self.sut.records_sends else batch:
            self.history.append(
                self.producer,
                "invoke",
                "send",
                {
                    "command_id": order.command_id,
                    "entity_id": order.entity_id,
                    "seq": order.seq,
                    "command_type": order.command_type,
                    "destination": destination,
                },
            )
        t0 = time.time()
        error: BaseException | None = None
        try:
            results = self.sut.send_batch([o for o, _ in batch])
        except Exception as exc:  # outcome unknown for the whole batch
            error = exc
            results = [False] * len(batch)
        t1 = time.time()
        calls = -(-len(batch) * self.sut.commands_per_order // BATCH)  # dispatch_many: <= 10 per call
        self.producer_calls["SendMessageBatch"] = self.producer_calls.get("SendMessageBatch", 0) + calls
        self.fire(
            request_type="sqs",
            name="SendMessageBatch",
            response_time=(t1 - t0) * 1000.0,
            response_length=len(batch),
            exception=error,
            context={},
        )
        for (order, due), ok in zip(batch, results, strict=True):
            value = {
                "command_id": order.command_id,
                "entity_id": order.entity_id,
                "seq": order.seq,
                "command_type": order.command_type,
                "destination": destination,
            }
            tracked = self.orders[order.entity_id]
            tracked.sent = t0
            if ok:
                tracked.acked = True
                self.acked += 1
            else:
                self.failed += 1
            if not self.sut.records_sends:
                self.history.append(
                    self.producer, "ok" if ok else ("info" if error else "fail"), "send", value
                )
            if self.role == "sender":
                commands = [list(c) for c in order.commands]
                self.outbox.append(
                    [order.entity_id, order.command_id, order.seq, order.command_type, commands, due, t0, ok]
                )
            self.fire(
                request_type="order",
                name="due-to-ack",
                response_time=(t1 - due) * 1000.0,
                response_length=1,
                exception=None if ok else (error or RuntimeError("send not acknowledged")),
                context={},
            )

    # -- observing -----------------------------------------------------------------
    def _probe(self) -> None:
        assert self.sut is not None
        while not self.probe_stop.is_set():
            try:
                t0 = time.time()
                msgs = self.sqs.receive_message(
                    QueueUrl=self.probe_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=1,
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                if not msgs:
                    continue
                now = time.time()
                self.fire(
                    request_type="sqs",
                    name="probe ReceiveMessage (long poll)",
                    response_time=(now - t0) * 1000.0,
                    response_length=len(msgs),
                    exception=None,
                    context={},
                )
                for m in msgs:
                    event = self.sut.parse_event(m)
                    if event is not None:
                        self._observed(event, now)
                self.sqs.delete_message_batch(
                    QueueUrl=self.probe_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)],
                )
            except Exception as exc:
                if not self.probe_stop.is_set():
                    self.log(f"probe error: {exc!r}")
                    gevent.sleep(0.2)

    def _observed(self, event: ObservedEvent, now: float) -> None:
        if not event.final:
            return
        tracked = self.orders.get(event.entity_id)
        if tracked is None:
            if self.role == "master":  # its sender has not reported it yet (they ship every 0.5 s)
                self.unmatched.setdefault(event.entity_id, []).append((event, now))
            return  # else another run's order (shared LocalStack) -- not ours
        order = tracked.order
        key = {"event_id": event.event_id, "event_type": event.event_type}
        if self.sut is not None and self.sut.worker_history:
            # the workers record their own effects; the probe only measures latency
            if event.event_id in tracked.events:
                return
            tracked.events.add(event.event_id)
        elif self._probe_effects(order, tracked, event, key) is None:
            return
        if tracked.effected:
            self.duplicates += 1
            return
        tracked.effected = now
        self.effected += 1
        ms = (now - (tracked.sent or tracked.due)) * 1000.0
        self.latencies.append((now, ms))
        self.fire(
            request_type="order",
            name="send-to-effect",
            response_time=ms,
            response_length=1,
            exception=None,
            context={},
        )

    def _probe_effects(
        self, order: Order, tracked: Tracked, event: ObservedEvent, key: dict[str, str]
    ) -> list[tuple[str, int, str]] | None:
        """Without worker histories: record the order's effects as the probe saw them."""
        if event.event_id in tracked.events:
            # the same event delivered again: at-least-once delivery, recognised, not a new effect
            self.history.append(
                "probe",
                "ok",
                "duplicate",
                {"key": event.event_id, "entity_id": order.entity_id, "seq": order.seq},
            )
            return None
        tracked.events.add(event.event_id)
        # The order's effects as observed end to end: its final event reached the probe. The
        # earlier commands of the order are inferred (FIFO group order: the final command can
        # only take effect after them) and marked so.
        commands = order.commands or [(order.command_id, order.seq, order.command_type)]
        for command_id, seq, command_type in commands:
            self.history.append(
                "probe",
                "ok",
                "effect",
                {
                    "command_id": command_id,
                    "entity_id": order.entity_id,
                    "seq": seq,
                    "command_type": command_type,
                    "inferred": command_id != order.command_id,
                    **key,
                },
            )
        return commands

    def merged_history(self) -> History:
        """The producer/probe history merged with the workers' own and (master) the senders'
        (by time), re-indexed."""
        ops = [(op.time, 0, op) for op in self.history.ops]
        ops.extend(self.remote_ops)
        for n, path in enumerate(self.sut.worker_histories() if self.sut is not None else []):
            with path.open(encoding="utf-8") as src:
                for line in src:
                    if not line.strip():
                        continue
                    try:
                        raw = json.loads(line)
                        op = Op(
                            0,
                            str(raw["process"]),
                            str(raw["type"]),
                            str(raw["f"]),
                            dict(raw.get("value") or {}),
                            float(raw.get("time", 0.0)),
                        )
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut by a kill
                    ops.append((op.time, n + 1, op))
        ops.sort(key=lambda item: (item[0], item[1]))
        # the drain op goes last: it closes the run for the checkers
        drain = [op for _, _, op in ops if op.f == "drain" and op.process == "harness"]
        rest = [op for _, _, op in ops if not (op.f == "drain" and op.process == "harness")]
        merged = History()
        for op in [*rest, *drain]:
            merged.append(op.process, op.type, op.f, op.value)
        merged._ops = [
            Op(o.index, o.process, o.type, o.f, o.value, src.time)
            for o, src in zip(merged._ops, [*rest, *drain], strict=True)
        ]
        return merged

    # -- figures -------------------------------------------------------------------
    def backlog(self) -> int:
        return self.acked - self.effected

    def window_p99(self, since: float) -> float:
        values = sorted(ms for t, ms in self.latencies if t >= since)
        return percentile(values, 99) if values else math.nan

    def percentiles(self) -> tuple[float, float, float]:
        values = sorted(ms for _, ms in self.latencies)
        return percentile(values, 50), percentile(values, 95), percentile(values, 99)

    # -- teardown ------------------------------------------------------------------
    def stop_load(self) -> None:
        """Flush what is buffered, wait for in-flight sends; the pacers are already stopped."""
        if self.stopping:
            return
        self.stopping = True
        self.load_stopped = time.time()
        self.stop_event.set()
        self.wake.set()
        self.batcher.join(timeout=30)
        self.pool.join(timeout=60)

    def drain(self) -> int:
        """Wait until every acknowledged order took effect (or the timeout); returns missing."""
        deadline = time.time() + self.cfg.drain_timeout_s
        while time.time() < deadline and self.backlog() > 0:
            gevent.sleep(0.2)
        # linger briefly to catch late duplicates
        gevent.sleep(min(2.0, max(0.0, deadline - time.time())))
        missing = sum(1 for t in self.orders.values() if t.acked and not t.effected)
        exclude = [self.probe_url] if self.probe_url else []
        self.queued = self.sut.queue_backlog(exclude=exclude) if self.sut is not None else {}
        self.history.append("harness", "ok", "drain", {"missing": missing, "still_queued": self.queued})
        return missing

    def shutdown(self) -> None:
        if hasattr(self, "probe_stop"):
            self.probe_stop.set()
            for g in self.probes:
                g.join(timeout=5)
        if self.sut is not None:
            self.sut.stop_workers()
            with contextlib.suppress(Exception):
                self.sut.cleanup()
        after = cpu_snapshot(localstack=self.cfg.backend == "localstack")
        self.cpu = cpu_split(self.cpu_before, after) if hasattr(self, "cpu_before") else {}


def _sum_counts(counts: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for one in counts:
        for key, n in one.items():
            out[key] = out.get(key, 0) + int(n)
    return out
