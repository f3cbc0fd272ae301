"""Mutants of the simulator (``subject="simulator"``): broken variants of :mod:`flowgate.harness.sim`, killed by the differential tests against LocalStack (``scenarios/test_fidelity.py``).

Each builder returns the ``unittest.mock`` patches that install its bug; its entry in
:data:`MUTANTS` below names it."""

from __future__ import annotations

import logging
from typing import Any
from unittest import mock

from flowgate.harness.mutants.model import (
    FIDELITY_SNS_KMS,
    FIDELITY_WINDOW,
    Mutant,
)

log = logging.getLogger(__name__)


# differential tests against LocalStack
def _sim_fifo_topic_no_dedup() -> list[Any]:
    from flowgate.harness.sim import sns as sim_sns

    orig_deliver = sim_sns.SnsBackend._deliver
    fresh = iter(range(1 << 62))

    def _dedup_key(topic: sim_sns.Topic, group_id: str | None, dedup_id: str) -> str:
        return f"{dedup_id}\x00{next(fresh)}"  # never seen before: the topic drops nothing

    def _deliver(
        self: sim_sns.SnsBackend, topic: sim_sns.Topic, sub: Any, message_id: str, *rest: Any
    ) -> None:
        message, subject, attributes, group_id, dedup_id, sequence, now = rest
        # ... and forwards the publish's own MessageId as the deduplication id, so the subscribed
        # FIFO queue cannot drop the copy either
        forwarded = message_id if topic.fifo else dedup_id
        orig_deliver(
            self, topic, sub, message_id, message, subject, attributes, group_id, forwarded, sequence, now
        )

    return [
        mock.patch.object(sim_sns, "_dedup_key", _dedup_key),
        mock.patch.object(sim_sns.SnsBackend, "_deliver", _deliver),
    ]


def _sim_dedup_window_never_ends() -> list[Any]:
    from flowgate.harness.sim import sns as sim_sns
    from flowgate.harness.sim import sqs as sim_sqs

    # a duplicate id is dropped forever: the 5-minute window of FIFO queues and topics never ends
    return [
        mock.patch.object(sim_sqs, "DEDUP_WINDOW", float("inf")),
        mock.patch.object(sim_sns, "DEDUP_WINDOW", float("inf")),
    ]


def _sim_decrypt_ignores_context() -> list[Any]:
    from flowgate.harness.sim import kms as sim_kms

    def _aad(key_id: str, context: Any) -> bytes:
        return key_id.encode("ascii") + b"\x00"  # the encryption context is not bound

    return [mock.patch.object(sim_kms, "_aad", _aad)]


def _sim_disabled_key_decrypts() -> list[Any]:
    from flowgate.harness.sim import kms as sim_kms

    orig_decrypt = sim_kms.KmsBackend.decrypt

    def decrypt(self: sim_kms.KmsBackend, blob: bytes, context: Any, key_ref: str | None) -> Any:
        states = {key_id: key.state for key_id, key in self.keys.items()}
        for key in self.keys.values():
            key.state = "Enabled"  # Decrypt does not look at the key's state
        try:
            return orig_decrypt(self, blob, context, key_ref)
        finally:
            for key_id, state in states.items():
                self.keys[key_id].state = state

    return [mock.patch.object(sim_kms.KmsBackend, "decrypt", decrypt)]


#: this module's mutants (aggregated, in this order, by :data:`flowgate.harness.mutants.catalog.MUTANTS`)
MUTANTS: tuple[Mutant, ...] = (
    # the simulator's own mutants: killed by the differential test against LocalStack
    Mutant(
        "sim-fifo-topic-no-dedup",
        "the simulated SNS FIFO topic does not deduplicate and forwards each publish's own "
        "MessageId as MessageDeduplicationId: a duplicate publish reaches the subscribed FIFO queue",
        (),
        ("scenario:simulator-divergence",),
        _sim_fifo_topic_no_dedup,
        scenarios=(FIDELITY_SNS_KMS,),
        subject="simulator",
    ),
    Mutant(
        "sim-dedup-window-never-ends",
        "the simulated FIFO queues and topics never end the 5-minute deduplication window: the "
        "same id after 300 s is still dropped",
        (),
        ("scenario:simulator-divergence",),
        _sim_dedup_window_never_ends,
        scenarios=(FIDELITY_WINDOW,),
        subject="simulator",
    ),
    Mutant(
        "sim-decrypt-ignores-context",
        "the simulated KMS does not bind the encryption context: Decrypt with a wrong or missing "
        "context returns the data key",
        (),
        ("scenario:simulator-divergence",),
        _sim_decrypt_ignores_context,
        scenarios=(FIDELITY_SNS_KMS,),
        subject="simulator",
    ),
    Mutant(
        "sim-disabled-key-decrypts",
        "the simulated KMS Decrypt ignores the key's state: a disabled key (or one pending "
        "deletion) still decrypts",
        (),
        ("scenario:simulator-divergence",),
        _sim_disabled_key_decrypts,
        scenarios=(FIDELITY_SNS_KMS,),
        subject="simulator",
    ),
)
