"""flowgate's reference implementation of the SourceFlow-style AWS command/event bus.

Public API (see ``docs/reference.md``)::

    registry = TypeRegistry().commands(PlaceOrder).events(OrderPlaced)
    config = BusConfiguration(registry).send(PlaceOrder).to_queue("orders.fifo") ...
    resources = Bootstrapper(config, sqs=sqs, sns=sns, sts=sts).run()
    runtime = build_runtime(config, sqs=..., sns=..., sts=..., sagas=[...], views=[...])
    runtime.command_bus.publish(new_command(PlaceOrder(...), "order-1"))
    runtime.listeners[0].poll_once()
"""

from flowgate.reference.bootstrap import Bootstrapper, Resources
from flowgate.reference.bus import (
    CommandBus,
    EventQueue,
    InMemorySequencer,
    LocalCommandDispatcher,
    LocalEventDispatcher,
    Processor,
    ReplayResult,
    StoreSequencer,
    rebuild_views,
)
from flowgate.reference.config import BusConfiguration, BusOptions, dlq_name
from flowgate.reference.dispatchers import SnsEventDispatcher, SqsCommandDispatcher
from flowgate.reference.dlq import replay_dead_letters
from flowgate.reference.envelope import ENCRYPTION_MARKER, KmsEnvelopeCipher, MessageBinding
from flowgate.reference.errors import (
    BusinessError,
    ConfigurationError,
    DecodeError,
    DecryptionError,
    DispatchError,
    FlowgateError,
    InvalidTransition,
    LeaseLost,
    MessageError,
    StoreError,
    TransportError,
    UnknownMessageType,
    WriteConflict,
)
from flowgate.reference.health import HealthReport, check_health
from flowgate.reference.iam import Role, role_policies
from flowgate.reference.idempotency import Busy, Claimed, Duplicate, command_key, event_key
from flowgate.reference.listener import SqsListener
from flowgate.reference.messages import (
    Command,
    EntityRef,
    Event,
    Metadata,
    Payload,
    TypeRegistry,
    decode,
    encode,
    new_command,
)
from flowgate.reference.stores import InMemoryStorage, Storage
from flowgate.reference.telemetry import Telemetry
from flowgate.reference.worker import Runtime, build_runtime, main

__all__ = [
    "ENCRYPTION_MARKER",
    "Bootstrapper",
    "BusConfiguration",
    "BusOptions",
    "BusinessError",
    "Busy",
    "Claimed",
    "Command",
    "CommandBus",
    "ConfigurationError",
    "DecodeError",
    "DecryptionError",
    "DispatchError",
    "Duplicate",
    "EntityRef",
    "Event",
    "EventQueue",
    "FlowgateError",
    "HealthReport",
    "InMemorySequencer",
    "InMemoryStorage",
    "InvalidTransition",
    "KmsEnvelopeCipher",
    "LeaseLost",
    "LocalCommandDispatcher",
    "LocalEventDispatcher",
    "MessageBinding",
    "MessageError",
    "Metadata",
    "Payload",
    "Processor",
    "ReplayResult",
    "Resources",
    "Role",
    "Runtime",
    "SnsEventDispatcher",
    "SqsCommandDispatcher",
    "SqsListener",
    "Storage",
    "StoreError",
    "StoreSequencer",
    "Telemetry",
    "TransportError",
    "TypeRegistry",
    "UnknownMessageType",
    "WriteConflict",
    "build_runtime",
    "check_health",
    "command_key",
    "decode",
    "dlq_name",
    "encode",
    "event_key",
    "main",
    "new_command",
    "rebuild_views",
    "replay_dead_letters",
    "role_policies",
]
