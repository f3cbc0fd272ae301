"""The system under load, behind one small interface.

* :class:`ReferenceSUT` -- the reference bus: its bootstrapper provisions the topology,
  ``python -m flowgate.reference.worker`` subprocesses run the listeners, orders go through the
  reference's SQS command dispatcher, the probe watches the final event (``OrderConfirmed``)
  on the event topic(s).
* :class:`RawSUT` -- the bare boto3 pipeline of :mod:`flowgate.harness.baseline` (its worker loop as
  subprocesses): the same Locust machinery against a framework-free system, used to validate
  the load harness itself and while the reference is incomplete.

Everything AWS-side gets a uuid suffix and is deleted by :meth:`stop`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ._count_calls import latency_path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Order:
    command_id: str
    entity_id: str
    seq: int
    command_type: str
    body: Any = None  # SUT-specific (a reference Command, or a dict)
    #: (command_id, seq, command_type) of every command of the order, in issue order
    commands: list[tuple[str, int, str]] = field(default_factory=list)


@dataclass
class ObservedEvent:
    entity_id: str
    event_type: str
    event_id: str
    final: bool


def aws_env(settings: Any) -> dict[str, str]:
    """A worker subprocess's environment: the same clients as this process (an explicit
    endpoint with its static credentials, or the credential chain and region as they are;
    :meth:`flowgate.harness.clients.ClientSettings.child_env`), and the repository importable."""
    env = settings.child_env() if hasattr(settings, "child_env") else dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@dataclass
class SUT:
    endpoint: str | None  # None: the environment's AWS (``--backend aws``)
    sqs: Any
    sns: Any
    report_dir: Path
    log: Callable[[str], None] = print
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    final_event: str = "OrderConfirmed"
    commands_per_order: int = 1
    records_sends: bool = False  # True when the SUT's dispatcher writes the send ops itself
    fifo_events: ClassVar[bool] = True
    history_observer: Any = None
    storage_url: str | None = None
    pollers: int | None = None  # reference: BusOptions.pollers written into the bus config
    receive_linger_ms: float = 0.0  # reference: BusOptions.receive_linger written into the bus config
    adaptive_linger: bool = True  # reference: BusOptions.adaptive_linger written into the bus config
    worker_history: bool = False  # the workers write their own history (reference --history)
    bus_config: str | None = None  # an existing system's bus config: adopt, start no workers
    #: reference: a KMS key for the run, commands and events sealed (contract section 5)
    encryption: bool = False
    #: reference, with ``encryption``: BusOptions.data_key_cache on (producer and workers; D6)
    data_key_cache: bool = False
    #: the producer's KMS calls, by operation (the workers' are in their call counts)
    producer_kms_calls: dict[str, int] = field(default_factory=dict)
    kms_keys: list[str] = field(default_factory=list)
    kms: Any = None  # the run's KMS client (same connection pool settings as sqs/sns)
    #: the run's client factory (:class:`flowgate.harness.clients.ClientSettings`, or the simulator's
    #: ``SimAws`` in tests): anything with ``client(service)``; workers inherit its settings
    aws: Any = None
    sts: Any = None  # the run's STS client (made with the others; the bootstrapper's account)

    # -- lifecycle -----------------------------------------------------------------
    def start(self, workers: int) -> None:
        raise NotImplementedError

    def event_topics(self) -> list[str]:
        return list(getattr(self, "event_topic_arns", None) or self.topics)

    @property
    def orders_per_batch(self) -> int:
        """Orders per send call so that one call carries at most 10 messages."""
        return max(1, 10 // self.commands_per_order)

    def probe_filter(self) -> dict[str, Any] | None:
        """An SNS filter policy selecting the final event (None: take everything)."""
        return None

    def worker_histories(self) -> list[Path]:
        if not self.worker_history:
            return []
        return sorted(self.report_dir.glob(f"worker-*-{self.suffix}.jsonl"))

    def queue_backlog(self, exclude: Sequence[str] = ()) -> dict[str, int]:
        """Messages still in the system's queues (visible + in flight), by queue name."""
        out: dict[str, int] = {}
        for url in self.queues:
            if url in exclude:
                continue
            try:
                attrs = self.sqs.get_queue_attributes(
                    QueueUrl=url,
                    AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                )["Attributes"]
            except Exception:
                continue
            n = int(attrs.get("ApproximateNumberOfMessages", 0)) + int(
                attrs.get("ApproximateNumberOfMessagesNotVisible", 0)
            )
            if n:
                out[url.rsplit("/", 1)[-1]] = n
        return out

    def worker_calls(self) -> dict[str, int]:
        """AWS API calls made by the worker processes (after they stopped), by operation."""
        total: dict[str, int] = {}
        for path in sorted(self.report_dir.glob(f"calls-worker-*-{self.suffix}.json")):
            for op, n in json.loads(path.read_text()).items():
                total[op] = total.get(op, 0) + int(n)
        return total

    def worker_call_latency(self) -> dict[str, dict[str, float]]:
        """Wall time of the workers' AWS API calls by operation: calls, mean ms, total s."""
        total: dict[str, dict[str, float]] = {}
        for counts in sorted(self.report_dir.glob(f"calls-worker-*-{self.suffix}.json")):
            path = latency_path(counts)
            if not path.exists():
                continue
            for op, row in json.loads(path.read_text()).items():
                acc = total.setdefault(op, {"calls": 0, "total_s": 0.0})
                acc["calls"] += row["calls"]
                acc["total_s"] += row["total_s"]
        for acc in total.values():
            acc["mean_ms"] = round(acc["total_s"] / acc["calls"] * 1000, 1) if acc["calls"] else 0.0
            acc["total_s"] = round(acc["total_s"], 1)
        return total

    def spawn(
        self, argv: Sequence[str], name: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        self.report_dir.mkdir(parents=True, exist_ok=True)
        out = (self.report_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, *argv],
            env={**aws_env(self.aws), **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        self.procs.append(proc)
        self.log(f"started {name} pid {proc.pid}: {' '.join(argv)}")
        return proc

    def stop_workers(self, grace: float = 10.0) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def cleanup(self) -> None:
        for key in self.kms_keys:  # the shortest window KMS allows
            with contextlib.suppress(Exception):
                self.kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
        for arn in self.topics:
            with contextlib.suppress(Exception):
                self.sns.delete_topic(TopicArn=arn)
        for url in self.queues:
            with contextlib.suppress(Exception):
                self.sqs.delete_queue(QueueUrl=url)

    # -- distributed mode: a send-only copy in each Locust worker -------------------------
    def sender_spec(self) -> dict[str, Any]:
        """What a Locust worker needs to send into this system (JSON; :meth:`attach` reads it)."""
        raise NotImplementedError

    def attach(self, spec: Mapping[str, Any]) -> None:
        """Become a send-only copy of the system the master started (nothing is created:
        the topology is resolved; :meth:`cleanup` deletes nothing)."""
        raise NotImplementedError

    # -- traffic -------------------------------------------------------------------
    def make_orders(self, n: int) -> list[Order]:
        raise NotImplementedError

    def send_batch(self, orders: Sequence[Order]) -> list[bool]:
        """Send up to 10 orders in one batch; one bool per order (acknowledged or not)."""
        raise NotImplementedError

    def parse_event(self, message: Mapping[str, Any]) -> ObservedEvent | None:
        raise NotImplementedError


class RawSUT(SUT):
    """The bare pipeline of :mod:`flowgate.harness.baseline` (SQS FIFO -> worker -> SNS FIFO)."""

    def start(self, workers: int) -> None:
        if self.encryption:
            raise RuntimeError(
                "the bare baseline (--sut raw) has no encryption; --encryption loads the reference"
            )
        self.final_event, self.commands_per_order = "Placed", 1
        fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "true", "VisibilityTimeout": "30"}
        self.cmd_url = self.sqs.create_queue(QueueName=f"fg-load-cmd-{self.suffix}.fifo", Attributes=fifo)[
            "QueueUrl"
        ]
        self.queues.append(self.cmd_url)
        self.topic = self.sns.create_topic(
            Name=f"fg-load-evt-{self.suffix}.fifo",
            Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "true"},
        )["TopicArn"]
        self.topics.append(self.topic)
        for i in range(workers):
            calls = self.report_dir / f"calls-worker-{i + 1}-{self.suffix}.json"
            self.spawn(
                [
                    "-m",
                    "loadtests._count_calls",
                    str(calls),
                    "flowgate.harness.baseline",
                    "worker",
                    "--queue-url",
                    self.cmd_url,
                    "--topic-arn",
                    self.topic,
                ],
                f"raw-worker-{i + 1}",
            )

    def sender_spec(self) -> dict[str, Any]:
        return {"cmd_url": self.cmd_url, "topic": self.topic}

    def attach(self, spec: Mapping[str, Any]) -> None:
        self.final_event, self.commands_per_order = "Placed", 1
        self.cmd_url, self.topic = str(spec["cmd_url"]), str(spec["topic"])

    def make_orders(self, n: int) -> list[Order]:
        out = []
        for _ in range(n):
            oid = f"o-{uuid.uuid4().hex}"
            out.append(Order(command_id=uuid.uuid4().hex, entity_id=oid, seq=1, command_type="PlaceOrder"))
        return out

    def send_batch(self, orders: Sequence[Order]) -> list[bool]:
        import time

        now = time.time()
        entries = [
            {
                "Id": str(i),
                "MessageBody": json.dumps({"order": o.entity_id, "command_id": o.command_id, "t": now}),
                "MessageGroupId": o.entity_id,
                "MessageDeduplicationId": o.command_id,
            }
            for i, o in enumerate(orders)
        ]
        resp = self.sqs.send_message_batch(QueueUrl=self.cmd_url, Entries=entries)
        ok = {int(e["Id"]) for e in resp.get("Successful", [])}
        return [i in ok for i in range(len(orders))]

    def parse_event(self, message: Mapping[str, Any]) -> ObservedEvent | None:
        body = json.loads(message["Body"])
        return ObservedEvent(body["order"], body.get("event", "Placed"), body["order"], True)


