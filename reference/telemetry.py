"""OpenTelemetry metrics and spans with SourceFlow's names (doc 000 "Observability").

Only the OpenTelemetry *API* is used: without an SDK configured everything is a no-op. The
correlation id travels end to end in ``metadata.correlationId`` and the ``CorrelationId``
attribute (commands -> events -> views), and W3C ``traceparent`` rides along as an attribute
so a consumer's processing span continues the producer's trace.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

SOURCE = "SourceFlow.Cloud.AWS"
_PROPAGATOR = TraceContextTextMapPropagator()


class Telemetry:
    """Counters/histograms named as in the seeds; one instance per process is enough."""

    def __init__(self, meter_provider: Any = None, tracer_provider: Any = None) -> None:
        meter = metrics.get_meter(SOURCE, meter_provider=meter_provider)
        self.tracer = trace.get_tracer(SOURCE, tracer_provider=tracer_provider)
        self.command_dispatched = meter.create_counter("sourceflow.aws.command.dispatched")
        self.command_dispatch_duration = meter.create_histogram(
            "sourceflow.aws.command.dispatch_duration", unit="ms"
        )
        self.command_dispatch_error = meter.create_counter("sourceflow.aws.command.dispatch_error")
        self.event_published = meter.create_counter("sourceflow.aws.event.published")
        self.event_publish_duration = meter.create_histogram(
            "sourceflow.aws.event.publish_duration", unit="ms"
        )
        self.event_publish_error = meter.create_counter("sourceflow.aws.event.publish_error")
        self.message_received = meter.create_counter("sourceflow.aws.message.received")
        self.message_processed = meter.create_counter("sourceflow.aws.message.processed")
        self.message_processing_duration = meter.create_histogram(
            "sourceflow.aws.message.processing_duration", unit="ms"
        )
        self.message_processing_error = meter.create_counter("sourceflow.aws.message.processing_error")
        #: a listener's circuit breaker opened or closed (attributes: queue, state, dependency)
        self.breaker_transition = meter.create_counter("sourceflow.aws.listener.breaker_transition")

    @contextmanager
    def span(self, name: str, attributes: Mapping[str, str], traceparent: str | None = None) -> Iterator[Any]:
        """A span continuing ``traceparent`` when given (consumer side)."""
        ctx = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
        with self.tracer.start_as_current_span(name, context=ctx, attributes=dict(attributes)) as span:
            yield span

    @staticmethod
    def current_traceparent() -> str | None:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get("traceparent")


NOOP = Telemetry()
