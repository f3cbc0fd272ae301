"""Adapter: run the reference worker (``flowgate.reference.worker.main --config FILE``) from the contract's
environment variables, so the reference passes through the same gate as any other language::

    flowgate gate --impl "python -m flowgate.harness.gate.adapters.reference_worker" --profile smoke

It writes the reference's config file from ``FLOWGATE_*`` (short names from the URLs/ARNs;
the reference's bootstrapper adopts the queues the gate created; business failures are forwarded
to the DLQ with ``DeadLetterReason`` = ``BusinessError: ...``), prints
``flowgate-ready {"capabilities": ["replay"], ...}`` and hands over (to ``flowgate.harness.mutants.worker``
when ``FLOWGATE_MUTANT`` names a mutant of the catalog); the worker prints the ready line itself
once its poll threads run (``--ready``). ``FLOWGATE_HANDLER_DELAY_MS`` is applied by the worker's
own fault hook (``flowgate.reference.worker``: a sleep at ``mid_handler``, after decoding and the
idempotency claim, before the effect commits).

Replay mode (``FLOWGATE_MODE=replay``, ``FLOWGATE_REPLAY_ENTITIES=id1,id2,...``): the same config
(written to a temporary directory, never into the shared store directory) is handed to the
worker's replay entry (``--replay-entities``), through the mutant worker too when
``FLOWGATE_MUTANT`` is set; it prints the entities' replayed events as JSON lines on stdout and
exits. No ready line, no AWS client, no handler delay.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def config_from_env(env: dict[str, str]) -> dict[str, Any]:
    queue = env["FLOWGATE_COMMAND_QUEUE_URL"].rstrip("/").rsplit("/", 1)[-1]
    topic = env["FLOWGATE_EVENT_TOPIC_ARN"].rsplit(":", 1)[-1]
    options: dict[str, Any] = {"wait_time_seconds": 1, "business_failures_to_dlq": True}
    if env.get("FLOWGATE_VISIBILITY_TIMEOUT"):
        options["visibility_timeout"] = int(env["FLOWGATE_VISIBILITY_TIMEOUT"])
    if env.get("FLOWGATE_MAX_RECEIVE_COUNT"):
        options["max_receive_count"] = int(env["FLOWGATE_MAX_RECEIVE_COUNT"])
        options["business_max_attempts"] = min(3, options["max_receive_count"])
    # contract v1.2: the queue's native redrive threshold (headroom above the poison threshold); the
    # reference validates redrive > poison threshold, so a phase queue without headroom (the
    # heartbeat phase tests exactly the native redrive) keeps the reference's own default
    redrive = int(env.get("FLOWGATE_REDRIVE_MAX_RECEIVE_COUNT") or 0)
    if redrive > options.get("max_receive_count", 3):
        options["redrive_max_receive_count"] = redrive
    cfg: dict[str, Any] = {
        "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        "domain": "orders",
        "send": {
            queue: [
                "PlaceOrder",
                "AuthorizePayment",
                "ReserveInventory",
                "ConfirmOrder",
                "CancelOrder",
                "GetOrder",
            ]
        },
        "raise": {
            topic: [
                "OrderPlaced",
                "PaymentAuthorized",
                "InventoryReserved",
                "OrderConfirmed",
                "OrderCancelled",
                "OrderState",
            ]
        },
        "listen": [queue],
        "options": options,
    }
    if env.get("FLOWGATE_DEAD_LETTER_QUEUE_URL"):  # the gate's DLQ, whatever its name
        cfg["deadLetterQueues"] = {
            queue: env["FLOWGATE_DEAD_LETTER_QUEUE_URL"].rstrip("/").rsplit("/", 1)[-1]
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


#: the optional contract capabilities this adapter declares on its ready line
CAPABILITIES = ("replay",)


def _worker_main(env: dict[str, str]) -> Callable[[Sequence[str]], int]:
    """``flowgate.reference.worker.main``, or the mutant worker when ``FLOWGATE_MUTANT`` is set."""
    if env.get("FLOWGATE_MUTANT"):  # the shared mutant catalog (harness/mutants): the reference, broken
        from flowgate.harness.mutants.worker import main as mutant_main

        return mutant_main
    from flowgate.reference.worker import main as reference_main

    return reference_main


def replay(env: dict[str, str]) -> int:
    """Replay mode: the config in a temporary directory, then the worker's replay entry."""
    cfg = config_from_env(env)
    entities = ",".join(e.strip() for e in env.get("FLOWGATE_REPLAY_ENTITIES", "").split(",") if e.strip())
    tmp = Path(tempfile.mkdtemp(prefix="flowgate-replay-"))
    try:
        path = tmp / "reference-config.json"
        path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
        return int(_worker_main(env)(["--config", str(path), "--replay-entities", entities]) or 0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    env = dict(os.environ)
    if env.get("FLOWGATE_ENDPOINT_URL") and not env.get("AWS_ENDPOINT_URL"):
        os.environ["AWS_ENDPOINT_URL"] = env["FLOWGATE_ENDPOINT_URL"]
    # contract v1.4: KMS calls go to FLOWGATE_KMS_ENDPOINT_URL when set (botocore reads the
    # service-specific variable itself)
    if env.get("FLOWGATE_KMS_ENDPOINT_URL"):
        os.environ["AWS_ENDPOINT_URL_KMS"] = env["FLOWGATE_KMS_ENDPOINT_URL"]
    if env.get("FLOWGATE_MODE") == "replay":
        return replay(env)
    cfg = config_from_env(env)
    store = Path(env.get("FLOWGATE_IDEMPOTENCY_URL", "file:///tmp")[len("file://") :] or "/tmp")
    path = store / f"reference-config-{env.get('FLOWGATE_INSTANCE_ID', os.getpid())}-{os.getpid()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    worker_main = _worker_main(env)
    ready = {"capabilities": list(CAPABILITIES), "impl": "reference", "config": str(path)}
    return int(worker_main(["--config", str(path), "--ready", f"flowgate-ready {json.dumps(ready)}"]) or 0)


if __name__ == "__main__":
    sys.exit(main())