#: The commands of one order, in the order the client issues them (reference/domain/orders.py).
LIFECYCLE = ("PlaceOrder", "AuthorizePayment", "ReserveInventory", "ConfirmOrder")
FINAL_EVENT = {1: "OrderPlaced", 2: "PaymentAuthorized", 3: "InventoryReserved", 4: "OrderConfirmed"}


class _CountingKms:
    """A KMS client that counts the producer's calls by operation (KMS calls per order)."""

    def __init__(self, kms: Any, counts: dict[str, int]) -> None:
        self._kms, self._counts = kms, counts

    def _count(self, op: str) -> None:
        self._counts[op] = self._counts.get(op, 0) + 1

    def generate_data_key(self, **kw: Any) -> Any:
        self._count("GenerateDataKey")
        return self._kms.generate_data_key(**kw)

    def decrypt(self, **kw: Any) -> Any:
        self._count("Decrypt")
        return self._kms.decrypt(**kw)

    def describe_key(self, **kw: Any) -> Any:
        self._count("DescribeKey")
        return self._kms.describe_key(**kw)


#: How the worker is started; ``{config}`` is the bus configuration file (reference/config.py
#: ``BusConfiguration.from_dict`` shape). Override with FLOWGATE_WORKER_CMD.
#: what a reference worker prints once it polls (``flowgate.reference.worker --ready``)
READY_LINE = "flowgate-load-worker-ready"
WORKER_CMD = os.environ.get("FLOWGATE_WORKER_CMD", "-m flowgate.reference.worker --config {config}")


