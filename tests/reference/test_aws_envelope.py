"""The envelope contract against LocalStack's real KMS (context enforced by KMS itself)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from test_envelope import PLAIN, B, EnvelopeContract

from flowgate.reference.config import BusOptions
from flowgate.reference.envelope import KmsEnvelopeCipher, parse_envelope

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


class TestCachingEnvelopeWithLocalStackKms(TestEnvelopeWithLocalStackKms):
    """The same contract with the data-key cache on: LocalStack's KMS enforces the destination
    context, and a consumer without a cache opens what the caching one sealed."""

    def make(self) -> tuple[KmsEnvelopeCipher, KmsEnvelopeCipher]:
        limits = BusOptions(data_key_cache=True).data_key_cache_limits()
        return (
            KmsEnvelopeCipher(self.aws.kms, self.key, cache_limits=limits),
            KmsEnvelopeCipher(self.aws.kms, self.other_key, cache_limits=limits),
        )

    def test_a_cacheless_consumer_opens_what_the_cache_sealed(self) -> None:
        cipher, _ = self.make()
        sealed = [cipher.seal(PLAIN, B) for _ in range(3)]
        assert len({parse_envelope(s)["EncryptedDataKey"] for s in sealed}) == 1
        plain = KmsEnvelopeCipher(self.aws.kms, self.key)
        assert all(self.open(plain, s) == PLAIN for s in sealed)
