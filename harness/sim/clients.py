"""boto3-shaped clients over the simulated backends.

Method names, keyword-only PascalCase parameters, response dicts and ClientErrors follow boto3.
Every call: counts itself (``SimAws.calls``), applies what is due at the current virtual time,
runs, converts a :class:`SimError` into the modeled botocore exception, adds
``ResponseMetadata`` and reports to the tap.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from botocore.errorfactory import BaseClientExceptions
from botocore.exceptions import ClientError, EndpointConnectionError

from . import errors as E
from ._core import SimCore
from .errors import SimError, service_exceptions, to_client_error
from .kms import KmsBackend
from .sns import SnsBackend, check_topic_attribute
from .sqs import SqsBackend

P = ParamSpec("P")
C = TypeVar("C", bound="_Client")
Response = dict[str, Any]


@dataclass(frozen=True)
class ClientMeta:
    service_name: str
    region_name: str
    endpoint_url: str = "sim://"


def operation(
    name: str,
) -> Callable[[Callable[Concatenate[C, P], Response]], Callable[Concatenate[C, P], Response]]:
    def decorate(fn: Callable[Concatenate[C, P], Response]) -> Callable[Concatenate[C, P], Response]:
        @functools.wraps(fn)
        def wrapper(self: C, /, *args: P.args, **kwargs: P.kwargs) -> Response:
            if args:
                raise TypeError(f"{fn.__name__}() only accepts keyword arguments.")
            core = self._core
            core.calls[(self.service, name)] += 1
            if self.service in core.unreachable and not self.outage_exempt:
                # the request never reaches the service: nothing changes, the tap sees nothing
                raise EndpointConnectionError(endpoint_url=f"https://{self.service}.{core.region}.sim")
            self._tick()
            try:
                response = fn(self, *args, **kwargs)
            except SimError as exc:
                error = to_client_error(self.service, exc, name)
                core.tap.after_call(self.service, name, dict(kwargs), None, error)
                raise error from None
            response["ResponseMetadata"] = {
                "RequestId": core.request_id(),
                "HTTPStatusCode": 200,
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            }
            core.tap.after_call(self.service, name, dict(kwargs), response, None)
            return response

        return wrapper

    return decorate


class _Client:
    service = ""

    def __init__(self, core: SimCore, sqs: SqsBackend) -> None:
        self._core = core
        self._sqs = sqs
        self.meta = ClientMeta(self.service, core.region)
        #: True for the harness's own clients: they reach the service during a simulated outage
        self.outage_exempt = False

    @property
    def exceptions(self) -> BaseClientExceptions:
        return service_exceptions(self.service)

    def _tick(self) -> None:
        self._sqs.tick()

    def can_paginate(self, operation_name: str) -> bool:
        return False

    def close(self) -> None:
        return None


def _batch_failure(entry_id: str, exc: SimError, sender_fault: bool) -> dict[str, Any]:
    return {"Id": entry_id, "SenderFault": sender_fault, "Code": exc.batch_code, "Message": exc.message}


class SqsClient(_Client):
    service = "sqs"

    @operation("CreateQueue")
    def create_queue(
        self,
        *,
        QueueName: str,
        Attributes: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Response:
        return {"QueueUrl": self._sqs.create_queue(QueueName, Attributes, tags)}

    @operation("GetQueueUrl")
    def get_queue_url(self, *, QueueName: str, QueueOwnerAWSAccountId: str | None = None) -> Response:
        queue = self._sqs.queues.get(QueueName)
        if queue is None:
            raise SimError(E.SQS_NON_EXISTENT_QUEUE, "The specified queue does not exist.")
        return {"QueueUrl": queue.url}

    @operation("ListQueues")
    def list_queues(
        self,
        *,
        QueueNamePrefix: str | None = None,
        NextToken: str | None = None,
        MaxResults: int | None = None,
    ) -> Response:
        urls = [q.url for q in self._sqs.queues.values() if q.name.startswith(QueueNamePrefix or "")]
        if MaxResults is not None:
            urls = urls[:MaxResults]
        return {"QueueUrls": urls} if urls else {}

    @operation("DeleteQueue")
    def delete_queue(self, *, QueueUrl: str) -> Response:
        self._sqs.delete_queue(self._sqs.resolve_url(QueueUrl))
        return {}

    @operation("PurgeQueue")
    def purge_queue(self, *, QueueUrl: str) -> Response:
        self._sqs.purge_queue(self._sqs.resolve_url(QueueUrl))
        return {}

    @operation("GetQueueAttributes")
    def get_queue_attributes(self, *, QueueUrl: str, AttributeNames: Sequence[str] | None = None) -> Response:
        attrs = self._sqs.get_queue_attributes(self._sqs.resolve_url(QueueUrl), AttributeNames)
        return {"Attributes": attrs} if attrs else {}

    @operation("SetQueueAttributes")
    def set_queue_attributes(self, *, QueueUrl: str, Attributes: Mapping[str, str]) -> Response:
        self._sqs.set_queue_attributes(self._sqs.resolve_url(QueueUrl), Attributes)
        return {}

    @operation("SendMessage")
    def send_message(
        self,
        *,
        QueueUrl: str,
        MessageBody: str,
        DelaySeconds: int | None = None,
        MessageAttributes: Mapping[str, Mapping[str, Any]] | None = None,
        MessageDeduplicationId: str | None = None,
        MessageGroupId: str | None = None,
    ) -> Response:
        queue = self._sqs.resolve_url(QueueUrl)
        return self._sqs.send(
            queue,
            MessageBody,
            delay=DelaySeconds,
            attributes=MessageAttributes,
            dedup_id=MessageDeduplicationId,
            group_id=MessageGroupId,
        )

    @operation("SendMessageBatch")
    def send_message_batch(self, *, QueueUrl: str, Entries: Sequence[Mapping[str, Any]]) -> Response:
        queue = self._sqs.resolve_url(QueueUrl)
        self._sqs.check_batch(Entries)
        total = sum(
            len(str(e.get("MessageBody", "")).encode("utf-8"))
            + sum(
                len(str(k)) + sum(len(str(v)) for v in a.values())
                for k, a in (e.get("MessageAttributes") or {}).items()
            )
            for e in Entries
        )
        if total > 1_048_576:
            raise SimError(
                E.SQS_BATCH_TOO_LONG,
                f"Batch requests cannot be longer than 1048576 bytes. You have sent {total} bytes.",
            )
        successful: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for entry in Entries:
            try:
                result = self._sqs.send(
                    queue,
                    entry.get("MessageBody"),
                    delay=entry.get("DelaySeconds"),
                    attributes=entry.get("MessageAttributes"),
                    dedup_id=entry.get("MessageDeduplicationId"),
                    group_id=entry.get("MessageGroupId"),
                )
            except SimError as exc:
                failed.append(_batch_failure(entry["Id"], exc, True))
            else:
                successful.append({"Id": entry["Id"], **result})
        response: Response = {}
        if successful:
            response["Successful"] = successful
        if failed:
            response["Failed"] = failed
        return response

    @operation("ReceiveMessage")
    def receive_message(
        self,
        *,
        QueueUrl: str,
        AttributeNames: Sequence[str] | None = None,
        MessageSystemAttributeNames: Sequence[str] | None = None,
        MessageAttributeNames: Sequence[str] | None = None,
        MaxNumberOfMessages: int | None = None,
        VisibilityTimeout: int | None = None,
        WaitTimeSeconds: int | None = None,
        ReceiveRequestAttemptId: str | None = None,
    ) -> Response:
        queue = self._sqs.resolve_url(QueueUrl)
        return self._sqs.receive(
            queue,
            max_number=MaxNumberOfMessages,
            visibility=VisibilityTimeout,
            wait=WaitTimeSeconds,
            attribute_names=list(MessageSystemAttributeNames or []) + list(AttributeNames or []),
            message_attribute_names=MessageAttributeNames,
        )

    @operation("DeleteMessage")
    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> Response:
        self._sqs.delete(self._sqs.resolve_url(QueueUrl), ReceiptHandle)
        return {}

    @operation("DeleteMessageBatch")
    def delete_message_batch(self, *, QueueUrl: str, Entries: Sequence[Mapping[str, Any]]) -> Response:
        queue = self._sqs.resolve_url(QueueUrl)
        self._sqs.check_batch(Entries)
        successful: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for entry in Entries:
            try:
                self._sqs.delete(queue, entry["ReceiptHandle"])
            except SimError as exc:
                failed.append(_batch_failure(entry["Id"], exc, False))
            else:
                successful.append({"Id": entry["Id"]})
        return {"Successful": successful, "Failed": failed}

    @operation("ChangeMessageVisibility")
    def change_message_visibility(
        self, *, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int
    ) -> Response:
        self._sqs.change_visibility(self._sqs.resolve_url(QueueUrl), ReceiptHandle, VisibilityTimeout)
        return {}

    @operation("ChangeMessageVisibilityBatch")
    def change_message_visibility_batch(
        self, *, QueueUrl: str, Entries: Sequence[Mapping[str, Any]]
    ) -> Response:
        queue = self._sqs.resolve_url(QueueUrl)
        self._sqs.check_batch(Entries)
        successful: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for entry in Entries:
            try:
                self._sqs.change_visibility(queue, entry["ReceiptHandle"], int(entry["VisibilityTimeout"]))
            except SimError as exc:
                failed.append(_batch_failure(entry["Id"], exc, False))
            else:
                successful.append({"Id": entry["Id"]})
        return {"Successful": successful, "Failed": failed}


class SnsClient(_Client):
    service = "sns"

    def __init__(self, core: SimCore, sqs: SqsBackend, sns: SnsBackend) -> None:
        super().__init__(core, sqs)
        self._sns = sns

    @operation("CreateTopic")
    def create_topic(
        self, *, Name: str, Attributes: Mapping[str, str] | None = None, Tags: Sequence[Any] | None = None
    ) -> Response:
        return {"TopicArn": self._sns.create_topic(Name, Attributes)}

    @operation("DeleteTopic")
    def delete_topic(self, *, TopicArn: str) -> Response:
        self._sns.topics.pop(TopicArn, None)
        return {}

    @operation("ListTopics")
    def list_topics(self, *, NextToken: str | None = None) -> Response:
        return {"Topics": [{"TopicArn": arn} for arn in self._sns.topics]}

    @operation("GetTopicAttributes")
    def get_topic_attributes(self, *, TopicArn: str) -> Response:
        return {"Attributes": self._sns.topic_attributes(self._sns.resolve(TopicArn))}

    @operation("SetTopicAttributes")
    def set_topic_attributes(
        self, *, TopicArn: str, AttributeName: str, AttributeValue: str | None = None
    ) -> Response:
        topic = self._sns.resolve(TopicArn)
        if AttributeName == "FifoTopic":
            raise SimError(E.SNS_INVALID_PARAMETER, "Invalid parameter: AttributeName")
        check_topic_attribute(topic.fifo, AttributeName, AttributeValue)
        topic.attributes[AttributeName] = AttributeValue or ""
        return {}

    @operation("Subscribe")
    def subscribe(
        self,
        *,
        TopicArn: str,
        Protocol: str,
        Endpoint: str | None = None,
        Attributes: Mapping[str, str] | None = None,
        ReturnSubscriptionArn: bool = False,
    ) -> Response:
        topic = self._sns.resolve(TopicArn)
        return {"SubscriptionArn": self._sns.subscribe(topic, Protocol, Endpoint, Attributes)}

    @operation("Unsubscribe")
    def unsubscribe(self, *, SubscriptionArn: str) -> Response:
        self._sns.unsubscribe(SubscriptionArn)
        return {}

    @operation("SetSubscriptionAttributes")
    def set_subscription_attributes(
        self, *, SubscriptionArn: str, AttributeName: str, AttributeValue: str | None = None
    ) -> Response:
        sub = self._sns.find_subscription(SubscriptionArn)
        if sub is None:
            raise SimError(E.SNS_NOT_FOUND, "Subscription does not exist")
        if AttributeName != "RawMessageDelivery":
            raise SimError(
                E.SNS_INVALID_PARAMETER,
                f"Invalid parameter: AttributeName Reason: the simulator does not model {AttributeName}",
            )
        sub.attributes[AttributeName] = AttributeValue or ""
        return {}

    @operation("GetSubscriptionAttributes")
    def get_subscription_attributes(self, *, SubscriptionArn: str) -> Response:
        sub = self._sns.find_subscription(SubscriptionArn)
        if sub is None:
            raise SimError(E.SNS_NOT_FOUND, "Subscription does not exist")
        attrs = {
            "SubscriptionArn": sub.arn,
            "TopicArn": sub.topic_arn,
            "Protocol": sub.protocol,
            "Endpoint": sub.endpoint,
            "Owner": self._core.account,
            "PendingConfirmation": "false",
            "ConfirmationWasAuthenticated": "true",
            "RawMessageDelivery": "false",
            **sub.attributes,
        }
        return {"Attributes": attrs}

    @operation("ListSubscriptionsByTopic")
    def list_subscriptions_by_topic(self, *, TopicArn: str, NextToken: str | None = None) -> Response:
        topic = self._sns.resolve(TopicArn)
        return {
            "Subscriptions": [
                {
                    "SubscriptionArn": s.arn,
                    "Owner": self._core.account,
                    "Protocol": s.protocol,
                    "Endpoint": s.endpoint,
                    "TopicArn": s.topic_arn,
                }
                for s in topic.subscriptions.values()
            ]
        }

    @operation("Publish")
    def publish(
        self,
        *,
        Message: str,
        TopicArn: str | None = None,
        TargetArn: str | None = None,
        Subject: str | None = None,
        MessageStructure: str | None = None,
        MessageAttributes: Mapping[str, Mapping[str, Any]] | None = None,
        MessageGroupId: str | None = None,
        MessageDeduplicationId: str | None = None,
    ) -> Response:
        if MessageStructure is not None:
            raise SimError(E.SNS_INVALID_PARAMETER, "Invalid parameter: MessageStructure (not simulated)")
        topic = self._sns.resolve(TopicArn or TargetArn)
        return self._sns.publish(
            topic,
            Message,
            subject=Subject,
            attributes=MessageAttributes,
            group_id=MessageGroupId,
            dedup_id=MessageDeduplicationId,
        )

    @operation("PublishBatch")
    def publish_batch(
        self, *, TopicArn: str, PublishBatchRequestEntries: Sequence[Mapping[str, Any]]
    ) -> Response:
        topic = self._sns.resolve(TopicArn)
        self._sns.check_batch(PublishBatchRequestEntries)
        # an invalid entry (no group id on a FIFO topic, no dedup id without content-based dedup,
        # a bad attribute, an empty message) fails the whole request before anything is published,
        # as AWS (LocalStack's AWS-validated snapshot of PublishBatch without MessageGroupId) and
        # LocalStack do; ``Failed`` is left for errors while publishing
        for entry in PublishBatchRequestEntries:
            self._sns.check_publish(
                topic,
                entry.get("Message"),
                entry.get("MessageAttributes"),
                entry.get("MessageGroupId"),
                entry.get("MessageDeduplicationId"),
            )
        successful: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for entry in PublishBatchRequestEntries:
            try:
                result = self._sns.publish(
                    topic,
                    entry.get("Message"),
                    subject=entry.get("Subject"),
                    attributes=entry.get("MessageAttributes"),
                    group_id=entry.get("MessageGroupId"),
                    dedup_id=entry.get("MessageDeduplicationId"),
                )
            except SimError as exc:
                failed.append(
                    {"Id": entry["Id"], "Code": exc.code, "Message": exc.message, "SenderFault": True}
                )
            else:
                successful.append({"Id": entry["Id"], **result})
        return {"Successful": successful, "Failed": failed}


class KmsClient(_Client):
    service = "kms"

    def __init__(self, core: SimCore, sqs: SqsBackend, kms: KmsBackend) -> None:
        super().__init__(core, sqs)
        self._kms = kms

    @operation("CreateKey")
    def create_key(
        self,
        *,
        Description: str = "",
        KeyUsage: str = "ENCRYPT_DECRYPT",
        KeySpec: str = "SYMMETRIC_DEFAULT",
        Tags: Sequence[Any] | None = None,
    ) -> Response:
        if KeyUsage != "ENCRYPT_DECRYPT" or KeySpec != "SYMMETRIC_DEFAULT":
            raise SimError(
                E.KMS_VALIDATION, "the simulator only models SYMMETRIC_DEFAULT ENCRYPT_DECRYPT keys"
            )
        return {"KeyMetadata": self._kms.create_key(Description).metadata(self._core.account)}

    @operation("DescribeKey")
    def describe_key(self, *, KeyId: str) -> Response:
        return {"KeyMetadata": self._kms.resolve(KeyId, usable=False).metadata(self._core.account)}

    @operation("CreateAlias")
    def create_alias(self, *, AliasName: str, TargetKeyId: str) -> Response:
        self._kms.create_alias(AliasName, TargetKeyId)
        return {}

    @operation("DeleteAlias")
    def delete_alias(self, *, AliasName: str) -> Response:
        if self._kms.aliases.pop(AliasName, None) is None:
            raise SimError(E.KMS_NOT_FOUND, f"Alias {AliasName} is not found.")
        return {}

    @operation("ListAliases")
    def list_aliases(self, *, KeyId: str | None = None) -> Response:
        return {
            "Aliases": [
                {"AliasName": name, "AliasArn": self._kms._arn(name), "TargetKeyId": key_id}
                for name, key_id in self._kms.aliases.items()
                if KeyId is None or KeyId == key_id
            ]
        }

    @operation("DisableKey")
    def disable_key(self, *, KeyId: str) -> Response:
        self._kms.switchable(KeyId).state = "Disabled"
        return {}

    @operation("EnableKey")
    def enable_key(self, *, KeyId: str) -> Response:
        self._kms.switchable(KeyId).state = "Enabled"
        return {}

    @operation("ScheduleKeyDeletion")
    def schedule_key_deletion(self, *, KeyId: str, PendingWindowInDays: int = 30) -> Response:
        key = self._kms.resolve(KeyId, usable=False)
        key.state = "PendingDeletion"
        return {"KeyId": key.arn, "KeyState": key.state, "PendingWindowInDays": PendingWindowInDays}

    @operation("Encrypt")
    def encrypt(
        self,
        *,
        KeyId: str,
        Plaintext: bytes,
        EncryptionContext: Mapping[str, str] | None = None,
        EncryptionAlgorithm: str = "SYMMETRIC_DEFAULT",
    ) -> Response:
        key = self._kms.resolve(KeyId)
        blob = self._kms.encrypt(key, bytes(Plaintext), EncryptionContext)
        return {"CiphertextBlob": blob, "KeyId": key.arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}

    @operation("Decrypt")
    def decrypt(
        self,
        *,
        CiphertextBlob: bytes,
        EncryptionContext: Mapping[str, str] | None = None,
        KeyId: str | None = None,
        EncryptionAlgorithm: str = "SYMMETRIC_DEFAULT",
    ) -> Response:
        key, plaintext = self._kms.decrypt(bytes(CiphertextBlob), EncryptionContext, KeyId)
        return {"KeyId": key.arn, "Plaintext": plaintext, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}

    @operation("GenerateDataKey")
    def generate_data_key(
        self,
        *,
        KeyId: str,
        EncryptionContext: Mapping[str, str] | None = None,
        NumberOfBytes: int | None = None,
        KeySpec: str | None = None,
    ) -> Response:
        key = self._kms.resolve(KeyId)
        length = self._kms.data_key_length(KeySpec, NumberOfBytes)
        plaintext = self._core.rng.randbytes(length)
        blob = self._kms.encrypt(key, plaintext, EncryptionContext)
        return {"CiphertextBlob": blob, "Plaintext": plaintext, "KeyId": key.arn}

    @operation("GenerateDataKeyWithoutPlaintext")
    def generate_data_key_without_plaintext(
        self,
        *,
        KeyId: str,
        EncryptionContext: Mapping[str, str] | None = None,
        NumberOfBytes: int | None = None,
        KeySpec: str | None = None,
    ) -> Response:
        key = self._kms.resolve(KeyId)
        length = self._kms.data_key_length(KeySpec, NumberOfBytes)
        blob = self._kms.encrypt(key, self._core.rng.randbytes(length), EncryptionContext)
        return {"CiphertextBlob": blob, "KeyId": key.arn}


class StsClient(_Client):
    service = "sts"

    @operation("GetCallerIdentity")
    def get_caller_identity(self) -> Response:
        account = self._core.account
        return {"UserId": account, "Account": account, "Arn": f"arn:aws:iam::{account}:root"}


__all__ = ["ClientError", "KmsClient", "SnsClient", "SqsClient", "StsClient"]
