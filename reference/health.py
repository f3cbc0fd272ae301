"""Health: SQS/SNS (and KMS when encryption is on) reachable, every queue, DLQ and topic exists,
and every listener's circuit breaker closed.

:func:`check_health` makes the AWS calls; :func:`listener_health` only reads the breakers (no
call, cheap enough to sample every second). A breaker that is open reports its check as
``degraded: <dependency>: <last error>`` and the report's :attr:`HealthReport.status` is
``degraded`` (naming the dependencies in :attr:`HealthReport.degraded`) until the breaker's probe
answers and it closes; then ``ok`` again.

Failure detection (:mod:`flowgate.reference.monitoring`, ``docs/operating.md``): the report also carries
``metrics``. :func:`listener_health` adds ``metrics["consumers"]``, one
:meth:`~flowgate.reference.monitoring.ConsumerGauge.snapshot` per listener (latest receive, SentTimestamp
of the oldest message held, effects and events raised); :func:`check_health` adds
``metrics["queues"][queue]`` = ``{"visible", "in_flight", "delayed", "backlog", "dlq_depth"}``
from the same ``GetQueueAttributes`` calls that check the queues exist; :func:`alarm_health` adds
a monitor's alarms (``alarms``: state, rule, times fired and cleared). Metrics and alarms never
change :attr:`HealthReport.status` (that is about reachability): alarms are read from ``alarms``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from flowgate.reference.bootstrap import Resources
from flowgate.reference.breaker import BreakerStatus
from flowgate.reference.config import BusConfiguration
from flowgate.reference.monitoring import DEPTH_ATTRIBUTES, ConsumerGauge, depth_from_attributes

DEGRADED = "degraded"


class HasBreaker(Protocol):
    """A listener (anything with a queue name and a breaker status)."""

    queue: str

    def health(self) -> BreakerStatus: ...


@dataclass(frozen=True)
class HealthReport:
    """``checks`` maps a check name to ``"ok"`` or the error text."""

    checks: dict[str, str] = field(default_factory=dict)
    #: failure-detection numbers (module docstring): ``consumers``, ``queues``
    metrics: dict[str, Any] = field(default_factory=dict)
    #: a monitor's alarms (:func:`alarm_health`), by alarm name
    alarms: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return all(v == "ok" for v in self.checks.values())

    @property
    def degraded(self) -> list[str]:
        """The dependencies named by open breakers (sorted, each once)."""
        return sorted({v.split(":")[1].strip() for v in self.checks.values() if v.startswith(f"{DEGRADED}:")})

    @property
    def status(self) -> str:
        """``ok``, ``degraded`` (a breaker is open) or ``unhealthy`` (an AWS check failed)."""
        if self.healthy:
            return "ok"
        if all(v == "ok" or v.startswith(f"{DEGRADED}:") for v in self.checks.values()):
            return DEGRADED
        return "unhealthy"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "degraded": self.degraded, "checks": dict(self.checks)}
        if self.metrics:
            out["metrics"] = self.metrics
        if self.alarms:
            out["alarms"] = self.alarms
        return out


def listener_health(listeners: Iterable[HasBreaker], report: HealthReport | None = None) -> HealthReport:
    """Add one ``breaker:<queue>`` check per listener to ``report`` (a new one by default), and
    the snapshot of each listener's gauge that has one to ``metrics["consumers"]``."""
    report = report if report is not None else HealthReport()
    for listener in listeners:
        st = listener.health()
        report.checks[f"breaker:{listener.queue}"] = (
            "ok" if st.dependency is None else f"{DEGRADED}: {st.dependency}: {st.error}"
        )
        gauge = getattr(listener, "gauge", None)
        if isinstance(gauge, ConsumerGauge):
            report.metrics.setdefault("consumers", []).append(gauge.snapshot())
    return report


def alarm_health(monitor_report: dict[str, Any], report: HealthReport | None = None) -> HealthReport:
    """Add a :meth:`flowgate.reference.monitoring.Monitor.report` (its alarms and latest datapoint)."""
    report = report if report is not None else HealthReport()
    report.alarms.update(monitor_report.get("alarms", {}))
    report.metrics.setdefault("monitor", {})[monitor_report.get("queue", "")] = monitor_report.get(
        "metrics", {}
    )
    return report


def check_health(
    config: BusConfiguration,
    resources: Resources,
    *,
    sqs: Any,
    sns: Any,
    kms: Any = None,
    listeners: Iterable[HasBreaker] = (),
) -> HealthReport:
    """Run every check (never raises for AWS errors; they become failed checks), then add the
    breakers of ``listeners`` (:func:`listener_health`)."""
    report = listener_health(listeners)

    def run(name: str, call: Any, **kwargs: Any) -> Any:
        try:
            out = call(**kwargs)
            report.checks[name] = "ok"
            return out
        except (ClientError, BotoCoreError, KeyError) as exc:
            report.checks[name] = f"{type(exc).__name__}: {exc}"
            return None

    depth_names = ["QueueArn", *DEPTH_ATTRIBUTES]
    for queue in config.queues():
        main = run(
            f"sqs:{queue}",
            sqs.get_queue_attributes,
            QueueUrl=resources.queue_urls.get(queue, queue),
            AttributeNames=depth_names,
        )
        dlq = run(
            f"sqs:{queue}:dlq",
            sqs.get_queue_attributes,
            QueueUrl=resources.dlq_urls.get(queue, queue),
            AttributeNames=depth_names,
        )
        if main is not None:
            depth = depth_from_attributes(main.get("Attributes", {}))
            entry = {
                "visible": depth.visible,
                "in_flight": depth.in_flight,
                "delayed": depth.delayed,
                "backlog": depth.total,
            }
            if dlq is not None:
                entry["dlq_depth"] = depth_from_attributes(dlq.get("Attributes", {})).total
            report.metrics.setdefault("queues", {})[queue] = entry
    for topic in config.topics():
        run(f"sns:{topic}", sns.get_topic_attributes, TopicArn=resources.topic_arns.get(topic, topic))
    if config.kms_key_id:
        if kms is None:
            report.checks["kms"] = "encryption configured but no KMS client given"
        else:
            run("kms", kms.describe_key, KeyId=config.kms_key_id)
    return report
