"""Wiring (:func:`build_runtime`) and the worker entry point (:func:`main`).

``python -m flowgate.reference.worker --config FILE`` (the lead wires ``flowgate worker`` to :func:`main`)
reads a JSON or YAML file::

    {"region": "us-east-1", "domain": "orders",
     "send": {"orders.fifo": ["PlaceOrder", "AuthorizePayment", ...]},
     "raise": {"order-events.fifo": ["OrderPlaced", ...]},
     "listen": ["orders.fifo"],
     "subscribe": {"order-views.fifo": ["order-events.fifo"]},
     "encryption": {"kmsKeyId": "alias/flowgate"},          # optional
     "idempotency": {"url": "sqlite:///flowgate.db"},       # optional; default in-memory
     "options": {"visibility_timeout": 30, "max_receive_count": 3, ...}}  # BusOptions fields
                                                             # (e.g. "data_key_cache": true, D6)

It bootstraps the resources (with ``--no-bootstrap`` it only resolves them:
:meth:`Bootstrapper.resolve`, what the runtime roles of :mod:`flowgate.reference.iam` allow), then runs one
listener per listened/subscribed queue (each with ``options.pollers`` poll threads, one boto3
client per service shared by all) and the idempotency cleanup thread (:func:`start_cleanup`: a
sweep every ``options.idempotency_cleanup_interval`` seconds, the first one interval after
start-up; :mod:`flowgate.reference.cleanup`) until SIGTERM
or SIGINT; the batch in hand is finished before exiting (graceful stop, at most
``wait_time_seconds`` + one batch). AWS endpoint and credentials come from the usual boto3
environment (``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``, ...).

Replay mode: ``--replay ENTITY_ID`` (repeatable) and/or ``--replay-entities ID,ID,...`` re-derive
each listed entity's events from the durable command store of the config file's
``idempotency.url`` (:meth:`CommandBus.replay`, :func:`replay_entities`) and print them on stdout,
one compact JSON event body per line (the plaintext wire JSON the dispatchers publish, with
``metadata.isReplay`` = true and the live event ids), per entity in command order, then exit (0,
or 1 if some entity could not be replayed). No AWS client is created, nothing is bootstrapped,
polled, published, deleted or written; an entity without stored commands prints nothing, and so
does a store that does not exist (or an in-memory one). Logs go to stderr.

Test seams (all off by default; the LocalStack scenarios use them, production never sets them):

* ``--history PATH`` or ``FLOWGATE_HISTORY=PATH``: append every observation as one JSON line
  ``{"process", "type", "f", "value", "time"}`` (flushed per line, so a SIGKILL loses at most the
  line being written); ``FLOWGATE_PROCESS`` names the process (default ``worker-<pid>``).
* ``FLOWGATE_CRASH_AT=point:probability[,point:probability]`` (points of
  :data:`flowgate.reference.hooks.FAULT_POINTS`, seeded by ``FLOWGATE_SEED``): at that fault point the
  process writes a ``crash`` line and dies with ``os._exit(137)`` -- no cleanup, no delete.
* ``FLOWGATE_AWS_CALLS=PATH``: append one JSON line per AWS API call the process makes
  (:class:`flowgate.reference.hooks.AwsCallRecorder`: service, operation and the parameters naming the
  resource), for the IAM audit of ``scenarios/test_iam.py``.
* ``--health-file PATH`` or ``FLOWGATE_HEALTH_FILE=PATH``: every 0.5 s (and on exit) the worker
  replaces PATH with its :meth:`Runtime.health` as JSON (``{"status": "ok"|"degraded",
  "degraded": [dependency, ...], "checks": {...}, "metrics": {"consumers": [gauge, ...]}, "time":
  epoch}``; written to a temporary file and renamed, so a reader never sees half a report). The
  consumer gauges are what the operator's monitor reads (``flowgate.reference.monitoring``,
  ``gauges_from_health_files``; ``docs/operating.md``).
* ``FLOWGATE_HANDLER_DELAY_MS=[point:]ms[:probability][,...]`` (default point ``mid_handler``):
  sleep that long at the point, to outlive a short visibility timeout (one long sleep: the
  heartbeat cannot run; several shorter ones at successive points: it extends visibility).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from flowgate.reference.bootstrap import Bootstrapper, Resources
from flowgate.reference.bus import Aggregate, CommandBus, Processor, Saga, View
from flowgate.reference.cleanup import IdempotencyCleaner
from flowgate.reference.config import BusConfiguration
from flowgate.reference.dispatchers import SnsEventDispatcher, SqsCommandDispatcher
from flowgate.reference.domain.orders import (
    InventoryView,
    OrderSaga,
    OrderView,
    PaymentsView,
    order_domain,
    order_registry,
)
from flowgate.reference.domain.partners import PartnerErrorLog, PartnerOrderSaga, partner_registry
from flowgate.reference.envelope import KmsEnvelopeCipher
from flowgate.reference.errors import ConfigurationError
from flowgate.reference.health import HealthReport, listener_health
from flowgate.reference.hooks import (
    AWS_CALLS_ENV,
    SYSTEM_RANDOMNESS,
    AwsCallRecorder,
    Clock,
    Faults,
    NoFaults,
    NullObserver,
    Observer,
    Randomness,
    SystemClock,
)
from flowgate.reference.listener import SqsListener
from flowgate.reference.messages import Kind, TypeRegistry, encode
from flowgate.reference.stores import InMemoryStorage, Storage
from flowgate.reference.telemetry import NOOP, Telemetry

log = logging.getLogger(__name__)


def _no_aggregates() -> list[Aggregate]:
    return []


@dataclass(frozen=True)
class Domain:
    registry: Callable[[], TypeRegistry]
    sagas: Callable[[], list[Saga]]
    views: Callable[[], list[View]]
    aggregates: Callable[[], list[Aggregate]] = _no_aggregates


#: The explicit list of domains a config file may name (never an import by name).
DOMAINS: dict[str, Domain] = {
    "orders": Domain(
        order_registry, lambda: [OrderSaga()], lambda: [OrderView(), InventoryView(), PaymentsView()]
    ),
    # the saga-command flow (docs/decisions.md D33): the order saga issues ReserveInventory, the
    # fulfilment aggregate (on a subscription queue of the same worker and store) ConfirmOrder
    "orders-saga-commands": Domain(
        order_registry,
        lambda: list(order_domain(saga_commands=True)[0]),
        lambda: [OrderView(), InventoryView(), PaymentsView()],
        lambda: list(order_domain(saga_commands=True)[1]),
    ),
    "partners": Domain(partner_registry, lambda: [PartnerOrderSaga()], lambda: [PartnerErrorLog()]),
}


@dataclass
class Runtime:
    """Everything a process needs: resolved resources, the command bus, one listener per queue."""

    config: BusConfiguration
    resources: Resources
    processor: Processor
    command_bus: CommandBus
    commands: SqsCommandDispatcher
    events: SnsEventDispatcher
    listeners: list[SqsListener] = field(default_factory=list)
    #: the scheduled idempotency cleanup of ``processor.storage`` (run by :func:`start_cleanup`)
    cleaner: IdempotencyCleaner | None = None

    def poll_all_once(self) -> int:
        return sum(listener.poll_once() for listener in self.listeners)

    def health(self) -> HealthReport:
        """The listeners' breakers (no AWS call): ``ok``, or ``degraded`` naming the dependency;
        their gauges in ``metrics["consumers"]`` (:func:`flowgate.reference.health.listener_health`)."""
        return listener_health(self.listeners)

    def close(self) -> None:
        self.commands.close()
        self.events.close()


def build_runtime(
    config: BusConfiguration,
    *,
    sqs: Any,
    sns: Any,
    sts: Any,
    kms: Any = None,
    storage: Storage | None = None,
    sagas: Sequence[Saga] = (),
    views: Sequence[View] = (),
    aggregates: Sequence[Aggregate] = (),
    clock: Clock | None = None,
    faults: Faults | None = None,
    observer: Observer | None = None,
    telemetry: Telemetry | None = None,
    executor: Executor | None = None,
    batching: bool = False,
    resources: Resources | None = None,
    publish_batching: bool = False,
    randomness: Randomness | None = None,
) -> Runtime:
    """Validate, bootstrap (unless ``resources`` given) and wire dispatchers and listeners.

    ``randomness`` (default the OS CSPRNG, :class:`flowgate.reference.hooks.SystemRandomness`) draws the
    envelope cipher's nonces; only a simulator passes another (``flowgate.reference.hooks``)."""
    config.validate(sagas=sagas, views=views)
    clock = clock or SystemClock()
    observer = observer or NullObserver()
    telemetry = telemetry or NOOP
    resources = resources or Bootstrapper(config, sqs=sqs, sns=sns, sts=sts).run()
    storage = storage or InMemoryStorage(config.registry)
    processor = Processor(
        storage,
        sagas=sagas,
        views=views,
        aggregates=aggregates,
        clock=clock,
        ttl_seconds=config.options.idempotency_ttl_seconds,
    )
    cipher = (
        KmsEnvelopeCipher(
            kms,
            config.kms_key_id,
            cache_limits=config.options.data_key_cache_limits(),
            randomness=randomness or SYSTEM_RANDOMNESS,
        )
        if config.kms_key_id
        else None
    )
    commands = SqsCommandDispatcher(
        sqs, config, resources, cipher=cipher, observer=observer, telemetry=telemetry, batching=batching
    )
    # publish_batching: the listeners' outbox publishes (dispatch_each) of all pollers go through
    # one batcher (PublishBatch of <= 10, batch_linger) -- fuller batches; off in the simulator
    # (a batcher thread is not deterministic)
    events = SnsEventDispatcher(
        sns,
        config,
        resources,
        cipher=cipher,
        observer=observer,
        telemetry=telemetry,
        batching=publish_batching,
    )
    # the producer side: client publishes, and the follow-up commands sagas and aggregates issue
    # (sent by the listeners from the producer outbox, D33)
    bus = CommandBus([commands], processor=processor)
    listeners = []
    # each queue's role: a command queue takes the commands routed to it; a subscription queue the
    # events routed to its topics (any event when this configuration routes none there)
    queues: list[tuple[str, set[str], Kind, set[str] | None]] = [
        (q, {q}, "command", {n for n, to in config.command_routes.items() if to == q})
        for q in config.command_queues
    ]
    for q, ts in config.subscriptions.items():
        routed = {n for n, t in config.event_routes.items() if t in ts}
        queues.append((q, set(ts), "event", routed or None))
    for queue, destinations, accepts, accepted_types in queues:
        listeners.append(
            SqsListener(
                sqs,
                queue=queue,
                queue_url=resources.queue_urls[queue],
                dlq_url=resources.dlq_urls[queue],
                registry=config.registry,
                processor=processor,
                options=config.options,
                destinations=destinations,
                publisher=events,
                cipher=cipher,
                clock=clock,
                faults=faults or NoFaults(),
                observer=observer,
                telemetry=telemetry,
                executor=executor,
                accepts=accepts,
                accepted_types=accepted_types,
                command_bus=bus,
            )
        )
    cleaner = IdempotencyCleaner(
        storage,
        interval=config.options.idempotency_cleanup_interval,
        ttl=config.options.idempotency_ttl_seconds,
        clock=clock,
        batch=config.options.idempotency_cleanup_batch,
    )
    return Runtime(config, resources, processor, bus, commands, events, listeners, cleaner)


