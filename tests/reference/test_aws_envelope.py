"""The envelope contract against LocalStack's real KMS (context enforced by KMS itself)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from test_envelope import EnvelopeContract

from reference.envelope import KmsEnvelopeCipher

pytestmark = pytest.mark.localstack


class TestEnvelopeWithLocalStackKms(EnvelopeContract):
    __test__ = True
    other_key: str

    @pytest.fixture(autouse=True)
    def _keys(self, aws: SimpleNamespace, kms_key: str) -> None:
        self.aws = aws
        self.key = kms_key
        if not hasattr(type(self), "other_key"):
            type(self).other_key = aws.kms.create_key(Description="flowgate other")["KeyMetadata"]["Arn"]

    def make(self) -> tuple[KmsEnvelopeCipher, KmsEnvelopeCipher]:
        return KmsEnvelopeCipher(self.aws.kms, self.key), KmsEnvelopeCipher(self.aws.kms, self.other_key)
