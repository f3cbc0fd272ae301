"""The one place boto3 clients are made: timeouts, retries, pool size, region and endpoint.

:class:`ClientSettings` resolves the region, the endpoint and the credentials once, then makes
every client of a process with the same botocore ``Config``. The worker (``flowgate.reference.worker``)
uses it; the harness re-exports it (``flowgate.harness.clients``) for the fixtures, the gate, the
baseline and the load tests, so that reference code never imports the harness.

Two backends:

* **an explicit endpoint** (LocalStack, or any SQS/SNS-compatible endpoint):
  ``ClientSettings.local(url)``: every client goes to ``url``; static credentials from
  ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (``test``/``test`` when unset, what LocalStack
  accepts); region from the environment or ``us-east-1``.
* **the environment's AWS** (real AWS, or what ``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_<SERVICE>``
  point botocore at): ``ClientSettings.from_environment()``: no ``endpoint_url`` is passed, so
  botocore resolves the endpoint per service itself, and the credentials come from boto3's
  normal chain (environment, profile, SSO, instance role); the region is the explicit one,
  ``AWS_REGION``/``AWS_DEFAULT_REGION``, or the profile's (boto3 reads it), else ``us-east-1``
  (:meth:`ClientSettings.resolved_region` says which).

Defaults: connect timeout 5 s (a dead endpoint fails fast), read timeout 30 s (above the 20 s
long poll), botocore's ``standard`` retry mode with 3 attempts, a pool of 50 connections.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.config import Config

#: what LocalStack accepts as credentials when the environment sets none
LOCAL_CREDENTIALS = ("test", "test")
#: the region when nothing names one and an explicit endpoint is used
LOCAL_REGION = "us-east-1"


def environment_region() -> str | None:
    """``AWS_REGION``, then ``AWS_DEFAULT_REGION`` (None when neither is set)."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


@dataclass(frozen=True)
class ClientSettings:
    """How every boto3 client of a process is made (immutable; :meth:`with_` derives variants).

    ``endpoint_url`` None means botocore's own endpoint resolution (real AWS unless
    ``AWS_ENDPOINT_URL*`` says otherwise); ``credentials`` None means boto3's credential chain;
    ``region`` None means the profile's region (boto3 resolves it when the session is made).
    """

    region: str | None = None
    endpoint_url: str | None = None
    credentials: tuple[str, str] | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 3
    retry_mode: str = "standard"
    max_pool_connections: int = 50
    #: off in the loaded worker: every request is built by this code and the service validates
    #: anyway (the client-side check cost ~7 % of a loaded worker's CPU)
    parameter_validation: bool = True

    @classmethod
    def local(cls, endpoint_url: str, *, region: str | None = None, **kw: Any) -> ClientSettings:
        """Every client bound to ``endpoint_url`` with static credentials (LocalStack)."""
        creds = (
            os.environ.get("AWS_ACCESS_KEY_ID", LOCAL_CREDENTIALS[0]),
            os.environ.get("AWS_SECRET_ACCESS_KEY", LOCAL_CREDENTIALS[1]),
        )
        return cls(
            region=region or environment_region() or LOCAL_REGION,
            endpoint_url=endpoint_url,
            credentials=creds,
            **kw,
        )

    @classmethod
    def from_environment(cls, *, region: str | None = None, **kw: Any) -> ClientSettings:
        """boto3's credential chain and endpoint resolution; the region given, else the environment's."""
        return cls(region=region or environment_region(), **kw)

    @classmethod
    def for_endpoint(
        cls, endpoint_url: str | None, *, region: str | None = None, **kw: Any
    ) -> ClientSettings:
        """:meth:`local` for an endpoint, :meth:`from_environment` for None."""
        if endpoint_url:
            return cls.local(endpoint_url, region=region, **kw)
        return cls.from_environment(region=region, **kw)

    def with_(self, **changes: Any) -> ClientSettings:
        """These settings with some fields changed (e.g. a larger pool for one process)."""
        return replace(self, **changes)

    def config(self, **overrides: Any) -> Config:
        """The botocore ``Config`` of these settings; ``overrides`` change single options."""
        from botocore.config import Config

        options: dict[str, Any] = {
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "retries": {"max_attempts": self.max_attempts, "mode": self.retry_mode},
            "max_pool_connections": self.max_pool_connections,
            "parameter_validation": self.parameter_validation,
        }
        options.update(overrides)
        return Config(**options)

    def session(self) -> Any:
        """A new boto3 session (sessions are not shared between threads; clients are)."""
        import boto3

        args: dict[str, Any] = {}
        if self.region:
            args["region_name"] = self.region
        if self.credentials is not None:
            args["aws_access_key_id"], args["aws_secret_access_key"] = self.credentials
        session = boto3.session.Session(**args)
        if session.region_name is None:  # nothing names a region, not even the profile
            session = boto3.session.Session(**args, region_name=LOCAL_REGION)
        return session

    def client(self, service: str, *, session: Any = None, **config_overrides: Any) -> Any:
        """One client of ``service`` (a new session unless one is given)."""
        session = session or self.session()
        kwargs: dict[str, Any] = {"config": self.config(**config_overrides)}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        return session.client(service, **kwargs)

    def clients(self, services: Iterable[str]) -> dict[str, Any]:
        """One client per service, all from one session."""
        session = self.session()
        return {name: self.client(name, session=session) for name in services}

    def resolved_region(self) -> str:
        """The region the clients use (the profile's when none was given)."""
        return self.region or str(self.session().region_name)

    def child_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment for a subprocess that should make the same clients (a worker).

        With an explicit endpoint: ``AWS_ENDPOINT_URL``, the static credentials and the region
        are set. Without one: the environment is passed on as it is (the child resolves the
        same credential chain), plus ``AWS_REGION`` when a region was named.
        """
        env = dict(os.environ if base is None else base)
        if self.region:
            env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = self.region
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
            if self.credentials is not None:
                env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = self.credentials
        return env