def start_cleanup(runtime: Runtime, stop: threading.Event) -> threading.Thread:
    """Start the worker's idempotency cleanup thread (:meth:`IdempotencyCleaner.run`): a sweep
    every ``idempotency_cleanup_interval`` seconds (the first one interval after the runtime was
    built), until ``stop`` is set. Its own
    thread, never a poll loop (see :mod:`flowgate.reference.cleanup` for why it cannot block processing)."""
    assert runtime.cleaner is not None
    thread = threading.Thread(target=runtime.cleaner.run, args=(stop,), name="idempotency-cleanup")
    thread.start()
    return thread


class JsonLinesObserver:
    """Writes each observation as one JSON line with a single ``write(2)`` on an ``O_APPEND``
    descriptor (the harness merges these into a history).

    No user-space buffer: a line is in the kernel's page cache when ``observe`` returns, so a
    SIGKILLed worker (chaos) loses nothing it observed; ``O_APPEND`` keeps concurrent lines whole.
    """

    def __init__(self, path: str, process: str) -> None:
        self.process = process
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def observe(self, f: str, kind: str, value: Mapping[str, Any]) -> None:
        line = json.dumps(
            {"process": self.process, "type": kind, "f": f, "value": dict(value), "time": time.time()},
            default=str,
        )
        os.write(self._fd, (line + "\n").encode())


