"""The one client factory (reference/clients.py, re-exported by harness/clients.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flowgate.harness.clients import ClientSettings

ROOT = Path(__file__).resolve().parents[2]
#: making a client or session anywhere but the factory
_MAKES_CLIENTS = re.compile(r"boto3\.(client|resource)\(|boto3\.(session\.)?Session\(|\.create_client\(")


def test_no_product_module_makes_boto3_clients_but_the_factory() -> None:
    offenders = []
    for folder in ("reference", "harness", "fixtures", "loadtests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "reference" / "clients.py":
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if _MAKES_CLIENTS.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "make clients with flowgate.harness.clients.ClientSettings:\n" + "\n".join(
        offenders
    )


def test_the_factory_file_itself_is_seen_by_the_scan() -> None:
    """The pattern finds what it must find (else the scan above passes vacuously)."""
    assert _MAKES_CLIENTS.search((ROOT / "reference" / "clients.py").read_text(encoding="utf-8"))


def test_local_endpoint_gets_static_credentials_and_a_region(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    settings = ClientSettings.local("http://127.0.0.1:4566", max_pool_connections=7)
    assert settings.credentials == ("test", "test")
    assert settings.region == "us-east-1"
    sqs = settings.client("sqs")
    assert sqs.meta.endpoint_url == "http://127.0.0.1:4566"
    assert sqs.meta.config.max_pool_connections == 7
    assert sqs.meta.config.connect_timeout == 5.0
    assert sqs.meta.config.read_timeout == 30.0
    assert sqs.meta.config.retries == {"total_max_attempts": 4, "mode": "standard"}  # botocore: 3 retries
    env = settings.child_env({})
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("test", "test")


def test_environment_backend_uses_the_credential_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--backend aws``: no endpoint, no static credentials, the environment's region."""
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDCHAIN")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "chain-secret")
    settings = ClientSettings.for_endpoint(None)
    assert settings.endpoint_url is None
    assert settings.credentials is None
    sqs = settings.client("sqs")
    assert sqs.meta.region_name == "eu-west-1"
    assert sqs.meta.endpoint_url == "https://sqs.eu-west-1.amazonaws.com"
    assert settings.session().get_credentials().access_key == "AKIDCHAIN"
    env = settings.child_env({"PATH": "/bin"})
    assert "AWS_ENDPOINT_URL" not in env
    assert "AWS_ACCESS_KEY_ID" not in env
    assert env["AWS_REGION"] == "eu-west-1"


def test_overrides_change_one_option() -> None:
    settings = ClientSettings.local("http://127.0.0.1:4566")
    kms = settings.client("kms", retries={"mode": "standard", "max_attempts": 2}, read_timeout=10)
    assert kms.meta.config.read_timeout == 10
    assert kms.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert kms.meta.config.connect_timeout == 5.0
