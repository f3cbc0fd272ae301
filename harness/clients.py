"""Client construction for the harness: :class:`flowgate.reference.clients.ClientSettings`, re-exported.

The factory lives in ``reference/`` because the worker makes its clients with it and the
reference never imports the harness (``reference <- harness <- fixtures/loadtests``). Every
harness module that talks to AWS or LocalStack (``fixtures/aws.py``, the gate, the baseline,
the load tests) makes its clients here, so timeouts, retries, pool size, region, endpoint and
credentials are resolved in one way.
"""

from __future__ import annotations

from flowgate.reference.clients import LOCAL_CREDENTIALS, LOCAL_REGION, ClientSettings, environment_region

__all__ = ["LOCAL_CREDENTIALS", "LOCAL_REGION", "ClientSettings", "environment_region"]
