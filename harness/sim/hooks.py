"""The small hook surface the harness uses to watch and perturb the simulator.

Subclass :class:`SimTap` and override what you need; pass it as ``SimAws(..., tap=...)``.
Every method has a harmless default, so a tap that overrides nothing changes nothing.

* :meth:`SimTap.after_call` sees every API call (service, operation, parameters, the response
  or the ClientError) -- turn them into history operations or count them.
* :meth:`SimTap.duplicate_delivery` is asked once per message a *standard* queue hands out;
  returning ``True`` leaves a second, independent copy of that message visible (same MessageId,
  own receipt handles): the "delivered twice" of at-least-once delivery.
* :meth:`SimTap.delete_delay` is asked on each DeleteMessage (single or batch entry) that would
  remove a message; a positive number of seconds makes the delete succeed now but take effect
  that much later in virtual time (meanwhile the visibility timeout may expire and the message be
  delivered again).

Nothing here can lose an acknowledged send: there is deliberately no "drop" hook.
To *enumerate* what is in flight (for nemesis decisions), call :meth:`SimAws.in_flight`;
to force a lease to expire now, :meth:`SimAws.expire_visibility`; to duplicate a specific
message on demand, :meth:`SimAws.inject_duplicate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError


class SimTap:
    """Default tap: observes nothing, injects nothing."""

    def after_call(
        self,
        service: str,
        operation: str,
        params: Mapping[str, Any],
        response: Mapping[str, Any] | None,
        error: ClientError | None,
    ) -> None:
        return None

    def duplicate_delivery(self, queue_url: str, message_id: str) -> bool:
        return False

    def delete_delay(self, queue_url: str, message_id: str) -> float:
        return 0.0


@dataclass(frozen=True, slots=True)
class InFlight:
    """One received-but-not-deleted message, as seen by :meth:`SimAws.in_flight`."""

    queue_url: str
    message_id: str
    receipt_handle: str
    receive_count: int
    visible_at: float
    message_group_id: str | None
