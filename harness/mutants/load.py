"""Patch builders of the load test's mutants (entries in :data:`flowgate.harness.mutants.catalog.MUTANTS`).

They break the producer side that a Locust process runs (``loadtests/locustfile.py`` installs
``FLOWGATE_MUTANT`` in every process that sends: the single Locust process, or each Locust
worker in distributed mode), so the load test's own verdict is what must catch them.
"""

from __future__ import annotations

import threading
from typing import Any
from unittest import mock

from flowgate.harness.mutants.model import Mutant
from flowgate.reference.dispatchers import SqsCommandDispatcher, _Dispatcher


def sender_drops_one_order() -> list[Any]:
    """The command dispatcher of this process acknowledges its first command without sending it
    (once per process): one order is reported sent and never reaches the queue."""
    lock = threading.Lock()
    state = {"dropped": False}
    orig_batch = SqsCommandDispatcher._send_batch

    def first() -> bool:
        with lock:
            if state["dropped"]:
                return False
            state["dropped"] = True
            return True

    def _send_batch(self: SqsCommandDispatcher, destination: str, entries: list[dict[str, Any]]) -> list[Any]:
        if not first():
            return orig_batch(self, destination, entries)
        rest = entries[1:]
        return [None, *(orig_batch(self, destination, rest) if rest else [])]

    def _try_one(self: SqsCommandDispatcher, destination: str, entry: dict[str, Any]) -> Exception | None:
        if first():
            return None
        return _Dispatcher._try_one(self, destination, entry)

    return [
        mock.patch.object(SqsCommandDispatcher, "_send_batch", _send_batch),
        mock.patch.object(SqsCommandDispatcher, "_try_one", _try_one),
    ]


#: the load test in Locust's distributed mode (2 Locust worker processes on loopback)
LOAD_DISTRIBUTED = "tests/loadtests/test_load_distributed.py::test_distributed_run_is_clean"

MUTANTS: tuple[Mutant, ...] = (
    # the load test's producer side (harness/mutants/load.py): killed by the distributed run,
    # where a Locust worker process sends and the master judges
    Mutant(
        "load-sender-drops-order",
        "the command dispatcher of a sending process acknowledges its first command without "
        "sending it: one order reported sent never reaches the queue (in distributed mode: in "
        "a Locust worker process, which the master's merged verdict must catch)",
        (),
        ("lost",),
        sender_drops_one_order,
        scenarios=(LOAD_DISTRIBUTED,),
        subject="load",
    ),
)
