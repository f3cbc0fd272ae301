"""A deterministic, in-process model of the SQS, SNS, KMS and STS calls a message bus uses.

    sim = SimAws(seed=7)
    sqs = sim.client("sqs")          # boto3 method names, PascalCase keywords, boto3 response dicts
    url = sqs.create_queue(QueueName="orders.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    sim.clock.advance(301)           # virtual time; nothing reads the wall clock

Determinism rule: one ``random.Random(seed)`` inside :class:`SimAws` makes every
nondeterministic choice (message ids, receipt handles, KMS keys and nonces, data keys, standard
queue reordering, lost deletes). The same seed and the same sequence of calls give identical
results. There are no threads, no wall clock and no module-level mutable state (botocore's
exception classes are loaded once per process and are read-only). Not thread-safe: drive it from
one thread. See ``docs/simulator.md`` for the modelled behaviour and the divergences.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal, overload

from ._core import SimCore
from .clients import KmsClient, SnsClient, SqsClient, StsClient
from .clock import VirtualClock
from .errors import SimError
from .hooks import InFlight, SimTap
from .kms import KmsBackend
from .sns import SnsBackend
from .sqs import SqsBackend

__all__ = [
    "InFlight",
    "KmsClient",
    "SimAws",
    "SimError",
    "SimTap",
    "SnsClient",
    "SqsClient",
    "StsClient",
    "VirtualClock",
]


class SimAws:
    """One simulated AWS account in one region, with its own clock and RNG."""

    def __init__(
        self,
        seed: int,
        clock: VirtualClock | None = None,
        *,
        region: str = "us-east-1",
        account: str = "000000000000",
        redelivery_probability: float = 0.0,
        reorder: bool = False,
        tap: SimTap | None = None,
    ) -> None:
        if not 0.0 <= redelivery_probability <= 1.0:
            raise ValueError(f"redelivery_probability must be within [0, 1], got {redelivery_probability!r}")
        if len(account) != 12 or not account.isdigit():
            raise ValueError(f"account must be 12 digits, got {account!r}")
        self.clock = clock if clock is not None else VirtualClock()
        self._core = SimCore(
            seed=seed,
            clock=self.clock,
            region=region,
            account=account,
            tap=tap if tap is not None else SimTap(),
            redelivery_probability=redelivery_probability,
            reorder=reorder,
        )
        self.sqs_backend = SqsBackend(self._core)
        self.sns_backend = SnsBackend(self._core, self.sqs_backend)
        self.kms_backend = KmsBackend(self._core)

    def __repr__(self) -> str:
        core = self._core
        return (
            f"SimAws(seed={core.seed!r}, clock={self.clock!r}, region={core.region!r}, "
            f"redelivery_probability={core.redelivery_probability!r}, reorder={core.reorder!r})"
        )

    @property
    def seed(self) -> int:
        return self._core.seed

    @property
    def region(self) -> str:
        return self._core.region

    @property
    def account(self) -> str:
        return self._core.account

    @property
    def calls(self) -> Counter[tuple[str, str]]:
        """API calls made so far, keyed by (service, OperationName)."""
        return self._core.calls

    @overload
    def client(self, service_name: Literal["sqs"], **_: object) -> SqsClient: ...
    @overload
    def client(self, service_name: Literal["sns"], **_: object) -> SnsClient: ...
    @overload
    def client(self, service_name: Literal["kms"], **_: object) -> KmsClient: ...
    @overload
    def client(self, service_name: Literal["sts"], **_: object) -> StsClient: ...
    def client(self, service_name: str, **_: object) -> SqsClient | SnsClient | KmsClient | StsClient:
        """A boto3-shaped client; extra keywords (region_name, endpoint_url...) are ignored."""
        if service_name == "sqs":
            return SqsClient(self._core, self.sqs_backend)
        if service_name == "sns":
            return SnsClient(self._core, self.sqs_backend, self.sns_backend)
        if service_name == "kms":
            return KmsClient(self._core, self.sqs_backend, self.kms_backend)
        if service_name == "sts":
            return StsClient(self._core, self.sqs_backend)
        raise ValueError(f"the simulator does not model {service_name!r} (only sqs, sns, kms, sts)")

    # ---------------------------------------------------------------- nemesis surface
    def set_unreachable(self, service: str, unreachable: bool = True) -> None:
        """Cut (or restore) the endpoint of ``service`` (sqs, sns, kms, sts): every call of every
        client of that service, except clients with ``outage_exempt`` set (the harness's own),
        raises botocore's ``EndpointConnectionError`` without reaching the backend (no state
        change, no tap call; the attempt is still counted in :attr:`calls`)."""
        if service not in ("sqs", "sns", "kms", "sts"):
            raise ValueError(f"unknown service {service!r}")
        if unreachable:
            self._core.unreachable.add(service)
        else:
            self._core.unreachable.discard(service)

    @property
    def unreachable(self) -> frozenset[str]:
        return frozenset(self._core.unreachable)

    def in_flight(self, queue_url: str | None = None) -> list[InFlight]:
        """Messages received and not yet deleted whose visibility timeout has not run out."""
        self.sqs_backend.tick()
        queue = self.sqs_backend.resolve_url(queue_url) if queue_url is not None else None
        return self.sqs_backend.in_flight(queue)

    def left_in(self, queue_url: str) -> list[dict[str, Any]]:
        """Every message still in the queue (visible, in flight, delayed): id, state, receive
        count, visible-at time and ``EventId`` attribute (the drain's ``unresolved`` list)."""
        self.sqs_backend.tick()
        return self.sqs_backend.left_in(self.sqs_backend.resolve_url(queue_url))

    def expire_visibility(self, queue_url: str, message_id: str) -> bool:
        """End the visibility timeout of an in-flight message now; True if one was in flight."""
        self.sqs_backend.tick()
        return self.sqs_backend.expire_visibility(self.sqs_backend.resolve_url(queue_url), message_id)

    def inject_duplicate(self, queue_url: str, message_id: str) -> bool:
        """Leave a second visible copy of a standard-queue message; True if the message exists."""
        self.sqs_backend.tick()
        queue = self.sqs_backend.resolve_url(queue_url)
        for message in list(queue.messages.values()):
            if message.message_id == message_id:
                self.sqs_backend.inject_duplicate(queue, message)
                return True
        return False