class EnvFaults:
    """``FLOWGATE_CRASH_AT`` / ``FLOWGATE_HANDLER_DELAY_MS`` (see the module docstring)."""

    def __init__(self, crash_at: str, delay: str, seed: int, observer: Observer) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.observer = observer
        self.crash: dict[str, float] = {}
        self.delays: list[tuple[str, float, float]] = []
        for item in filter(None, (x.strip() for x in crash_at.split(","))):
            point, _, prob = item.partition(":")
            self.crash[point] = float(prob or 1.0)
        for item in filter(None, (x.strip() for x in delay.split(","))):
            parts = item.split(":")
            if not parts[0].replace(".", "").isdigit():
                point, parts = parts[0], parts[1:]
            else:
                point = "mid_handler"
            self.delays.append((point, float(parts[0]) / 1000.0, float(parts[1]) if len(parts) > 1 else 1.0))

    def hit(self, point: str, context: Mapping[str, Any]) -> None:
        with self.lock:
            crash = point in self.crash and self.rng.random() < self.crash[point]
            sleeps = [s for p, s, prob in self.delays if p == point and self.rng.random() < prob]
        if crash:
            self.observer.observe(
                "crash",
                "info",
                {
                    "point": point,
                    **{k: context[k] for k in context if k in ("message_id", "entity_id", "seq")},
                },
            )
            os._exit(137)
        for seconds in sleeps:
            self.observer.observe(
                "stall", "info", {"point": point, "seconds": seconds, "message_id": context.get("message_id")}
            )
            time.sleep(seconds)


