"""Topology files: which queues, topics and keys a run needs, and how to create and delete them.

A topology is a small YAML document (``harness/gate/topology.yaml`` is the default; schema
``docs/schemas/topology.schema.json``): one FIFO command queue with its DLQ, one FIFO event
topic, the harness's probe queue subscribed to the topic with raw delivery, and KMS keys.
:func:`provision` prefixes every name with ``<prefix>-<run id>-`` so parallel runs on a shared
LocalStack never collide, and :meth:`Provisioned.teardown` deletes exactly what it created.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

DEFAULT_TOPOLOGY = Path(__file__).parent / "gate" / "topology.yaml"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,60}(\.fifo)?$")


class TopologyError(ValueError):
    """The topology file is missing a field or names something AWS would refuse."""


@dataclass(frozen=True, slots=True)
class QueueSpec:
    name: str
    fifo: bool = True
    content_based_deduplication: bool = False
    deduplication_scope: str = "messageGroup"
    visibility_timeout: int = 30
    dlq_name: str | None = None
    max_receive_count: int = 3
    #: the queue's native ``RedrivePolicy`` uses ``max_receive_count + redrive_headroom`` (contract
    #: v1.2 section 6: the consumer forwards poison at ``max_receive_count`` with a reason, before
    #: SQS's reason-less redrive; 0 = the same number, as in contract v1.1)
    redrive_headroom: int = 0

    @property
    def redrive_max_receive_count(self) -> int:
        """The ``maxReceiveCount`` of the native ``RedrivePolicy``."""
        return self.max_receive_count + self.redrive_headroom


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    fifo: bool = True
    content_based_deduplication: bool = False


@dataclass(frozen=True, slots=True)
class Topology:
    prefix: str
    command_queue: QueueSpec
    event_topic: TopicSpec
    probe_queue: str
    raw_message_delivery: bool = True
    kms_key: bool = True
    foreign_key: bool = True

    def with_overrides(
        self,
        *,
        visibility_timeout: int | None = None,
        max_receive_count: int | None = None,
        encrypted: bool | None = None,
        redrive_headroom: int | None = None,
    ) -> Topology:
        queue = self.command_queue
        if redrive_headroom is not None:
            queue = replace(queue, redrive_headroom=redrive_headroom)
        if visibility_timeout is not None:
            queue = replace(queue, visibility_timeout=visibility_timeout)
        if max_receive_count is not None:
            queue = replace(queue, max_receive_count=max_receive_count)
        kms = self.kms_key if encrypted is None else encrypted
        return replace(self, command_queue=queue, kms_key=kms, foreign_key=self.foreign_key and kms)


def _need(doc: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(doc, Mapping) or key not in doc:
        raise TopologyError(f"{where}: missing {key!r}")
    return doc[key]


def _check_name(name: Any, fifo: bool, where: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise TopologyError(f"{where}: {name!r} is not a valid queue/topic name")
    if fifo != name.endswith(".fifo"):
        raise TopologyError(
            f"{where}: a {'FIFO' if fifo else 'standard'} name must "
            f"{'' if fifo else 'not '}end in .fifo ({name!r})"
        )
    return name


def parse(doc: Mapping[str, Any]) -> Topology:
    """Validate a parsed topology document (see ``docs/schemas/topology.schema.json``)."""
    if _need(doc, "version", "topology") != 1:
        raise TopologyError("topology: only version 1 is understood")
    prefix = str(doc.get("prefix", "fg"))
    if not re.match(r"^[a-z0-9-]{1,12}$", prefix):
        raise TopologyError(f"topology: prefix {prefix!r} must be 1-12 of [a-z0-9-]")
    cq = _need(doc, "command_queue", "topology")
    fifo = bool(cq.get("fifo", True))
    dlq = cq.get("dead_letter") or {}
    dlq_name = (
        _check_name(_need(dlq, "name", "command_queue.dead_letter"), fifo, "command_queue.dead_letter")
        if dlq
        else None
    )
    queue = QueueSpec(
        name=_check_name(_need(cq, "name", "command_queue"), fifo, "command_queue"),
        fifo=fifo,
        content_based_deduplication=bool(cq.get("content_based_deduplication", False)),
        deduplication_scope=str(cq.get("deduplication_scope", "messageGroup")),
        visibility_timeout=int(cq.get("visibility_timeout", 30)),
        dlq_name=dlq_name,
        max_receive_count=int(dlq.get("max_receive_count", 3)) if dlq else 0,
    )
    if queue.deduplication_scope not in ("messageGroup", "queue"):
        raise TopologyError("command_queue.deduplication_scope must be messageGroup or queue")
    if not 0 <= queue.visibility_timeout <= 43200:
        raise TopologyError("command_queue.visibility_timeout must be 0..43200 seconds")
    if dlq and not 1 <= queue.max_receive_count <= 1000:
        raise TopologyError("command_queue.dead_letter.max_receive_count must be 1..1000")
    et = _need(doc, "event_topic", "topology")
    topic_fifo = bool(et.get("fifo", True))
    topic = TopicSpec(
        _check_name(_need(et, "name", "event_topic"), topic_fifo, "event_topic"),
        topic_fifo,
        bool(et.get("content_based_deduplication", False)),
    )
    pq = _need(doc, "probe_queue", "topology")
    probe = _check_name(_need(pq, "name", "probe_queue"), topic_fifo, "probe_queue")
    kms = doc.get("kms") or {}
    return Topology(
        prefix,
        queue,
        topic,
        probe,
        bool(pq.get("raw_message_delivery", True)),
        bool(kms.get("key", True)),
        bool(kms.get("foreign_key", True)) and bool(kms.get("key", True)),
    )


def load(path: str | Path | None = None) -> Topology:
    source = Path(path) if path is not None else DEFAULT_TOPOLOGY
    try:
        doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TopologyError(f"{source}: {exc}") from exc
    return parse(doc)


@dataclass(slots=True)
class Provisioned:
    """What :func:`provision` created (names are the full, prefixed names)."""

    run_id: str
    topology: Topology
    command_queue_url: str = ""
    command_queue_name: str = ""
    dlq_url: str = ""
    dlq_name: str = ""
    topic_arn: str = ""
    topic_name: str = ""
    probe_queue_url: str = ""
    probe_queue_name: str = ""
    subscription_arn: str = ""
    kms_key_id: str = ""
    foreign_key_id: str = ""
    created: list[tuple[str, str]] = field(default_factory=list)

    def teardown(self, sqs: Any, sns: Any, kms: Any) -> list[str]:
        """Delete everything created, newest first; returns the errors (never raises)."""
        errors: list[str] = []
        for kind, ident in reversed(self.created):
            try:
                if kind == "queue":
                    sqs.delete_queue(QueueUrl=ident)
                elif kind == "topic":
                    sns.delete_topic(TopicArn=ident)
                elif kind == "subscription":
                    sns.unsubscribe(SubscriptionArn=ident)
                elif kind == "key":
                    kms.schedule_key_deletion(KeyId=ident, PendingWindowInDays=7)
            except Exception as exc:  # teardown must go on: report, never mask the verdict
                errors.append(f"{kind} {ident}: {exc}")
        self.created.clear()
        return errors


def _queue_attrs(spec: QueueSpec, fifo: bool, visibility: int | None = None) -> dict[str, str]:
    attrs = {"VisibilityTimeout": str(spec.visibility_timeout if visibility is None else visibility)}
    if fifo:
        attrs["FifoQueue"] = "true"
        attrs["ContentBasedDeduplication"] = "true" if spec.content_based_deduplication else "false"
    return attrs


@dataclass(frozen=True, slots=True)
class CommandQueue:
    """A provisioned command queue and its DLQ (empty strings when it has none)."""

    name: str
    url: str
    dlq_name: str = ""
    dlq_url: str = ""
    visibility_timeout: int = 30
    max_receive_count: int = 0
    #: the native ``RedrivePolicy``'s ``maxReceiveCount`` (0 = no DLQ)
    redrive_max_receive_count: int = 0


def add_command_queue(out: Provisioned, sqs: Any, spec: QueueSpec) -> CommandQueue:
    """Create ``spec`` (names prefixed ``<prefix>-<run id>-``) and its DLQ, with a ``RedrivePolicy``
    of ``spec.redrive_max_receive_count`` pointing at the DLQ, and register both in ``out.created`` so
    :meth:`Provisioned.teardown` deletes them. The DLQ keeps a 30 s visibility timeout. Used for the
    topology's command queue and for the gate's extra per-phase queues; raises on AWS errors
    (what was created before the error is already registered)."""
    base = f"{out.topology.prefix}-{out.run_id}-"
    dlq_name = dlq_url = ""
    attrs = _queue_attrs(spec, spec.fifo)
    if spec.dlq_name:
        dlq_name = base + spec.dlq_name
        dlq_url = sqs.create_queue(QueueName=dlq_name, Attributes=_queue_attrs(spec, spec.fifo, 30))[
            "QueueUrl"
        ]
        out.created.append(("queue", dlq_url))
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        attrs["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": spec.redrive_max_receive_count}
        )
    name = base + spec.name
    url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    out.created.append(("queue", url))
    return CommandQueue(
        name,
        url,
        dlq_name,
        dlq_url,
        spec.visibility_timeout,
        spec.max_receive_count,
        spec.redrive_max_receive_count if spec.dlq_name else 0,
    )


def provision(topology: Topology, run_id: str, sqs: Any, sns: Any, kms: Any) -> Provisioned:
    """Create the topology's resources under ``<prefix>-<run_id>-``; on failure deletes what it made."""
    base = f"{topology.prefix}-{run_id}-"
    out = Provisioned(run_id, topology)
    try:
        main = add_command_queue(out, sqs, topology.command_queue)
        out.command_queue_name, out.command_queue_url = main.name, main.url
        out.dlq_name, out.dlq_url = main.dlq_name, main.dlq_url
        t = topology.event_topic
        out.topic_name = base + t.name
        topic_attrs = (
            {"FifoTopic": "true", "ContentBasedDeduplication": str(t.content_based_deduplication).lower()}
            if t.fifo
            else {}
        )
        out.topic_arn = sns.create_topic(Name=out.topic_name, Attributes=topic_attrs)["TopicArn"]
        out.created.append(("topic", out.topic_arn))
        out.probe_queue_name = base + topology.probe_queue
        probe_attrs = {"VisibilityTimeout": "30"}
        if t.fifo:
            probe_attrs.update(FifoQueue="true", ContentBasedDeduplication="false")
        out.probe_queue_url = sqs.create_queue(QueueName=out.probe_queue_name, Attributes=probe_attrs)[
            "QueueUrl"
        ]
        out.created.append(("queue", out.probe_queue_url))
        probe_arn = sqs.get_queue_attributes(QueueUrl=out.probe_queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sub = sns.subscribe(
            TopicArn=out.topic_arn,
            Protocol="sqs",
            Endpoint=probe_arn,
            ReturnSubscriptionArn=True,
            Attributes={"RawMessageDelivery": str(topology.raw_message_delivery).lower()},
        )
        out.subscription_arn = sub["SubscriptionArn"]
        out.created.append(("subscription", out.subscription_arn))
        if topology.kms_key:
            out.kms_key_id = kms.create_key(Description=f"flowgate gate {run_id}")["KeyMetadata"]["KeyId"]
            out.created.append(("key", out.kms_key_id))
        if topology.foreign_key:
            out.foreign_key_id = kms.create_key(Description=f"flowgate gate {run_id} foreign")["KeyMetadata"][
                "KeyId"
            ]
            out.created.append(("key", out.foreign_key_id))
    except Exception:
        out.teardown(sqs, sns, kms)
        raise
    return out
