"""Dead-lettering: poison ends in a DLQ with a reason; nothing valid does."""

from __future__ import annotations

from typing import Any

from flowgate.harness.history import Op
from flowgate.harness.hostile.core import REASON_CODES

from .model import (
    Anomaly,
    HistoryLike,
    Verdict,
    as_ops,
    has_drain,
    index_sends,
    poison_ids,
    reason_code,
    replayed_poison,
    revived_commands,
    sid,
    verdict,
)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


NAME = "dead_letter"


def _wrong_code(poison: Op, reason: str) -> str | None:
    """Why ``reason`` is not the code ``poison`` documents, or None when it is (or is not judged)."""
    expected = poison.value.get("reason_code")
    code = reason.split(":", 1)[0].strip()
    if not expected or code == "sqs-redrive":
        return None
    if expected == "*":
        return None if code in REASON_CODES else f"{code!r} is not an agreed DeadLetterReason code"
    return None if code == expected else f"{poison.value.get('kind')} documents {expected}, got {code!r}"


def dead_letter(history: HistoryLike) -> Verdict:
    """Poison messages are dead-lettered with a reason; valid commands never are.

    * ``poison-not-dead-lettered`` -- a harness ``poison`` op (matched by ``message_id`` or
      ``poison_id``) with no ``dead_letter`` op for it once the run drained;
    * ``no-drain`` -- poison was sent but the run never drained, so the above cannot be judged;
    * ``dead-letter-without-reason`` -- a ``dead_letter`` op with an empty or missing reason;
    * ``wrong-dead-letter-reason`` -- a listener dead-lettered a poison op that documents its
      ``reason_code`` (the hostile-input catalog) with another ``DeadLetterReason`` code (``*``:
      any agreed code); SQS's own redrive (``sqs-redrive``, e.g. after a crash) is not judged;
    * ``dead-letter-wrong-reason`` -- a poison op that names the ``expected_reason`` code (e.g.
      ``DecodeError``) was dead-lettered with a reason of another code (``<Code>: <detail>``;
      an SQS redrive, which carries none, counts as another);
    * ``valid-dead-lettered`` -- a ``dead_letter`` op for a command that was sent ``ok``
      (matched by ``command_id``, or by the ``message_id`` the send recorded) and is not poison
      (a ``BusinessError`` dead letter of a command sent with ``expect_business_failure`` is the
      refusal the workload expects, not valid dead-lettered);
    * ``unexpected-business-dead-letter`` -- a ``business_dead_letter`` for a command whose send
      did not carry ``expect_business_failure: true``, or one after a DLQ replay revived the
      command (:func:`~flowgate.harness.checkers.model.revived_commands`: its cause was fixed).

    DLQ replays (``dlq_replay`` ops, decision D24): poison that is replayed stays poison -- its
    copy (the replay op's ``message_id``) must be dead-lettered again after the replay
    (``poison-not-dead-lettered``) with the code it had (``dead-letter-wrong-reason``).
    """
    ops = as_ops(history)
    commands = index_sends(ops)
    poison: list[Op] = []
    poison_by_id: dict[str, Op] = {}
    dead_letters: list[Op] = []
    business: list[Op] = []
    sent_message_ids: dict[str, str] = {}
    for op in ops:
        if op.f == "poison" and op.type != "fail":
            ids = poison_ids(op)
            if not ids:
                continue
            if not any(i in poison_by_id for i in ids):
                poison.append(op)
            for i in ids:
                poison_by_id.setdefault(i, op)
        elif op.type != "ok":
            continue
        elif op.f == "dead_letter":
            dead_letters.append(op)
        elif op.f == "business_dead_letter":
            business.append(op)
        elif op.f == "send":
            message_id, command_id = sid(op.value.get("message_id")), sid(op.value.get("command_id"))
            if message_id is not None and command_id is not None:
                sent_message_ids[message_id] = command_id

    anomalies: list[Anomaly] = []
    settled: set[int] = set()  # indexes of poison ops that were dead-lettered
    for op in dead_letters:
        reason = op.value.get("reason")
        if reason is None or not str(reason).strip():
            anomalies.append(
                Anomaly("dead-letter-without-reason", f"{op.describe()} carries no reason", (op.index,))
            )
        matched = [
            poison_by_id[i]
            for i in (sid(op.value.get("message_id")), sid(op.value.get("poison_id")))
            if i is not None and i in poison_by_id
        ]
        for found in matched:
            settled.add(found.index)
            # a reason is judged only for the poison op whose *message* this is (a poison_id may
            # equal another message's id: both come from generators seeded alike)
            mine, theirs = sid(found.value.get("message_id")), sid(op.value.get("message_id"))
            if mine is not None and theirs is not None and mine != theirs:
                continue
            wrong = _wrong_code(found, str(reason or ""))
            if wrong:
                anomalies.append(
                    Anomaly("wrong-dead-letter-reason", f"{op.describe()}: {wrong}", (found.index, op.index))
                )
            code = found.value.get("expected_reason")
            if code and not str(reason or "").startswith(f"{code}:"):
                anomalies.append(
                    Anomaly(
                        "dead-letter-wrong-reason",
                        f"poison {found.describe()} expected {code}, dead-lettered by {op.describe()}",
                        (found.index, op.index),
                    )
                )
        if matched or _truthy(op.value.get("poison")):
            continue
        command_id = sid(op.value.get("command_id"))
        if command_id is None:
            message_id = sid(op.value.get("message_id"))
            command_id = sent_message_ids.get(message_id) if message_id is not None else None
        command = commands.get(command_id) if command_id is not None else None
        if (
            command is not None
            and reason_code(reason) == "BusinessError"
            and _truthy(command.value.get("expect_business_failure"))
        ):
            continue  # a refusal the workload expects, forwarded to the DLQ as well (section 6)
        if command is not None and command.status == "ok":
            assert command.outcome is not None
            anomalies.append(
                Anomaly(
                    "valid-dead-lettered",
                    f"{command.label()} acknowledged by {command.outcome.describe()} "
                    f"was dead-lettered by {op.describe()}",
                    (command.outcome.index, op.index),
                )
            )

    drain = has_drain(ops)
    unsettled = [op for op in poison if op.index not in settled]
    if poison and drain is None:
        anomalies.append(
            Anomaly(
                "no-drain",
                f"{len(poison)} poison messages were sent but the run never drained: "
                "their dead-lettering cannot be judged",
                (),
            )
        )
    elif drain is not None:
        for op in unsettled:
            anomalies.append(
                Anomaly(
                    "poison-not-dead-lettered",
                    f"poison {op.describe()} has no dead_letter op by the drain #{drain.index}",
                    (op.index,),
                )
            )

    replayed = replayed_poison(ops)
    for replay in replayed:
        copy, code = sid(replay.value.get("message_id")), reason_code(replay.value.get("reason"))
        again = [
            op for op in dead_letters if op.index > replay.index and sid(op.value.get("message_id")) == copy
        ]
        if not again:
            if drain is not None:
                anomalies.append(
                    Anomaly(
                        "poison-not-dead-lettered",
                        f"poison replayed from the DLQ by {replay.describe()} (copy {copy}) was not "
                        f"dead-lettered again by the drain #{drain.index}",
                        (replay.index,),
                    )
                )
            continue
        if reason_code(again[0].value.get("reason")) != code:
            anomalies.append(
                Anomaly(
                    "dead-letter-wrong-reason",
                    f"poison replayed from the DLQ by {replay.describe()} had {code}, dead-lettered again "
                    f"by {again[0].describe()}",
                    (replay.index, again[0].index),
                )
            )

    revived = revived_commands(ops)
    expected_failures = 0
    for op in business:
        command_id = sid(op.value.get("command_id"))
        command = commands.get(command_id) if command_id is not None else None
        revival = revived.get(command_id) if command_id is not None else None
        if revival is not None and op.index > revival.index:
            anomalies.append(
                Anomaly(
                    "unexpected-business-dead-letter",
                    f"{op.describe()}: command {command_id} was replayed from the DLQ by "
                    f"{revival.describe()} after its cause was fixed, and refused again",
                    (revival.index, op.index),
                )
            )
            continue
        if command is not None and _truthy(command.value.get("expect_business_failure")):
            expected_failures += 1
            continue
        origin = f"sent by {command.first.describe()}" if command is not None else "never sent"
        anomalies.append(
            Anomaly(
                "unexpected-business-dead-letter",
                f"{op.describe()}: command {command_id} was not expected to fail ({origin})",
                (op.index,) + ((command.first.index,) if command is not None else ()),
            )
        )
    stats: dict[str, Any] = {
        "poison": len(poison),
        "poison_dead_lettered": len(settled),
        "dead_letters": len(dead_letters),
        "business_dead_letters": len(business),
        "expected_business_failures": expected_failures,
        "replayed_poison": len(replayed),
        "revived_commands": len(revived),
    }
    return verdict(NAME, anomalies, stats)
