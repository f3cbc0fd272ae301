"""Adapter: run the reference worker (``reference.worker.main --config FILE``) from the contract's
environment variables, so the reference passes through the same gate as any other language::

    flowgate gate --impl "python -m harness.gate.adapters.reference_worker" --profile smoke

It writes the reference's config file from ``FLOWGATE_*`` (short names from the URLs/ARNs;
the reference's bootstrapper adopts the queues the gate created), prints ``flowgate-ready`` and
hands over (to ``harness.mutants.worker`` when ``FLOWGATE_MUTANT`` names a mutant of the
catalog). ``FLOWGATE_HANDLER_DELAY_MS`` is applied by wrapping the order saga's ``decide``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def config_from_env(env: dict[str, str]) -> dict[str, Any]:
    queue = env["FLOWGATE_COMMAND_QUEUE_URL"].rstrip("/").rsplit("/", 1)[-1]
    topic = env["FLOWGATE_EVENT_TOPIC_ARN"].rsplit(":", 1)[-1]
    options: dict[str, Any] = {"wait_time_seconds": 1}
    if env.get("FLOWGATE_VISIBILITY_TIMEOUT"):
        options["visibility_timeout"] = int(env["FLOWGATE_VISIBILITY_TIMEOUT"])
    if env.get("FLOWGATE_MAX_RECEIVE_COUNT"):
        options["max_receive_count"] = int(env["FLOWGATE_MAX_RECEIVE_COUNT"])
        options["business_max_attempts"] = min(3, options["max_receive_count"])
    cfg: dict[str, Any] = {
        "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        "domain": "orders",
        "send": {
            queue: ["PlaceOrder", "AuthorizePayment", "ReserveInventory", "ConfirmOrder", "CancelOrder"]
        },
        "raise": {
            topic: [
                "OrderPlaced",
                "PaymentAuthorized",
                "InventoryReserved",
                "OrderConfirmed",
                "OrderCancelled",
            ]
        },
        "listen": [queue],
        "options": options,
    }
    if env.get("FLOWGATE_KMS_KEY_ID"):
        cfg["encryption"] = {"kmsKeyId": env["FLOWGATE_KMS_KEY_ID"]}
    url = env.get("FLOWGATE_IDEMPOTENCY_URL", "")
    if url.startswith("file://"):
        store = Path(url[len("file://") :])
        store.mkdir(parents=True, exist_ok=True)
        cfg["idempotency"] = {"url": f"sqlite:///{store / 'reference.db'}"}
    elif url and not url.startswith("memory"):
        cfg["idempotency"] = {"url": url}
    return cfg


def _install_delay(delay_ms: int) -> None:
    if delay_ms <= 0:
        return
    from reference.domain import orders

    original = orders.OrderSaga.decide

    def slow_decide(self: Any, state: Any, command: Any) -> Any:
        time.sleep(delay_ms / 1000)
        return original(self, state, command)

    orders.OrderSaga.decide = slow_decide  # type: ignore[method-assign]


def main() -> int:
    env = dict(os.environ)
    if env.get("FLOWGATE_ENDPOINT_URL") and not env.get("AWS_ENDPOINT_URL"):
        os.environ["AWS_ENDPOINT_URL"] = env["FLOWGATE_ENDPOINT_URL"]
    cfg = config_from_env(env)
    store = Path(env.get("FLOWGATE_IDEMPOTENCY_URL", "file:///tmp")[len("file://") :] or "/tmp")
    path = store / f"reference-config-{env.get('FLOWGATE_INSTANCE_ID', os.getpid())}-{os.getpid()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    _install_delay(int(env.get("FLOWGATE_HANDLER_DELAY_MS", "0") or 0))
    if env.get("FLOWGATE_MUTANT"):  # the shared mutant catalog (harness/mutants): the reference, broken
        from harness.mutants.worker import main as worker_main
    else:
        from reference.worker import main as worker_main

    print(f"flowgate-ready {json.dumps({'impl': 'reference', 'config': str(path)})}", flush=True)
    return int(worker_main(["--config", str(path)]) or 0)


if __name__ == "__main__":
    sys.exit(main())
