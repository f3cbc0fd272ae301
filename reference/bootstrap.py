"""Provision (or adopt) the queues, DLQs, topics, subscriptions and queue policies of a configuration.

Idempotent on every start: existing resources are adopted and their mutable attributes
(visibility timeout, retention, redrive policy, queue policy) reconciled. A pre-existing FIFO
queue without ContentBasedDeduplication is accepted: the reference sends an explicit
MessageDeduplicationId (the message's eventId), so content-based dedup is not relied upon --
except by the SourceFlow interop emitter (``BusOptions.sourceflow_emit``), which sends none, as
SourceFlow.Net does: its sends to an adopted FIFO queue without it fail (``DispatchError``).
Queues we create get it (as SourceFlow's bootstrapper does; it also protects other producers).
A queue whose FIFO-ness contradicts its name is rejected (SQS cannot change it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowgate.reference.config import BusConfiguration, is_fifo
from flowgate.reference.errors import ConfigurationError, TransportError
from flowgate.reference.iam import queue_arn, topic_arn

log = logging.getLogger(__name__)
_MISSING_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
_POLICY_SID = "flowgate-sns-to-sqs"


@dataclass(frozen=True)
class Resources:
    """Resolved names: short name -> URL / ARN."""

    account: str
    region: str
    queue_urls: dict[str, str] = field(default_factory=dict)
    queue_arns: dict[str, str] = field(default_factory=dict)
    dlq_urls: dict[str, str] = field(default_factory=dict)
    dlq_arns: dict[str, str] = field(default_factory=dict)
    topic_arns: dict[str, str] = field(default_factory=dict)
    subscription_arns: dict[str, str] = field(default_factory=dict)

    def queue_name_of(self, url: str) -> str:
        for name, u in {**self.queue_urls, **self.dlq_urls}.items():
            if u == url:
                return name
        raise KeyError(url)


class Bootstrapper:
    """Creates/adopts everything ``config`` names, using only plain boto3 client calls."""

    def __init__(self, config: BusConfiguration, *, sqs: Any, sns: Any, sts: Any) -> None:
        self.config = config
        self.sqs = sqs
        self.sns = sns
        self.sts = sts

    def run(self) -> Resources:
        self.config.validate()
        try:
            account = str(self.sts.get_caller_identity()["Account"])
            res = Resources(account=account, region=self.config.options.region)
            for queue in self.config.queues():
                dlq = self.config.dlq_for(queue)
                res.dlq_urls[queue], res.dlq_arns[queue] = self._ensure_queue(dlq, redrive_to=None)
                res.queue_urls[queue], res.queue_arns[queue] = self._ensure_queue(
                    queue, redrive_to=res.dlq_arns[queue]
                )
            for topic in self.config.topics():
                res.topic_arns[topic] = self._ensure_topic(topic, account)
            for queue, topics in self.config.subscriptions.items():
                for topic in topics:
                    resp = self.sns.subscribe(
                        TopicArn=res.topic_arns[topic],
                        Protocol="sqs",
                        Endpoint=res.queue_arns[queue],
                        Attributes={"RawMessageDelivery": "true"},
                        ReturnSubscriptionArn=True,
                    )
                    res.subscription_arns[f"{topic}->{queue}"] = resp["SubscriptionArn"]
                self._allow_topics(
                    res.queue_urls[queue], res.queue_arns[queue], [res.topic_arns[t] for t in topics]
                )
            return res
        except ClientError as exc:
            raise TransportError(f"bootstrap failed: {exc}") from exc
        except BotoCoreError as exc:
            raise TransportError(f"bootstrap failed: {exc}") from exc

    def resolve(self) -> Resources:
        """Look up, never create or change, what a runtime process of ``config`` uses.

        The runtime roles of :mod:`flowgate.reference.iam` hold no provisioning right, so a worker or
        producer run with ``--no-bootstrap`` calls this instead of :meth:`run`: one
        ``sts:GetCallerIdentity``, then ``sqs:GetQueueUrl`` for every queue it sends to, listens to
        or is subscribed with, and for the DLQs of the queues it consumes; ARNs are derived from
        account, region and name (no call). A missing queue is a :class:`ConfigurationError`
        (run the bootstrapper first)."""
        self.config.validate()
        try:
            account = str(self.sts.get_caller_identity()["Account"])
            region = self.config.options.region
            res = Resources(account=account, region=region)
            for queue in self.config.queues():
                res.queue_urls[queue] = self._existing_queue_url(queue)
                res.queue_arns[queue] = queue_arn(region, account, queue)
            for queue in [*self.config.command_queues, *self.config.subscriptions]:
                dlq = self.config.dlq_for(queue)
                res.dlq_urls[queue] = self._existing_queue_url(dlq)
                res.dlq_arns[queue] = queue_arn(region, account, dlq)
            for topic in self.config.topics():
                res.topic_arns[topic] = topic_arn(region, account, topic)
            return res
        except ClientError as exc:
            raise TransportError(f"resolving resources failed: {exc}") from exc
        except BotoCoreError as exc:
            raise TransportError(f"resolving resources failed: {exc}") from exc

    def _existing_queue_url(self, name: str) -> str:
        url = self._queue_url(name)
        if url is None:
            raise ConfigurationError(f"queue {name!r} does not exist: run the bootstrapper first")
        return url

    def _queue_attributes(self, name: str, redrive_to: str | None) -> dict[str, str]:
        o = self.config.options
        attrs = {
            "VisibilityTimeout": str(o.visibility_timeout),
            "MessageRetentionPeriod": str(self.config.retention_for(name)),
        }
        if is_fifo(name):
            attrs.update(FifoQueue="true", ContentBasedDeduplication="true")
        if redrive_to is not None:
            attrs["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": redrive_to, "maxReceiveCount": str(o.redrive_receive_count)}
            )
        return attrs

    def _ensure_queue(self, name: str, *, redrive_to: str | None) -> tuple[str, str]:
        wanted = self._queue_attributes(name, redrive_to)
        url = self._queue_url(name)
        if url is None:
            try:
                url = self.sqs.create_queue(QueueName=name, Attributes=wanted)["QueueUrl"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("QueueAlreadyExists", "QueueNameExists"):
                    raise
                url = self._queue_url(name)  # created concurrently with other attributes: adopt it
                assert url is not None
        current = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        if (current.get("FifoQueue") == "true") != is_fifo(name):
            raise ConfigurationError(f"queue {name!r} exists with FifoQueue={current.get('FifoQueue')}")
        if is_fifo(name) and current.get("ContentBasedDeduplication") != "true":
            log.info("adopting FIFO queue %s without content-based dedup (explicit dedup ids are sent)", name)
        changes = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod"):
            if current.get(key) != wanted[key]:
                changes[key] = wanted[key]
        if "RedrivePolicy" in wanted:
            have = json.loads(current.get("RedrivePolicy") or "{}")
            want = json.loads(wanted["RedrivePolicy"])
            if (
                have.get("deadLetterTargetArn") != want["deadLetterTargetArn"]
                or str(have.get("maxReceiveCount")) != want["maxReceiveCount"]
            ):
                changes["RedrivePolicy"] = wanted["RedrivePolicy"]
        if changes:
            self.sqs.set_queue_attributes(QueueUrl=url, Attributes=changes)
        return url, str(current["QueueArn"])

    def _queue_url(self, name: str) -> str | None:
        try:
            return str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_QUEUE:
                return None
            raise

    def _ensure_topic(self, name: str, account: str) -> str:
        attrs = {"FifoTopic": "true", "ContentBasedDeduplication": "true"} if is_fifo(name) else {}
        try:
            return str(self.sns.create_topic(Name=name, Attributes=attrs)["TopicArn"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidParameter":
                raise
            # exists with other attributes (e.g. no content-based dedup): adopt after checking FIFO-ness
            arn = f"arn:aws:sns:{self.config.options.region}:{account}:{name}"
            current = self.sns.get_topic_attributes(TopicArn=arn)["Attributes"]
            if (current.get("FifoTopic") == "true") != is_fifo(name):
                raise ConfigurationError(
                    f"topic {name!r} exists with FifoTopic={current.get('FifoTopic')}"
                ) from exc
            return arn

    def _allow_topics(self, url: str, queue_arn: str, topic_arns: list[str]) -> None:
        current = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {})
        policy = json.loads(current.get("Policy") or '{"Version": "2012-10-17", "Statement": []}')
        others = [s for s in policy.get("Statement", []) if s.get("Sid") != _POLICY_SID]
        ours = {
            "Sid": _POLICY_SID,
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": sorted(topic_arns)}},
        }
        if ours in others or any(s == ours for s in policy.get("Statement", [])):
            return
        policy["Statement"] = [*others, ours]
        self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