class ReferenceSUT(SUT):
    """The reference bus: bootstrapper, ``flowgate.reference.worker`` subprocesses, SqsCommandDispatcher.

    One order = ``PlaceOrder`` -> ``OrderPlaced`` -> view updated (``commands_per_order`` = 1, the
    default: the baseline's hops), or the client-issued lifecycle ``PlaceOrder, AuthorizePayment,
    ReserveInventory, ConfirmOrder`` (``commands_per_order`` = 4, seq 1..4, one FIFO group per
    order), sent with ``dispatch_many`` (SendMessageBatch, <= 10 per call, in order); the effect
    is observed when the event of the last command (``OrderPlaced``/``OrderConfirmed``) reaches
    the probe. The dispatcher's own
    observer writes the ``send`` ops of the history.
    """

    def start(self, workers: int) -> None:
        self.records_sends = True
        try:
            from flowgate.reference.bootstrap import Bootstrapper
            from flowgate.reference.config import BusConfiguration
            from flowgate.reference.dispatchers import SqsCommandDispatcher
            from flowgate.reference.domain import orders as domain
            from flowgate.reference.envelope import KmsEnvelopeCipher
        except ImportError as exc:
            raise RuntimeError(
                f"the reference AWS side is not importable ({exc}); run with --sut raw to load the bare pipeline"
            ) from exc
        self.domain = domain
        self.registry = domain.order_registry()
        self.final_event = FINAL_EVENT[self.commands_per_order]
        p = f"fg-load-{self.suffix}"
        self.config_dict: dict[str, Any] = {
            "domain": "orders",
            "send": {f"{p}-orders.fifo": [*list(LIFECYCLE), "CancelOrder"]},
            "raise": {f"{p}-order-events.fifo": [e.__name__ for e in domain.ORDER_EVENTS]},
            "listen": [f"{p}-orders.fifo"],
            "subscribe": {f"{p}-order-views.fifo": [f"{p}-order-events.fifo"]},
            "options": {"wait_time_seconds": 1, "visibility_timeout": 30},
        }
        if self.pollers:
            self.config_dict["options"]["pollers"] = self.pollers
        if self.receive_linger_ms:
            self.config_dict["options"]["receive_linger"] = self.receive_linger_ms / 1000.0
        if not self.adaptive_linger:
            self.config_dict["options"]["adaptive_linger"] = False
        if self.data_key_cache and not self.encryption:
            raise RuntimeError("--data-key-cache needs --encryption")
        if self.encryption and not self.bus_config:
            key = self.kms.create_key(Description=f"flowgate load {self.suffix}")["KeyMetadata"]["Arn"]
            self.kms_keys.append(key)
            self.config_dict["encryption"] = {"kmsKeyId": key}
            self.config_dict["options"]["data_key_cache"] = self.data_key_cache
        if self.bus_config:  # a system already running: use its topology, create/delete nothing of it
            from flowgate.reference.worker import load_config_file

            self.config_dict = load_config_file(self.bus_config)
        elif self.storage_url or (workers > 1 and self.commands_per_order > 1):
            # an order's later commands need its state: share it between worker processes
            # (in-memory storage is per process; one command per order needs no sharing)
            url = self.storage_url or f"sqlite:///{(self.report_dir / f'state-{self.suffix}.db').resolve()}"
            self.config_dict["idempotency"] = {"url": url}
        self.report_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.report_dir / f"bus-{self.suffix}.json"
        self.config_path.write_text(json.dumps(self.config_dict, indent=2))
        if self.bus_config:
            self.config_path = Path(self.bus_config)
        self.config = BusConfiguration.from_dict(self.config_dict, self.registry)
        self.resources = Bootstrapper(
            self.config, sqs=self.sqs, sns=self.sns, sts=self.sts or self.aws.client("sts")
        ).run()
        if not self.bus_config:  # ours: deleted after the run
            self.queues.extend([*self.resources.queue_urls.values(), *self.resources.dlq_urls.values()])
            self.topics.extend(self.resources.topic_arns.values())
        self.event_topic_arns = list(self.resources.topic_arns.values())
        self._make_dispatcher(SqsCommandDispatcher, KmsEnvelopeCipher)
        for i in range(workers):
            argv = [a.replace("{config}", str(self.config_path)) for a in WORKER_CMD.split()]
            if argv[:1] == ["-m"]:  # count the worker's AWS calls (API calls per order)
                calls = self.report_dir / f"calls-worker-{i + 1}-{self.suffix}.json"
                argv = ["-m", "loadtests._count_calls", str(calls), *argv[1:]]
            if self.worker_history:  # the worker's own observations (effect, publish, project...)
                argv += ["--history", str(self.report_dir / f"worker-{i + 1}-{self.suffix}.jsonl")]
            if (
                "flowgate.reference.worker" in argv
            ):  # printed once its poll threads run (not by FLOWGATE_WORKER_CMD)
                argv += ["--ready", READY_LINE]
                # provisioned above: the workers only resolve, as their runtime IAM roles allow
                # (docs/iam.md; FLOWGATE_AWS_CALLS records their calls for python -m flowgate.harness.iam_audit)
                argv += ["--no-bootstrap"]
            self.spawn(argv, f"worker-{i + 1}", env={"FLOWGATE_PROCESS": f"worker-{i + 1}"})
        self.wait_ready(
            [f"worker-{i + 1}" for i in range(workers)] if "flowgate.reference.worker" in WORKER_CMD else []
        )

    def _make_dispatcher(self, dispatcher_cls: Any, cipher_cls: Any) -> None:
        self._results: dict[str, bool] = {}
        cipher = None
        if self.config.kms_key_id:
            cipher = cipher_cls(
                _CountingKms(self.kms, self.producer_kms_calls),
                self.config.kms_key_id,
                cache_limits=self.config.options.data_key_cache_limits(),
            )
        self.dispatcher = dispatcher_cls(self.sqs, self.config, self.resources, cipher=cipher, observer=self)

    def sender_spec(self) -> dict[str, Any]:
        return {"config": self.config_dict, "commands_per_order": self.commands_per_order}

    def attach(self, spec: Mapping[str, Any]) -> None:
        from flowgate.reference.bootstrap import Bootstrapper
        from flowgate.reference.config import BusConfiguration
        from flowgate.reference.dispatchers import SqsCommandDispatcher
        from flowgate.reference.domain import orders as domain
        from flowgate.reference.envelope import KmsEnvelopeCipher

        self.records_sends = True
        self.domain = domain
        self.registry = domain.order_registry()
        self.commands_per_order = int(spec["commands_per_order"])
        self.final_event = FINAL_EVENT[self.commands_per_order]
        self.config_dict = dict(spec["config"])
        self.config = BusConfiguration.from_dict(self.config_dict, self.registry)
        # resolve only (GetQueueUrl, GetTopicAttributes): the master provisioned everything
        self.resources = Bootstrapper(
            self.config, sqs=self.sqs, sns=self.sns, sts=self.sts or self.aws.client("sts")
        ).resolve()
        self.event_topic_arns = list(self.resources.topic_arns.values())
        self._make_dispatcher(SqsCommandDispatcher, KmsEnvelopeCipher)

    def wait_ready(self, names: Sequence[str], timeout: float = 60.0) -> None:
        """Wait until every named worker printed :data:`READY_LINE` (it is polling), so the load
        does not start against a worker still importing and bootstrapping (the first seconds
        would otherwise be judged as a backlog). Raises if one exits or the timeout passes."""
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            pending = [
                n for n in pending if READY_LINE.encode() not in (self.report_dir / f"{n}.log").read_bytes()
            ]
            if not pending:
                break
            dead = [p for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(
                    f"worker(s) {pending} not ready ({'exited' if dead else f'after {timeout:.0f} s'}); "
                    f"see {self.report_dir}/worker-*.log"
                )
            time.sleep(0.1)
        if names:
            self.log(f"{len(names)} worker(s) polling")

    # the dispatcher's observer: forward to the run's history, remember each command's outcome

    def observe(self, f: str, kind: str, value: Mapping[str, Any]) -> None:
        if self.history_observer is not None:
            self.history_observer.observe(f, kind, value)
        if f == "send" and kind in ("ok", "fail"):
            self._results[str(value["command_id"])] = kind == "ok"

    def probe_filter(self) -> dict[str, Any] | None:
        return {"EventType": [self.final_event]}

    def make_orders(self, n: int) -> list[Order]:
        from flowgate.reference.messages import new_command

        d = self.domain
        out = []
        for _ in range(n):
            oid = f"order-{uuid.uuid4().hex[:16]}"
            payloads = [
                d.PlaceOrder(customer_id="c-1", sku="sku-1", quantity=1, amount_cents=1999),
                d.AuthorizePayment(payment_id=f"pay-{oid}", amount_cents=1999),
                d.ReserveInventory(sku="sku-1", quantity=1),
                d.ConfirmOrder(),
            ][: self.commands_per_order]
            commands = [
                new_command(p, oid, is_new=(i == 0), sequence_no=i + 1, correlation_id=oid)
                for i, p in enumerate(payloads)
            ]
            last = commands[-1]
            out.append(
                Order(
                    last.metadata.event_id,
                    oid,
                    len(commands),
                    last.name,
                    body=commands,
                    commands=[(c.metadata.event_id, i + 1, c.name) for i, c in enumerate(commands)],
                )
            )
        return out

    def send_batch(self, orders: Sequence[Order]) -> list[bool]:
        from flowgate.reference.errors import DispatchError

        commands = [c for o in orders for c in o.body]
        with contextlib.suppress(DispatchError):  # per-command outcomes land in self._results
            self.dispatcher.dispatch_many(commands)
        return [all(self._results.pop(c.metadata.event_id, False) for c in o.body) for o in orders]

    def parse_event(self, message: Mapping[str, Any]) -> ObservedEvent | None:
        attrs = message.get("MessageAttributes") or {}

        def get(name: str) -> str | None:
            a = attrs.get(name)
            return a.get("StringValue") if a else None

        etype, entity, eid = get("EventType"), get("EntityId"), get("EventId")
        if etype is None or entity is None:
            return None
        return ObservedEvent(entity, etype, eid or message["MessageId"], etype == self.final_event)


SUTS: dict[str, type[SUT]] = {"reference": ReferenceSUT, "raw": RawSUT}
