"""Histories: the one record every run produces and every checker reads.

A history is an ordered list of :class:`Op` (Jepsen's model). Each op belongs to a
``process`` (a producer, a worker such as ``worker-1``, the ``harness`` itself, or the
``nemesis`` that injects faults) and has a ``type``:

* ``invoke`` -- an operation started (e.g. a send whose outcome is not known yet);
* ``ok`` -- it completed; ``fail`` -- it certainly did not take place;
* ``info`` -- outcome unknown (a crash mid-call) or a plain observation (a fault injected).

``f`` names the operation: the observation names of :data:`flowgate.reference.hooks.OBSERVATIONS`
(``send``, ``receive``, ``effect``, ``publish``, ``project``, ``duplicate``, ``delete``,
``dead_letter``, ``business_dead_letter``), the harness's own ``drain`` (written once the
final drain finished: the total-queue checker refuses to judge a history without it) and
``replay``/``state`` (snapshots compared by the replay checker), and nemesis faults
(``crash``, ``stall``, ``duplicate_delivery``, ``delay_delete``, ``expire_lease``,
``restart``, ``kill``, ``localstack_restart``...). Deliberately bad messages are sent by the
``harness`` process as ``poison`` ops (value: ``message_id``/``poison_id`` and ``kind``).

Histories are written as JSON lines, one op per line, so a reviewer can ``grep`` them and a
failing run attaches its history to the report.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Final

OP_TYPES: Final = frozenset({"invoke", "ok", "fail", "info"})
NEMESIS: Final = "nemesis"
HARNESS: Final = "harness"


@dataclass(frozen=True, slots=True)
class Op:
    """One history operation. ``index`` is its position in the history (0-based)."""

    index: int
    process: str
    type: str
    f: str
    value: Mapping[str, Any] = field(default_factory=dict)
    time: float = 0.0

    def to_json(self) -> str:
        """One JSON line: the fields with sorted keys, as ``json.dumps(asdict(op), sort_keys=True,
        default=str)`` writes them (a dataclass inside ``value`` becomes an object, anything else
        JSON cannot write becomes its ``str``), without deep-copying the value first."""
        return json.dumps(
            {
                "f": self.f,
                "index": self.index,
                "process": self.process,
                "time": self.time,
                "type": self.type,
                "value": self.value,
            },
            sort_keys=True,
            default=_json_default,
        )

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Op:
        return cls(
            index=int(raw["index"]),
            process=str(raw["process"]),
            type=str(raw["type"]),
            f=str(raw["f"]),
            value=dict(raw.get("value") or {}),
            time=float(raw.get("time", 0.0)),
        )

    def describe(self) -> str:
        """A one-line rendering for anomaly reports: ``#12 worker-1 ok effect {...}``."""
        return f"#{self.index} {self.process} {self.type} {self.f} {json.dumps(dict(self.value), sort_keys=True)}"


def _json_default(obj: Any) -> Any:
    """``asdict``'s view of a nested dataclass instance, ``str`` of anything else JSON lacks."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    return str(obj)


class History:
    """An append-only, thread-safe list of :class:`Op`, with JSON-lines I/O.

    ``clock`` stamps each op's ``time`` (virtual time in the simulator, wall time elsewhere).
    """

    def __init__(self, clock: Callable[[], float] | None = None, ops: Iterable[Op] = ()) -> None:
        self._ops: list[Op] = list(ops)
        self._lock = threading.Lock()
        self._clock = clock or (lambda: 0.0)

    def append(self, process: str, type: str, f: str, value: Mapping[str, Any] | None = None) -> Op:
        if type not in OP_TYPES:
            raise ValueError(f"op type must be one of {sorted(OP_TYPES)}, got {type!r}")
        with self._lock:
            op = Op(len(self._ops), process, type, f, dict(value or {}), self._clock())
            self._ops.append(op)
        return op

    def nemesis(self, f: str, value: Mapping[str, Any] | None = None) -> Op:
        """Record an injected fault as an ``info`` op of the nemesis process."""
        return self.append(NEMESIS, "info", f, value)

    def observer(self, process: str) -> HistoryObserver:
        """An :class:`flowgate.reference.hooks.Observer` that appends to this history as ``process``."""
        return HistoryObserver(self, process)

    @property
    def ops(self) -> list[Op]:
        with self._lock:
            return list(self._ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __len__(self) -> int:
        return len(self._ops)

    def dump(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", encoding="utf-8") as out:
            for op in self.ops:
                out.write(op.to_json() + "\n")
        return target

    @classmethod
    def load(cls, path: str | Path) -> History:
        ops: list[Op] = []
        with Path(path).open(encoding="utf-8") as src:
            for number, line in enumerate(src, start=1):
                if not line.strip():
                    continue
                try:
                    ops.append(Op.from_dict(json.loads(line)))
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{path}:{number}: not a history op: {exc}") from exc
        return cls(ops=ops)


class HistoryObserver:
    """Adapts :class:`History` to the reference's ``Observer`` protocol for one process."""

    def __init__(self, history: History, process: str) -> None:
        self.history = history
        self.process = process

    def observe(self, f: str, kind: str, value: Mapping[str, Any]) -> None:
        self.history.append(self.process, kind, f, value)
