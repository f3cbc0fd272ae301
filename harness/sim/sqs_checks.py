"""Simulated SQS: request validation, MD5 digests and the rendering of received messages.

The checks raise :class:`~flowgate.harness.sim.errors.SimError` with AWS's codes and messages (LocalStack
2026.3 parity, ``docs/simulator.md``); the backend (:mod:`flowgate.harness.sim.sqs`) runs them before it
changes any state. Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import struct
from collections.abc import Mapping, Sequence
from typing import Any, Final

from . import errors as E
from .errors import SimError
from .sqs_model import (
    _BASE_ATTRIBUTES,
    _FIFO_ATTRIBUTES,
    MAX_BATCH,
    MAX_MESSAGE_ATTRIBUTES,
    MAX_VISIBILITY,
    Message,
    Queue,
)

_MSG_CONTENT_RE: Final = re.compile("^[\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*$")
_ATTR_NAME_RE: Final = re.compile("^[\u00c0-\u017fa-zA-Z0-9_.-]*$")
_ATTR_PREFIX_RE: Final = re.compile(r"^(?!(aws\.|amazon\.|\.)).*(?<!\.)$")
_ATTR_TYPE_RE: Final = re.compile("^(String|Number|Binary).*$")
_FIFO_ID_RE: Final = re.compile("^[0-9a-zA-Z!\"#$%&'()*+,./:;<=>?@\\[\\\\\\]^_`{|}~-]{1,128}$")
_QUEUE_NAME_RE: Final = re.compile(r"^[a-zA-Z0-9_-]{1,80}$")
_BATCH_ID_RE: Final = re.compile(r"^[\w-]{1,80}$")


def md5_hex(data: str) -> str:
    return hashlib.md5(data.encode("utf-8")).hexdigest()


def body_md5(message: Message) -> str:
    """``md5_hex(message.body)``, computed once per message (a body never changes)."""
    if message.body_md5 is None:
        message.body_md5 = md5_hex(message.body)
    return message.body_md5


def _len_prefixed(value: bytes) -> bytes:
    return struct.pack("!I", len(value)) + value


def md5_of_message_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    """AWS's MD5OfMessageAttributes (length-prefixed name, type, transport byte, value)."""
    digest = hashlib.md5()
    for name in sorted(attributes):
        attr = attributes[name]
        digest.update(_len_prefixed(name.encode("utf-8")))
        digest.update(_len_prefixed(str(attr["DataType"]).encode("utf-8")))
        if attr.get("StringValue") is not None:
            digest.update(b"\x01")
            digest.update(_len_prefixed(str(attr["StringValue"]).encode("utf-8")))
        elif attr.get("BinaryValue") is not None:
            raw = attr["BinaryValue"]
            digest.update(b"\x02")
            digest.update(_len_prefixed(raw if isinstance(raw, bytes) else str(raw).encode("utf-8")))
    return digest.hexdigest()


def _bytesize(value: Any) -> int:
    if isinstance(value, bytes):
        return len(value)
    text = str(value)
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def valid_content(text: str) -> bool:
    """Whether ``text`` holds only the characters SQS accepts in a body or a String value (#x9,
    #xA, #xD, #x20-#xD7FF, #xE000-#xFFFD, #x10000-#x10FFFF). A printable string always does
    (:meth:`str.isprintable` excludes controls, surrogates and the non-characters U+FFFE/U+FFFF):
    the C-speed test answers for most bodies, the regular expression for the rest."""
    return text.isprintable() or _MSG_CONTENT_RE.match(text) is not None


def _attributes_size(attributes: Mapping[str, Mapping[str, Any]] | None) -> int:
    if not attributes:
        return 0
    return sum(_bytesize(k) for k in attributes) + sum(
        sum(_bytesize(v) for v in attr.values()) for attr in attributes.values()
    )


def _invalid(message: str) -> SimError:
    return SimError(E.SQS_INVALID_PARAMETER_VALUE, message)


