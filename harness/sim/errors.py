"""AWS-shaped errors: :class:`botocore.exceptions.ClientError` exactly as boto3 raises them.

Inside the simulator an operation raises :class:`SimError`; the client wrapper turns it into the
modeled botocore exception class for the service (``sqs.exceptions.QueueDoesNotExist`` ...), which
is a subclass of ``ClientError`` carrying ``response["Error"]["Code"]`` and the operation name, so
``except ClientError`` and ``except client.exceptions.X`` both work as against AWS.

Codes follow what boto3 reports against LocalStack 2026.3 / AWS (SQS's JSON protocol reports the
legacy query code in ``Code`` and the JSON shape name in ``QueryErrorCode``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.errorfactory import BaseClientExceptions, ClientExceptionsFactory
from botocore.exceptions import ClientError


@dataclass(frozen=True)
class ErrorSpec:
    code: str
    query_code: str | None = None
    status: int = 400
    sender: bool = True


# SQS (Code, QueryErrorCode) pairs as boto3 sees them.
SQS_NON_EXISTENT_QUEUE = ErrorSpec("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
SQS_INVALID_PARAMETER_VALUE = ErrorSpec("InvalidParameterValue", "InvalidParameterValueException")
SQS_MISSING_PARAMETER = ErrorSpec("MissingParameter", "MissingRequiredParameterException")
SQS_INVALID_MESSAGE_CONTENTS = ErrorSpec("InvalidMessageContents", "InvalidMessageContents")
SQS_TOO_MANY_ENTRIES = ErrorSpec(
    "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "TooManyEntriesInBatchRequest"
)
SQS_IDS_NOT_DISTINCT = ErrorSpec(
    "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", "BatchEntryIdsNotDistinct"
)
SQS_EMPTY_BATCH = ErrorSpec("AWS.SimpleQueueService.EmptyBatchRequest", "EmptyBatchRequest")
SQS_INVALID_BATCH_ENTRY_ID = ErrorSpec("AWS.SimpleQueueService.InvalidBatchEntryId", "InvalidBatchEntryId")
SQS_BATCH_TOO_LONG = ErrorSpec("AWS.SimpleQueueService.BatchRequestTooLong", "BatchRequestTooLong")
SQS_RECEIPT_HANDLE_INVALID = ErrorSpec("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid")
SQS_INVALID_ATTRIBUTE_NAME = ErrorSpec("InvalidAttributeName", "InvalidAttributeName")
SQS_INVALID_ATTRIBUTE_VALUE = ErrorSpec("InvalidAttributeValue", "InvalidAttributeValue")
SQS_QUEUE_EXISTS = ErrorSpec("QueueAlreadyExists", "QueueNameExists")

SNS_NOT_FOUND = ErrorSpec("NotFound", status=404)
SNS_INVALID_PARAMETER = ErrorSpec("InvalidParameter")
#: a message attribute that breaks the rules (LocalStack's and AWS's ``InvalidParameterValue``)
SNS_INVALID_PARAMETER_VALUE = ErrorSpec("ParameterValueInvalid")
SNS_TOO_MANY_ENTRIES = ErrorSpec("TooManyEntriesInBatchRequest")
SNS_IDS_NOT_DISTINCT = ErrorSpec("BatchEntryIdsNotDistinct")
SNS_EMPTY_BATCH = ErrorSpec("EmptyBatchRequest")
SNS_INVALID_BATCH_ENTRY_ID = ErrorSpec("InvalidBatchEntryId")

KMS_NOT_FOUND = ErrorSpec("NotFoundException")
KMS_INVALID_CIPHERTEXT = ErrorSpec("InvalidCiphertextException")
KMS_INCORRECT_KEY = ErrorSpec("IncorrectKeyException")
KMS_ALREADY_EXISTS = ErrorSpec("AlreadyExistsException")
KMS_VALIDATION = ErrorSpec("ValidationException")
KMS_INVALID_STATE = ErrorSpec("KMSInvalidStateException")
KMS_DISABLED = ErrorSpec("DisabledException")


class SimError(Exception):
    """Raised inside the simulator; converted to a ClientError at the client boundary."""

    def __init__(self, spec: ErrorSpec, message: str = "") -> None:
        super().__init__(f"{spec.code}: {message}")
        self.spec = spec
        self.message = message

    @property
    def code(self) -> str:
        return self.spec.code

    @property
    def batch_code(self) -> str:
        """The code LocalStack puts in a batch result entry (the JSON shape name)."""
        return self.spec.query_code or self.spec.code

    def error_response(self) -> dict[str, Any]:
        error: dict[str, Any] = {"Code": self.spec.code, "Message": self.message, "Type": "Sender"}
        if self.spec.query_code is not None:
            error["QueryErrorCode"] = self.spec.query_code
        return {
            "Error": error,
            "ResponseMetadata": {
                "HTTPStatusCode": self.spec.status,
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        }


@functools.cache
def service_exceptions(service_name: str) -> BaseClientExceptions:
    """botocore's modeled exception classes for a service (read-only, loaded once per process)."""
    model = botocore.session.get_session().get_service_model(service_name)
    return ClientExceptionsFactory().create_client_exceptions(model)


def to_client_error(service_name: str, error: SimError, operation_name: str) -> ClientError:
    exceptions: Any = service_exceptions(service_name)
    cls: Any = exceptions.from_code(error.spec.code)
    if cls is ClientError and error.spec.query_code is not None:
        cls = exceptions.from_code(error.spec.query_code)
    result: ClientError = cls(error.error_response(), operation_name)
    return result
