"""The randomness seam (``flowgate.reference.hooks.Randomness``): the production default is the OS CSPRNG,
every random draw of the reference goes through the seam, and a non-cryptographic source is never
silent (the simulator's seeded source: tests/simulation/test_randomness.py)."""

from __future__ import annotations

import base64
import inspect
import json
import logging

import pytest
from flowgate_reference_kms import FakeKms

import flowgate.reference
from flowgate.reference.domain.orders import PlaceOrder
from flowgate.reference.envelope import KmsEnvelopeCipher, MessageBinding
from flowgate.reference.hooks import SYSTEM_RANDOMNESS, Randomness, SystemRandomness
from flowgate.reference.messages import new_command

B = MessageBinding("msg-1", "orders.fifo", "order-1", "PlaceOrder")
KEY = "arn:k/one"


def _nonce(sealed: str) -> bytes:
    return base64.b64decode(json.loads(base64.b64decode(sealed))["Nonce"])


class _Counting:
    """A cryptographic source that records its calls (what the reference asks for)."""

    cryptographic = True

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def token_bytes(self, n: int) -> bytes:
        self.calls.append(("token_bytes", n))
        return bytes(range(n))

    def randbits(self, k: int) -> int:
        self.calls.append(("randbits", k))
        return 7

    def uuid4(self) -> str:
        self.calls.append(("uuid4", 0))
        return "00000000-0000-4000-8000-000000000001"


class _Predictable(_Counting):
    cryptographic = False


def test_the_production_default_is_the_os_csprng() -> None:
    assert isinstance(SYSTEM_RANDOMNESS, SystemRandomness)
    assert SYSTEM_RANDOMNESS.cryptographic is True
    cipher = KmsEnvelopeCipher(FakeKms(KEY), KEY)
    assert cipher.randomness is SYSTEM_RANDOMNESS
    for fn in (KmsEnvelopeCipher.__init__, new_command):
        assert inspect.signature(fn).parameters["randomness"].default is SYSTEM_RANDOMNESS
    # two seals never share a nonce (12 bytes from os.urandom)
    assert _nonce(cipher.seal("{}", B)) != _nonce(cipher.seal("{}", B))


def test_the_envelope_draws_its_nonce_through_the_seam() -> None:
    source = _Counting()
    sealed = KmsEnvelopeCipher(FakeKms(KEY), KEY, randomness=source).seal("{}", B)
    assert source.calls == [("token_bytes", 12)]
    assert _nonce(sealed) == bytes(range(12))


def test_a_fresh_command_id_is_drawn_through_the_seam() -> None:
    source = _Counting()
    command = new_command(PlaceOrder("C-1", "SKU-1", 1, 100), "order-1", randomness=source)
    assert command.event_id == "00000000-0000-4000-8000-000000000001"
    assert source.calls == [("uuid4", 0)]
    given = new_command(PlaceOrder("C-1", "SKU-1", 1, 100), "order-1", event_id="e-1", randomness=source)
    assert given.event_id == "e-1"
    assert len(source.calls) == 1  # a given id draws nothing


def test_a_non_cryptographic_source_is_never_silent(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flowgate.reference.envelope"):
        KmsEnvelopeCipher(FakeKms(KEY), KEY)
        assert not caplog.records
        KmsEnvelopeCipher(FakeKms(KEY), KEY, randomness=_Predictable())
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "non-cryptographic" in caplog.records[0].getMessage()


def test_the_reference_ships_no_seeded_source_and_no_option_selects_one() -> None:
    """Only code that builds a runtime can pass a source; nothing in the reference reads one
    from configuration, and no source in the reference is non-cryptographic."""
    import pkgutil

    for info in pkgutil.walk_packages(flowgate.reference.__path__, "flowgate.reference."):
        module = __import__(info.name, fromlist=["_"])
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and obj.__module__ == info.name and hasattr(obj, "cryptographic"):
                assert obj.cryptographic is True or obj is Randomness, f"{info.name}.{name}"
    from flowgate.reference.config import BusOptions

    assert not any("random" in f for f in BusOptions.__dataclass_fields__)
