"""Health check: SQS/SNS (and KMS when encryption is on) reachable, every queue, DLQ and topic exists."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from reference.bootstrap import Resources
from reference.config import BusConfiguration


@dataclass(frozen=True)
class HealthReport:
    """``checks`` maps a check name to ``"ok"`` or the error text."""

    checks: dict[str, str] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return all(v == "ok" for v in self.checks.values())


def check_health(
    config: BusConfiguration, resources: Resources, *, sqs: Any, sns: Any, kms: Any = None
) -> HealthReport:
    """Run every check (never raises for AWS errors; they become failed checks)."""
    report = HealthReport()

    def run(name: str, call: Any, **kwargs: Any) -> None:
        try:
            call(**kwargs)
            report.checks[name] = "ok"
        except (ClientError, BotoCoreError, KeyError) as exc:
            report.checks[name] = f"{type(exc).__name__}: {exc}"

    for queue in config.queues():
        run(
            f"sqs:{queue}",
            sqs.get_queue_attributes,
            QueueUrl=resources.queue_urls.get(queue, queue),
            AttributeNames=["QueueArn"],
        )
        run(
            f"sqs:{queue}:dlq",
            sqs.get_queue_attributes,
            QueueUrl=resources.dlq_urls.get(queue, queue),
            AttributeNames=["QueueArn"],
        )
    for topic in config.topics():
        run(f"sns:{topic}", sns.get_topic_attributes, TopicArn=resources.topic_arns.get(topic, topic))
    if config.kms_key_id:
        if kms is None:
            report.checks["kms"] = "encryption configured but no KMS client given"
        else:
            run("kms", kms.describe_key, KeyId=config.kms_key_id)
    return report
