"""Capabilities and the replay check (contract section 7), the pure parts: no AWS, no processes.

* :func:`parse_capabilities` reads an implementation's ready line
  (``flowgate-ready {"capabilities": ["replay"]}``);
* :func:`parse_replay_output` turns a replay run's stdout into re-derived events per entity;
* :func:`live_events` extracts, from the gate's history, what the probe saw per entity;
* :func:`compare` judges one replay run against that.

The replayer (``harness/gate/replayer.py``) runs the processes and turns the findings into anomalies.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from flowgate.harness.history import Op

READY_TOKEN = "flowgate-ready"
REPLAY = "replay"
#: Capabilities this gate knows how to exercise.
KNOWN_CAPABILITIES = frozenset({REPLAY})


def parse_capabilities(line: str | bytes) -> frozenset[str]:
    """Capabilities declared on a ready line: the JSON object after ``flowgate-ready``, key
    ``capabilities`` (a list of strings). Anything else after the token -- nothing, text, invalid
    JSON, a non-list -- declares none (the contract keeps a bare ``flowgate-ready`` valid)."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.strip()
    if not text.startswith(READY_TOKEN):
        return frozenset()
    rest = text[len(READY_TOKEN) :].strip()
    if not rest.startswith("{"):
        return frozenset()
    try:
        doc = json.loads(rest)
    except ValueError:
        return frozenset()
    caps = doc.get("capabilities") if isinstance(doc, dict) else None
    if not isinstance(caps, list):
        return frozenset()
    return frozenset(c for c in caps if isinstance(c, str))


@dataclass(frozen=True, slots=True, order=True)
class EventKey:
    """What replay is compared on: an event's identity, name and position in its entity."""

    seq: int
    event_id: str
    name: str

    def __str__(self) -> str:
        return f"({self.event_id}, {self.name}, seq {self.seq})"


@dataclass(slots=True)
class ReplayOutput:
    """One replay run's stdout, parsed. ``errors`` are unparseable or non-conforming lines."""

    events: dict[str, list[EventKey]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lines: int = 0


def parse_replay_output(stdout: str) -> ReplayOutput:
    """Every line starting with ``{`` must be one event body (docs/schemas/event.schema.json) with
    ``metadata.isReplay`` true; other lines are ignored (logs). Events are grouped per entity in
    output order; :func:`compare` orders them by ``sequenceNo``."""
    out = ReplayOutput()
    for number, raw in enumerate(stdout.splitlines(), start=1):
        line = raw.strip()
        if not line.startswith("{"):
            continue
        out.lines += 1
        try:
            event = json.loads(line)
            name, entity = event["name"], event["entity"]["id"]
            meta = event["metadata"]
            event_id, seq, is_replay = meta["eventId"], meta["sequenceNo"], meta.get("isReplay")
        except (ValueError, KeyError, TypeError) as exc:
            out.errors.append(f"line {number}: not an event body ({exc!r}): {line[:200]}")
            continue
        if not (isinstance(name, str) and isinstance(entity, str) and isinstance(event_id, str)) or (
            not isinstance(seq, int) or isinstance(seq, bool)
        ):
            out.errors.append(f"line {number}: name/entity.id/eventId must be strings, sequenceNo an integer")
            continue
        if is_replay is not True:
            out.errors.append(f"line {number}: event {event_id} is not marked metadata.isReplay=true")
            continue
        out.events.setdefault(entity, []).append(EventKey(seq, event_id, name))
    return out


def live_events(ops: Iterable[Op], entities: Iterable[str]) -> dict[str, list[EventKey]]:
    """The events the probe saw per entity (``publish`` ops), deduplicated by event id (a FIFO
    re-publish is the same event), ordered by ``sequenceNo`` (ties keep observation order)."""
    wanted = set(entities)
    seen: set[str] = set()
    out: dict[str, list[EventKey]] = {e: [] for e in wanted}
    for op in ops:
        if op.f != "publish" or op.type != "ok":
            continue
        entity, event_id = str(op.value.get("entity_id", "")), str(op.value.get("event_id", ""))
        if entity not in wanted or event_id in seen:
            continue
        seen.add(event_id)
        out[entity].append(
            EventKey(int(op.value.get("seq", 0)), event_id, str(op.value.get("event_type", "")))
        )
    return {e: _by_seq(keys) for e, keys in out.items()}


def _by_seq(keys: Sequence[EventKey]) -> list[EventKey]:
    return sorted(keys, key=lambda k: k.seq)  # stable: same seq keeps its order


def compare(live: Mapping[str, Sequence[EventKey]], replayed: Mapping[str, Sequence[EventKey]]) -> list[str]:
    """One message per diverging entity, naming the first difference; empty = identical.

    Every entity of ``live`` is compared (an entity the replay left out diverges unless it had no
    live events either); an entity the replay produced that the gate did not ask for diverges too.
    """
    problems: list[str] = []
    for entity in sorted(set(live) | set(replayed)):
        if entity not in live:
            problems.append(
                f"entity {entity}: replayed {len(replayed[entity])} events, but the gate did not ask for it"
            )
            continue
        want, got = list(live[entity]), _by_seq(list(replayed.get(entity, ())))
        for position, (w, g) in enumerate(zip(want, got, strict=False)):
            if w != g:
                problems.append(f"entity {entity}: event {position} live {w}, replayed {g}")
                break
        else:
            if len(want) != len(got):
                position = min(len(want), len(got))
                extra = got[position] if len(got) > len(want) else None
                missing = want[position] if len(want) > len(got) else None
                detail = f"replayed extra {extra}" if extra else f"replay lacks {missing}"
                problems.append(
                    f"entity {entity}: {len(want)} live events, {len(got)} replayed; event {position}: {detail}"
                )
    return problems