def write_health(runtime: Runtime, path: str) -> None:
    """Replace ``path`` with ``runtime.health()`` as JSON (see the module docstring)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    Path(tmp).write_text(json.dumps({**runtime.health().as_dict(), "time": time.time()}), encoding="utf-8")
    os.replace(tmp, path)


def load_config_file(path: str) -> dict[str, Any]:
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith((".yaml", ".yml")):
        import yaml  # project dependency; only needed for YAML configs

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: top level must be a mapping")
    return data


def open_durable_storage(registry: TypeRegistry, url: str | None) -> Storage | None:
    """The durable store named by a config file's ``idempotency.url``, opened without creating
    anything (no tables, no database file); None when there is nothing durable to read: no URL
    (in-memory store), an in-memory SQLite database, or a SQLite file that does not exist."""
    if not url:
        return None
    from sqlalchemy.engine import make_url

    from flowgate.reference.sql import SqlStorage

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or (
            not database.startswith("file:") and not Path(database).is_file()
        ):
            return None
    return SqlStorage(registry, url, create=False)


def replay_entities(data: Mapping[str, Any], entity_ids: Sequence[str], out: TextIO) -> int:
    """Replay mode (see the module docstring): print the replayed events of ``entity_ids``.

    ``data`` is the worker's config file. For each entity, in the given order, runs
    :meth:`CommandBus.replay` on the store of ``idempotency.url`` and writes one line per event to
    ``out``: :func:`flowgate.reference.messages.encode` of the event (the plaintext JSON body
    :func:`flowgate.reference.dispatchers.build_body` publishes), ``metadata.isReplay`` true, the same
    event ids, sequence numbers and causation ids as the live events. An entity whose replay
    fails (a store error, a stored command the saga refuses) is logged and prints nothing.

    Returns 0 if every entity was replayed (or had no stored command), else 1. Creates no AWS
    client and writes nothing (CommandBus.replay only reads).
    """
    domain = DOMAINS.get(str(data.get("domain", "orders")))
    if domain is None:
        raise ConfigurationError(f"unknown domain {data.get('domain')!r}; known: {sorted(DOMAINS)}")
    registry = domain.registry()
    config = BusConfiguration.from_dict(data, registry)
    sagas, views = domain.sagas(), domain.views()
    config.validate(sagas=sagas, views=views)
    storage = open_durable_storage(registry, (data.get("idempotency") or {}).get("url"))
    if storage is None:
        log.warning("replay: no durable command store in the configuration: nothing to replay")
        return 0
    processor = Processor(
        storage, sagas=sagas, views=views, ttl_seconds=config.options.idempotency_ttl_seconds
    )
    bus = CommandBus(processor=processor)
    failed = 0
    try:
        for entity_id in entity_ids:
            try:
                result = bus.replay(entity_id)
            except Exception as exc:  # one entity's failure must not hide the others
                log.error("replay of %s failed: %s: %s", entity_id, type(exc).__name__, exc)
                failed += 1
                continue
            for event in result.events:
                out.write(encode(event) + "\n")
            out.flush()
            log.info("replayed %s: %d events", entity_id, len(result.events))
    finally:
        engine = getattr(storage, "engine", None)
        if engine is not None:
            engine.dispose()
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker until SIGTERM/SIGINT (or once, or a replay). Returns the process exit code."""
    parser = argparse.ArgumentParser(prog="flowgate worker", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="JSON or YAML bus configuration")
    parser.add_argument("--once", action="store_true", help="poll every listener once and exit")
    parser.add_argument(
        "--history",
        default=os.environ.get("FLOWGATE_HISTORY"),
        help="append observations as JSON lines to this file (test seam)",
    )
    parser.add_argument(
        "--health-file",
        default=os.environ.get("FLOWGATE_HEALTH_FILE"),
        help="keep this file replaced with the worker's health as JSON (every 0.5 s)",
    )
    parser.add_argument(
        "--ready",
        metavar="LINE",
        help="print LINE on stdout once every poll thread has started (e.g. a supervisor's ready line)",
    )
    parser.add_argument(
        "--no-bootstrap",
        action="store_true",
        help="resolve the configuration's queues (GetQueueUrl) instead of creating or changing them: "
        "what the runtime IAM roles allow (flowgate policies); fails if one is missing",
    )
    parser.add_argument(
        "--replay",
        action="append",
        default=[],
        metavar="ENTITY_ID",
        help="replay mode: print this entity's replayed events as JSON lines and exit (repeatable)",
    )
    parser.add_argument(
        "--replay-entities",
        metavar="ID,ID,...",
        help="replay mode for a comma-separated list of entity ids (may be empty)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    data = load_config_file(args.config)
    domain = DOMAINS.get(str(data.get("domain", "orders")))
    if domain is None:
        parser.error(f"unknown domain {data.get('domain')!r}; known: {sorted(DOMAINS)}")
    if args.replay or args.replay_entities is not None:
        if args.once:
            parser.error("--once and replay mode exclude each other")
        listed = [*args.replay, *(args.replay_entities or "").split(",")]
        entity_ids = list(dict.fromkeys(e.strip() for e in listed if e.strip()))
        return replay_entities(data, entity_ids, sys.stdout)
    from flowgate.reference.clients import (
        ClientSettings,  # the library part (and replay mode) makes no clients
    )

    registry = domain.registry()
    config = BusConfiguration.from_dict(data, registry)
    # every poller, every executor thread and the batcher may hold a connection at once
    queues = len(config.command_queues) + len(config.subscriptions)
    # parameter_validation off: every request is built by this code, the service validates anyway,
    # and the client-side check cost ~7 % of a loaded worker's CPU (a bad request still fails: as a
    # ClientError from the service instead of a ParamValidationError, handled the same way).
    # Endpoint and credentials: botocore's own resolution (AWS_ENDPOINT_URL[_<SERVICE>], the
    # credential chain); timeouts and retries: botocore's defaults (legacy mode, 5 attempts,
    # 60 s), stated here so that the factory's other defaults do not change the worker's behaviour
    settings = ClientSettings.from_environment(
        region=config.options.region,
        max_pool_connections=config.options.max_concurrent_calls
        + config.options.pollers * max(1, queues)
        + 4,
        parameter_validation=False,
        connect_timeout=60.0,
        read_timeout=60.0,
        retry_mode="legacy",
        max_attempts=5,
    )
    session = settings.session()
    url = (data.get("idempotency") or {}).get("url")
    storage: Storage
    if url:
        from flowgate.reference.sql import SqlStorage

        storage = SqlStorage(registry, str(url))
    else:
        storage = InMemoryStorage(registry)
    executor = ThreadPoolExecutor(max_workers=config.options.max_concurrent_calls)
    observer: Observer = NullObserver()
    if args.history:
        observer = JsonLinesObserver(
            args.history, os.environ.get("FLOWGATE_PROCESS") or f"worker-{os.getpid()}"
        )
    faults: Faults = NoFaults()
    crash_at, delay = os.environ.get("FLOWGATE_CRASH_AT", ""), os.environ.get("FLOWGATE_HANDLER_DELAY_MS", "")
    if crash_at or delay:
        faults = EnvFaults(crash_at, delay, int(os.environ.get("FLOWGATE_SEED", "0")), observer)
    made = {
        "sqs": settings.client("sqs", session=session),
        "sns": settings.client("sns", session=session),
        "sts": settings.client("sts", session=session),
        # KMS: the SDK's retries are short (a KMS outage is the breaker's and the redelivery's to ride
        # out, contract v1.4 section 5); its endpoint may differ from the queues' (AWS_ENDPOINT_URL_KMS,
        # which botocore reads itself, e.g. the gate's FLOWGATE_KMS_ENDPOINT_URL)
        "kms": settings.client(
            "kms",
            session=session,
            retries={"mode": "standard", "max_attempts": 2},
            connect_timeout=5,
            read_timeout=10,
        )
        if config.kms_key_id
        else None,
    }
    if calls_file := os.environ.get(AWS_CALLS_ENV):
        recorder = AwsCallRecorder(calls_file, os.environ.get("FLOWGATE_PROCESS") or f"worker-{os.getpid()}")
        for client in made.values():
            if client is not None:
                recorder.attach(client)
    resources = None
    if args.no_bootstrap:
        resources = Bootstrapper(config, sqs=made["sqs"], sns=made["sns"], sts=made["sts"]).resolve()
    runtime = build_runtime(
        config,
        sqs=made["sqs"],
        sns=made["sns"],
        sts=made["sts"],
        kms=made["kms"],
        resources=resources,
        storage=storage,
        sagas=domain.sagas(),
        views=domain.views(),
        aggregates=domain.aggregates(),
        executor=executor,
        faults=faults,
        observer=observer,
        publish_batching=True,
    )
    if args.once:
        runtime.poll_all_once()
        runtime.close()
        executor.shutdown()
        return 0
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: finishing in-flight messages", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threads = [
        threading.Thread(target=lst.run, args=(stop,), name=f"listener-{lst.queue}-{n}")
        for lst in runtime.listeners
        for n in range(config.options.pollers)
    ]
    for t in threads:
        t.start()
    threads.append(start_cleanup(runtime, stop))
    log.info("worker running: %s", [lst.queue for lst in runtime.listeners])
    if args.ready:
        print(args.ready, flush=True)
    while any(t.is_alive() for t in threads):
        if args.health_file:
            try:
                write_health(runtime, args.health_file)
            except OSError as exc:
                log.warning("could not write the health file: %s", exc)
        for t in threads:
            t.join(timeout=0.5)
    if args.health_file:
        write_health(runtime, args.health_file)
    runtime.close()
    executor.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
