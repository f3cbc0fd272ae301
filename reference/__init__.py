"""flowgate's reference implementation of the SourceFlow-style AWS command/event bus.

Public API (see ``docs/reference.md``)::

    registry = TypeRegistry().commands(PlaceOrder).events(OrderPlaced)
    config = BusConfiguration(registry).send(PlaceOrder).to_queue("orders.fifo") ...
    resources = Bootstrapper(config, sqs=sqs, sns=sns, sts=sts).run()
    runtime = build_runtime(config, sqs=..., sns=..., sts=..., sagas=[...], views=[...])
    runtime.command_bus.publish(new_command(PlaceOrder(...), "order-1"))
    runtime.listeners[0].poll_once()
"""

from reference.bootstrap import Bootstrapper, Resources
from reference.bus import (
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
from reference.config import BusConfiguration, BusOptions, dlq_name
from reference.dispatchers import SnsEventDispatcher, SqsCommandDispatcher
from reference.dlq import replay_dead_letters
from reference.envelope import ENCRYPTION_MARKER, KmsEnvelopeCipher, MessageBinding
from reference.errors import (
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
from reference.health import HealthReport, check_health
from reference.iam import Role, role_policies
from reference.idempotency import Busy, Claimed, Duplicate, command_key, event_key
from reference.listener import SqsListener
from reference.messages import (
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
from reference.stores import InMemoryStorage, Storage
from reference.telemetry import Telemetry
from reference.worker import Runtime, build_runtime, main

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