def _validate_redrive_policy(raw: str) -> None:
    try:
        policy = json.loads(raw)
    except ValueError as exc:
        raise _invalid(f"Value {raw} for parameter RedrivePolicy is invalid. Reason: Invalid JSON.") from exc
    if not isinstance(policy, dict) or not policy.get("deadLetterTargetArn"):
        raise _invalid("The required parameter 'deadLetterTargetArn' is missing")
    count = policy.get("maxReceiveCount")
    if count is None:
        raise _invalid("The required parameter 'maxReceiveCount' is missing")
    try:
        valid = 1 <= int(count) <= 1000
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise _invalid(
            f"Value {raw} for parameter RedrivePolicy is invalid. Reason: Invalid value for "
            f"maxReceiveCount: {count}, valid values are from 1 to 1000 both inclusive."
        )


def _check_int_attr(name: str, value: str, low: int, high: int) -> None:
    try:
        ok = low <= int(value) <= high
    except ValueError:
        ok = False
    if not ok:
        raise SimError(E.SQS_INVALID_ATTRIBUTE_VALUE, f"Invalid value for the parameter {name}.")


_INT_ATTR_RANGES: Final = {
    "DelaySeconds": (0, 900),
    "MaximumMessageSize": (1024, 1_048_576),
    "MessageRetentionPeriod": (60, 1_209_600),
    "ReceiveMessageWaitTimeSeconds": (0, 20),
    "VisibilityTimeout": (0, MAX_VISIBILITY),
}


def validate_attributes(attributes: Mapping[str, str], fifo: bool, *, creating: bool) -> None:
    allowed = set(_BASE_ATTRIBUTES) | (set(_FIFO_ATTRIBUTES) if fifo else set())
    for key, value in attributes.items():
        if key == "FifoQueue" and creating and value.lower() == "false" and not fifo:
            continue
        if key not in allowed:
            if key in _FIFO_ATTRIBUTES[2:]:
                raise SimError(
                    E.SQS_INVALID_ATTRIBUTE_NAME,
                    f"You can specify the {key} only when FifoQueue is set to true.",
                )
            raise SimError(E.SQS_INVALID_ATTRIBUTE_NAME, f"Unknown Attribute {key}.")
        if key in _INT_ATTR_RANGES:
            _check_int_attr(key, value, *_INT_ATTR_RANGES[key])
        if key == "RedrivePolicy" and value:
            _validate_redrive_policy(value)
        if key == "FifoQueue" and not creating:
            raise SimError(
                E.SQS_INVALID_ATTRIBUTE_VALUE,
                "Invalid value for the parameter FifoQueue. Reason: Modifying queue type is not supported.",
            )


def check_message(
    queue: Queue,
    body: str | None,
    attributes: Mapping[str, Mapping[str, Any]] | None,
    dedup_id: str | None,
    group_id: str | None,
) -> None:
    if not body:
        raise SimError(E.SQS_MISSING_PARAMETER, "The request must contain the parameter MessageBody.")
    limit = queue.int_attr("MaximumMessageSize")
    if _bytesize(body) + _attributes_size(attributes) > limit:
        raise _invalid(
            f"One or more parameters are invalid. Reason: Message must be shorter than {limit} bytes."
        )
    if not valid_content(body):
        raise SimError(
            E.SQS_INVALID_MESSAGE_CONTENTS,
            "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | "
            "#xE000 to #xFFFD | #x10000 to #x10FFFF",
        )
    if attributes:
        if len(attributes) > MAX_MESSAGE_ATTRIBUTES:
            raise _invalid(
                f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum "
                f"[{MAX_MESSAGE_ATTRIBUTES}]."
            )
        for name, attr in attributes.items():
            check_attribute(name, attr)
    for value, param in ((dedup_id, "MessageDeduplicationId"), (group_id, "MessageGroupId")):
        if value is not None and not _FIFO_ID_RE.match(value):
            raise _invalid(
                f"Value {value} for parameter {param} is invalid. Reason: {param} can only include "
                "alphanumeric and punctuation characters. 1 to 128 in length."
            )


@functools.lru_cache(maxsize=1024)
def _attribute_name_error(name: str) -> str | None:
    """Why ``name`` cannot be a message attribute name (None: it can); a pure function of the
    name, so its answer is cached (a bus uses a handful of names)."""
    if len(name) >= 256:
        return "Message (user) attribute names must be shorter than 256 Bytes"
    if not _ATTR_NAME_RE.match(name.lower()):
        return (
            "Message (user) attributes name can only contain upper and lower score characters, digits, "
            "periods, hyphens and underscores. "
        )
    if not _ATTR_PREFIX_RE.match(name.lower()):
        return (
            "You can't use message attribute names beginning with 'AWS.' or 'Amazon.'. These strings are "
            "reserved for internal use. Additionally, they cannot start or end with '.'."
        )
    return None


