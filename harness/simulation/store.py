"""The simulator's store: the in-memory store with its outage switch and the nemesis's hook."""

from __future__ import annotations

from flowgate.harness.outages import SwitchableStorage


class SimStorage(SwitchableStorage):
    """:class:`flowgate.harness.outages.SwitchableStorage` (an :class:`~flowgate.reference.stores.InMemoryStorage`
    that is down while the ``store`` outage is on) with the one fault the nemesis does to the
    store's state itself, as a method of the store rather than a reach into its records."""

    def expire_lease(self, key: str, now: float) -> bool:
        """The ``expire_lease`` fault: the idempotency lease on ``key`` ends at ``now`` (a lease
        already over stays as it is). False if there is no record for ``key``. The record is
        otherwise untouched, so the holder's later commit is judged by its fencing token as a
        real lease loss would be."""
        with self._lock:
            record = self._m.records.get(key)
            if record is None:
                return False
            record.lease_until = min(record.lease_until, now)
            return True


__all__ = ["SimStorage"]
