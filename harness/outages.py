"""The outage nemesis: a dependency of the workers goes down for a while, then comes back.

Kinds (:data:`flowgate.harness.faults.OUTAGE_KINDS`) and what each does on the simulator:

* ``store`` -- every worker's idempotency/entity store raises
  :class:`~flowgate.reference.errors.StoreUnavailable` on every call, :meth:`ping` included
  (:class:`SwitchableStorage`);
* ``kms_disabled`` -- DisableKey on the bus key, EnableKey at the end (Decrypt and
  GenerateDataKey answer ``DisabledException``);
* ``kms_unreachable`` / ``sqs_unreachable`` / ``sns_unreachable`` -- the service's endpoint is cut
  (:meth:`flowgate.harness.sim.SimAws.set_unreachable`: botocore ``EndpointConnectionError``).

The history records a ``nemesis`` ``outage`` op of type ``invoke`` when it starts (value: ``kind``,
``dependency``, ``workers``, ``queues`` it affects, ``seconds``) and one of type ``ok`` when it
ends (plus ``receive_calls``: ReceiveMessage attempts of the workers meanwhile), and harness
``health`` ops: each worker's :meth:`flowgate.reference.worker.Runtime.health` just before the outage
ends (``phase`` = ``during``) and after the run drained (``phase`` = ``after``).

The checker of those ops is :func:`flowgate.harness.checkers.outage.outage`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from flowgate.reference.errors import StoreUnavailable
from flowgate.reference.idempotency import ClaimResult
from flowgate.reference.messages import Command, TypeRegistry
from flowgate.reference.stores import DeadLetter, Effect, InMemoryStorage, State

#: outage kind -> the dependency a worker's breaker names
DEPENDENCY: Final = {
    "store": "store",
    "kms_disabled": "kms",
    "kms_unreachable": "kms",
    "sqs_unreachable": "sqs",
    "sns_unreachable": "sns",
}


class SwitchableStorage(InMemoryStorage):
    """:class:`InMemoryStorage` that is down (every call raises :class:`StoreUnavailable`, nothing
    changes) while ``down()`` is true."""

    def __init__(self, registry: TypeRegistry, down: Callable[[], bool]) -> None:
        super().__init__(registry)
        self._down = down

    def _gate(self) -> None:
        if self._down():
            raise StoreUnavailable("store unavailable (simulated outage)")

    def ping(self) -> None:
        self._gate()

    def load_commands(self, entity_id: str) -> list[Command]:
        self._gate()
        return super().load_commands(entity_id)

    def last_sequence(self, entity_id: str) -> int:
        self._gate()
        return super().last_sequence(entity_id)

    def allocate_sequence(self, entity_id: str) -> int:
        self._gate()
        return super().allocate_sequence(entity_id)

    def record_publish(self, command: Command) -> Command:
        self._gate()
        return super().record_publish(command)

    def unsent_commands(self, entity_id: str | None = None) -> list[Command]:
        self._gate()
        return super().unsent_commands(entity_id)

    def mark_sent(self, entity_id: str, sequence_no: int) -> None:
        self._gate()
        super().mark_sent(entity_id, sequence_no)

    def get_entity(self, kind: str, entity_id: str) -> State | None:
        self._gate()
        return super().get_entity(kind, entity_id)

    def get_view(self, view: str, row_id: str) -> State | None:
        self._gate()
        return super().get_view(view, row_id)

    def list_view(self, view: str) -> dict[str, State]:
        self._gate()
        return super().list_view(view)

    def dead_letters(self) -> list[DeadLetter]:
        self._gate()
        return super().dead_letters()

    def claim(
        self, key: str, *, now: float, lease_until: float, message_type: str, digest: str | None = None
    ) -> ClaimResult:
        self._gate()
        return super().claim(key, now=now, lease_until=lease_until, message_type=message_type, digest=digest)

    def extend(self, key: str, token: int, lease_until: float) -> bool:
        self._gate()
        return super().extend(key, token, lease_until)

    def release(self, key: str, token: int) -> None:
        self._gate()
        super().release(key, token)

    def cleanup(self, now: float, *, abandoned_after: float, limit: int | None = None) -> int:
        self._gate()
        return super().cleanup(now, abandoned_after=abandoned_after, limit=limit)

    def commit(self, effect: Effect) -> tuple[Command, ...]:
        self._gate()
        return super().commit(effect)


__all__ = ["DEPENDENCY", "SwitchableStorage"]