def check_attribute(name: str, attr: Mapping[str, Any]) -> None:
    error = _attribute_name_error(name)
    if error is not None:
        raise _invalid(error)
    data_type = attr.get("DataType")
    if not data_type:
        raise _invalid("Missing required parameter DataType")
    if not _ATTR_TYPE_RE.match(str(data_type)):
        raise _invalid(
            "Type for parameter MessageAttributes.Attribute_name.DataType must be prefixedwith "
            f'"String", "Binary", or "Number", but was: {data_type}'
        )
    if str(data_type).startswith(("String", "Number")):
        value = attr.get("StringValue")
        if not value:
            raise _invalid(
                f"Message (user) attribute '{name}' must contain a non-empty value of type "
                f"'{str(data_type).split('.')[0]}'."
            )
        if not valid_content(str(value)):
            raise _invalid(
                "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | "
                "#xE000 to #xFFFD | #x10000 to #x10FFFF"
            )
    elif attr.get("BinaryValue") is None:
        raise _invalid(f"Message (user) attribute '{name}' must contain a non-empty value of type 'Binary'.")


def check_batch(entries: Sequence[Mapping[str, Any]]) -> None:
    if not entries:
        raise SimError(E.SQS_EMPTY_BATCH, "")
    if len(entries) > MAX_BATCH:
        raise SimError(
            E.SQS_TOO_MANY_ENTRIES,
            f"Maximum number of entries per request are {MAX_BATCH}. You have sent {len(entries)}.",
        )
    seen: set[str] = set()
    for entry in entries:
        entry_id = str(entry.get("Id", ""))
        if not _BATCH_ID_RE.match(entry_id):
            raise SimError(
                E.SQS_INVALID_BATCH_ENTRY_ID,
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. "
                "It can be at most 80 letters long.",
            )
        if entry_id in seen:
            raise SimError(E.SQS_IDS_NOT_DISTINCT, "")
        seen.add(entry_id)


def render_message(
    account: str,
    message: Message,
    handle: str,
    attribute_names: Sequence[str] | None,
    message_attribute_names: Sequence[str] | None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "MessageId": message.message_id,
        "ReceiptHandle": handle,
        "MD5OfBody": body_md5(message),
        "Body": message.body,
    }
    system: dict[str, str] = {
        "SenderId": account,
        "SentTimestamp": str(int(message.sent_at * 1000)),
        "ApproximateReceiveCount": str(message.receive_count),
        "ApproximateFirstReceiveTimestamp": str(int((message.first_receive_at or 0) * 1000)),
    }
    if message.group_id is not None:
        system["MessageGroupId"] = message.group_id
    if message.dedup_id is not None:
        system["MessageDeduplicationId"] = message.dedup_id
    if message.sequence_number is not None:
        system["SequenceNumber"] = message.sequence_number
    if message.dlq_source_arn is not None:
        system["DeadLetterQueueSourceArn"] = message.dlq_source_arn
    if attribute_names:
        if "All" in attribute_names:
            result["Attributes"] = system
        else:
            chosen = {k: v for k, v in system.items() if k in attribute_names}
            if chosen:
                result["Attributes"] = chosen
    if message_attribute_names and message.attributes:
        chosen_attrs: dict[str, dict[str, Any]] = {}
        for name, attr in message.attributes.items():
            for pattern in message_attribute_names:
                if (
                    pattern in ("All", ".*")
                    or pattern == name
                    or (pattern.endswith(".*") and name.startswith(pattern[:-1]))
                ):
                    chosen_attrs[name] = dict(attr)
                    break
        if chosen_attrs:
            if len(chosen_attrs) == len(message.attributes):  # all of them: the digest is the message's
                if message.attributes_md5 is None:
                    message.attributes_md5 = md5_of_message_attributes(message.attributes)
                result["MD5OfMessageAttributes"] = message.attributes_md5
            else:
                result["MD5OfMessageAttributes"] = md5_of_message_attributes(chosen_attrs)
            result["MessageAttributes"] = chosen_attrs
    return result
