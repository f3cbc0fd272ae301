"""OpenTelemetry metrics and spans with SourceFlow's names (doc 000 "Observability").

Only the OpenTelemetry *API* is used: without an SDK configured everything is a no-op (a
process without an SDK still forwards an incoming ``traceparent`` unchanged: its non-recording
spans carry the parent's context). Tests hand an SDK ``TracerProvider``/``MeterProvider`` to
:class:`Telemetry` (``tests`` group: ``opentelemetry-sdk``, in-memory exporter and reader).

Spans (tracer ``SourceFlow.Cloud.AWS``), one per message and hop:

* :data:`COMMAND_DISPATCH_SPAN` ``AwsSqsCommandDispatcher.Dispatch`` (kind PRODUCER): one command
  sent to SQS; child of the caller's current span (the client's), or of the processing span
  whose outbox it is.
* :data:`EVENT_DISPATCH_SPAN` ``AwsSnsEventDispatcher.Dispatch`` (PRODUCER): one event published to
  SNS; child of the ``ProcessMessage`` span of the command that raised it (the listener publishes
  outboxes after that span ended, batched over its poll, and passes the span's context along).
* :data:`PROCESS_SPAN` ``AwsSqsCommandListener.ProcessMessage`` (CONSUMER): one received message
  (command or event) up to its commit; child of the producer span named by the message's
  ``traceparent`` attribute, a new trace when it has none.

Propagation: W3C trace context. Every producer span's context rides on the wire as the
``traceparent`` String message attribute (contract, optional attribute); a consumer continues it.
So one order's command -> saga -> event -> view update is ONE trace: client span ->
command Dispatch -> ProcessMessage (command queue) -> event Dispatch -> ProcessMessage (view
queue). The correlation id travels independently in ``metadata.correlationId`` and the
``CorrelationId`` attribute (commands -> events -> views); every span carries it as
:data:`CORRELATION_ATTRIBUTE` (``messaging.message.conversation_id``, the semantic-conventions
name for a correlation id).

Metrics (meter ``SourceFlow.Cloud.AWS``): :data:`SEED_METRICS` -- the ten names of doc 000,
attributes ``destination``/``type`` (dispatch) and ``queue``/``type`` (processing) -- plus
``sourceflow.aws.listener.breaker_transition``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

SOURCE = "SourceFlow.Cloud.AWS"
COMMAND_DISPATCH_SPAN = "AwsSqsCommandDispatcher.Dispatch"
EVENT_DISPATCH_SPAN = "AwsSnsEventDispatcher.Dispatch"
PROCESS_SPAN = "AwsSqsCommandListener.ProcessMessage"
#: the message attribute carrying the W3C trace context (contract sections 2 and 3)
TRACEPARENT = "traceparent"
#: span attribute holding the message's correlation id (OpenTelemetry semantic conventions)
CORRELATION_ATTRIBUTE = "messaging.message.conversation_id"
#: the metric names of doc 000 ("Observability"), all emitted by the reference
SEED_METRICS = (
    "sourceflow.aws.command.dispatched",
    "sourceflow.aws.command.dispatch_duration",
    "sourceflow.aws.command.dispatch_error",
    "sourceflow.aws.event.published",
    "sourceflow.aws.event.publish_duration",
    "sourceflow.aws.event.publish_error",
    "sourceflow.aws.message.received",
    "sourceflow.aws.message.processed",
    "sourceflow.aws.message.processing_duration",
    "sourceflow.aws.message.processing_error",
)
_PROPAGATOR = TraceContextTextMapPropagator()

#: a span's parent: an OpenTelemetry context (``None``: the caller's current context)
ParentContext = otel_context.Context


class Telemetry:
    """Counters/histograms and spans named as in the seeds; one instance per process is enough."""

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

    # -- producer side -----------------------------------------------------------------------
    def start_producer_span(
        self, name: str, attributes: Mapping[str, str | int], parent: ParentContext | None = None
    ) -> Span:
        """Start (not end, not make current) a PRODUCER span: child of ``parent``, else of the
        caller's current span. The dispatcher ends it with :meth:`end_span` once the send's
        outcome is known (batched sends end after their batch call)."""
        return self.tracer.start_span(
            name, context=parent, kind=SpanKind.PRODUCER, attributes=dict(attributes)
        )

    @staticmethod
    def traceparent_of(span: Span) -> str | None:
        """The W3C ``traceparent`` naming ``span`` (None for an invalid, i.e. absent, context)."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        return carrier.get(TRACEPARENT)

    @staticmethod
    def end_span(span: Span, error: BaseException | None = None) -> None:
        """End ``span``; with ``error`` its status is ERROR and the exception recorded."""
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()

    # -- consumer side -----------------------------------------------------------------------
    @contextmanager
    def consumer_span(
        self, name: str, attributes: Mapping[str, str | int], traceparent: str | None = None
    ) -> Iterator[Span]:
        """A CONSUMER span (current while the block runs) continuing ``traceparent`` when given;
        a new trace otherwise (also for an unparsable value: the propagator ignores it)."""
        ctx = _PROPAGATOR.extract({TRACEPARENT: traceparent}) if traceparent else None
        with self.tracer.start_as_current_span(
            name, context=ctx, kind=SpanKind.CONSUMER, attributes=dict(attributes)
        ) as span:
            yield span

    @staticmethod
    def context_of(span: Span) -> ParentContext:
        """A context whose current span is ``span``: the parent of the spans of what it caused
        (the outbox events a listener publishes after the processing span ended)."""
        return trace.set_span_in_context(span)

    @staticmethod
    def current_traceparent() -> str | None:
        """The W3C ``traceparent`` of the caller's current span (None when there is none)."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get(TRACEPARENT)


NOOP = Telemetry()
