"""The gate driver: run any executable that implements contract v1 under a seeded workload and
fault schedule, observe it from outside, and judge the history with the shared checkers.

Timeline of one run (``run_gate``)::

    provision topology (uuid-prefixed) + one command queue per phase -> start the TCP proxy the
       main cluster talks through -> start N instances (env vars, wait for "flowgate-ready",
       read the capabilities it declares)
    -> send the plan (commands, late duplicate resends, poison) while the nemesis thread runs the
       fault schedule (SIGKILL + restart, slow-handler windows, then transport outages), the phase
       threads run the heartbeat and shutdown phases on their own queues and instances, and the
       probe thread records events
    -> settle (every acknowledged command has an effect, every poison is in the DLQ and every
       command queue is empty, or no progress for a while, or the profile's timeout)
    -> SIGTERM every instance (must exit 0) -> final probe drain -> read every DLQ -> ``drain`` op
    -> replay runs (if declared) -> checkers -> table, JUnit, Allure -> delete everything created.

Timeouts: the settle loop ends at the first of (all done and no fault/phase thread alive),
(no fault/phase thread alive and no progress for ``max(20 s, (maxReceive + 1) x VT + 10 s,
maxReceive x VT + 20 s)``), ``max(settle_timeout, maxReceive x VT + 30 s)`` (maxReceive = the
redrive policy's; 20 s = SQS's longest receive interval: SQS's own redrive is always waited for). A phase waits for its own orders' effects with its own bound (see
:meth:`Gate._wait_effects`) and returns early when the run is over, so it never holds the settle
loop past ``settle_timeout``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from botocore.exceptions import BotoCoreError, ClientError

from harness import hostile as hostile_catalog
from harness import topology as topo
from harness.checkers import check_all, render_table
from harness.checkers.model import Anomaly, Verdict
from harness.clients import ClientSettings
from harness.gate import catalog, envelope, outdir
from harness.gate.observe import EventMapper, SentCommand
from harness.gate.proxy import OutageProxy
from harness.gate.replay import (
    KNOWN_CAPABILITIES,
    READY_TOKEN,
    REPLAY,
    compare,
    live_events,
    parse_capabilities,
    parse_replay_output,
)
from harness.gate.reporting import write_allure, write_junit
from harness.gate.workload import (
    PROFILES,
    REDRIVE_HEADROOM,
    Fault,
    Plan,
    PlannedCommand,
    PlannedHostile,
    make_plan,
)
from harness.history import History

EXIT_PASS, EXIT_ANOMALY, EXIT_USAGE, EXIT_INFRA = 0, 1, 2, 3
DEFAULT_ENDPOINT = "http://127.0.0.1:4566"
CLIENT = "client-0"
#: ``DeadLetterReason`` codes of contract section 6; any other code is a ``dead-letter-reason`` anomaly.
#: ``BusinessError`` is a valid code, but a command the gate sent is always valid, so such a dead
#: letter of one is judged ``valid-dead-lettered`` by the dead_letter checker.
DEAD_LETTER_REASONS: frozenset[str] = frozenset(
    {
        "DecodeError",
        "UnknownMessageType",
        "MissingAttribute",
        "OversizedMessage",
        "DecryptionError",
        "BusinessError",
        "IdempotencyConflict",
        "HandlerError",
    }
)
#: A replay run must exit within this long (contract section 7).
REPLAY_TIMEOUT = 60.0
#: SQS's longest long poll (``WaitTimeSeconds`` 20): a consumer that polls receives at least this
#: often, so SQS's own redrive of a message happens within redrive maxReceiveCount x VT + this.
RECEIVE_INTERVAL = 20.0
#: A settle longer than this prints a progress line every this many seconds (stderr).
SETTLE_PROGRESS_SECONDS = 15.0
#: No transport outage starts sooner than this after a main instance's ready line (section 9).
OUTAGE_READY_MARGIN = 5.0
#: Faults run by the outage thread (one after another), not by the nemesis thread.
OUTAGE_KINDS = frozenset({"outage", "kms-outage"})
#: seconds between the end of a KMS key outage and the KMS transport outage (v1.4): long enough for
#: a breaker that backs off after the key outage to probe, close and receive again
KMS_TRANSPORT_GAP = 10.0


def reason_code(reason: str) -> str:
    """The code of a ``DeadLetterReason``: the text before the first ``":"`` (section 6)."""
    return reason.split(":", 1)[0].strip()


def via_endpoint(url: str, real: str, endpoint: str) -> str:
    """``url`` with the scheme and host of ``endpoint`` when it is served by ``real`` (same host and
    port), else unchanged: a queue URL an implementation may call directly, routed like its
    endpoint (through the outage proxy)."""
    u, r, e = urlsplit(url), urlsplit(real), urlsplit(endpoint)
    if u.netloc != r.netloc:
        return url
    return urlunsplit((e.scheme, e.netloc, u.path, u.query, u.fragment))


class GateError(RuntimeError):
    """The gate could not run (no backend, provisioning failed): exit code 3, no verdict."""


@dataclass(slots=True)
class GateResult:
    passed: bool
    exit_code: int
    verdicts: list[Verdict]
    table: str
    out_dir: Path
    history_path: Path
    junit_path: Path
    allure_dir: Path
    duration: float
    run_id: str
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Instance:
    index: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    delay_ms: int = 0
    phase: str = ""  # "" = the main cluster; else the phase that owns it (never a nemesis target)
    ready: threading.Event = field(default_factory=threading.Event)
    ready_at: float = 0.0  # time.monotonic() of its ready line
    capabilities: frozenset[str] = frozenset()  # declared on its ready line
    stopping: bool = False  # SIGTERM or SIGKILL sent by the gate
    killed: bool = False
    pump: threading.Thread | None = None


class Cluster:
    """The implementation's processes."""

    def __init__(self, argv: list[str], env: dict[str, str], out_dir: Path, history: History) -> None:
        self.argv, self.env, self.out_dir, self.history = argv, env, out_dir, history
        self.instances: list[Instance] = []
        self.anomalies: list[Anomaly] = []
        self.lock = threading.Lock()
        #: held by a transport outage for its whole cut; the nemesis takes it to start an instance,
        #: so no main instance starts while its endpoint is down
        self.boot_lock = threading.Lock()

    def start(
        self, index: int, delay_ms: int = 0, *, env: dict[str, str] | None = None, phase: str = ""
    ) -> Instance:
        """Start instance ``index`` (not waiting for it to be ready); ``env`` overrides the cluster's
        environment (a phase's own queue and endpoint)."""
        env = dict(
            self.env,
            **(env or {}),
            FLOWGATE_INSTANCE_ID=f"instance-{index}",
            FLOWGATE_HANDLER_DELAY_MS=str(delay_ms),
        )
        log = (self.out_dir / f"impl-{index}.log").open("ab")
        log.write(f"--- start {datetime.now(UTC).isoformat()} delay_ms={delay_ms} phase={phase}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                self.argv, env=env, stdout=subprocess.PIPE, stderr=log, start_new_session=True
            )
        except OSError as exc:
            raise GateError(f"cannot start implementation {self.argv!r}: {exc}") from exc
        inst = Instance(index, proc, log, delay_ms, phase)
        inst.pump = threading.Thread(target=self._pump, args=(inst,), daemon=True)
        inst.pump.start()
        with self.lock:
            self.instances.append(inst)
        self.history.append(
            "harness",
            "info",
            "start",
            {"instance": index, "pid": proc.pid, "delay_ms": delay_ms, **({"phase": phase} if phase else {})},
        )
        return inst

    @staticmethod
    def _pump(inst: Instance) -> None:
        assert inst.process.stdout is not None
        try:
            for line in inst.process.stdout:
                if line.startswith(READY_TOKEN.encode()) and not inst.ready.is_set():
                    inst.capabilities = parse_capabilities(line)
                    inst.ready_at = time.monotonic()
                    inst.ready.set()
                inst.log.write(line)
                inst.log.flush()
        finally:  # EOF: the process (and any child holding its stdout) is gone
            inst.process.stdout.close()
            inst.log.close()

    def close(self) -> None:
        """Wait for every output pump to reach EOF (all processes must have exited)."""
        with self.lock:
            instances = list(self.instances)
        for inst in instances:
            if inst.pump is not None:
                inst.pump.join(timeout=10)

    def live(self) -> list[Instance]:
        with self.lock:
            return [i for i in self.instances if i.process.poll() is None and not i.stopping]

    def wait_ready(self, insts: list[Instance], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for inst in insts:
            while not inst.ready.is_set() and inst.process.poll() is None and time.monotonic() < deadline:
                inst.ready.wait(0.1)

    def kill(self, inst: Instance) -> None:
        inst.stopping = inst.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(inst.process.pid, signal.SIGKILL)
        inst.process.wait()

    def terminate(self, inst: Instance, grace: float) -> int | None:
        """SIGTERM: the contract says finish in-flight work and exit 0 within the grace period.
        Blocks until the process exits or ``grace`` passes (then SIGKILL, ``sigterm-timeout``);
        returns the exit code (``None`` if it had to be killed)."""
        inst.stopping = True
        if inst.process.poll() is not None:
            return inst.process.returncode
        try:
            os.killpg(inst.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return inst.process.poll()
        try:
            code = inst.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.anomalies.append(
                Anomaly(
                    "sigterm-timeout",
                    f"instance {inst.index} (pid {inst.process.pid}) "
                    f"did not exit within {grace:.0f}s of SIGTERM; killed",
                )
            )
            self.kill(inst)
            return None
        if code != 0:
            self.anomalies.append(
                Anomaly(
                    "sigterm-exit-code",
                    f"instance {inst.index} exited {code} after SIGTERM (the contract says 0)",
                )
            )
        return code

    def check_crashes(self) -> None:
        with self.lock:
            for inst in self.instances:
                code = inst.process.poll()
                if code is not None and not inst.stopping:
                    inst.stopping = True
                    self.anomalies.append(
                        Anomaly(
                            "crashed",
                            f"instance {inst.index} (pid {inst.process.pid}) "
                            f"exited {code} on its own; see impl-{inst.index}.log",
                        )
                    )
                    self.history.append("harness", "info", "exited", {"instance": inst.index, "code": code})


def _iso_now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def command_body(c: PlannedCommand) -> dict[str, Any]:
    return {
        "name": c.command_type,
        "entity": {"id": c.entity_id, "isNew": c.seq == 1},
        "payload": c.payload,
        "metadata": {
            "eventId": c.command_id,
            "isReplay": False,
            "occurredOn": _iso_now(),
            "sequenceNo": c.seq,
            "correlationId": c.command_id,
            "properties": {},
        },
    }


def _attrs(**values: str) -> dict[str, dict[str, str]]:
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}


class Gate:
    def __init__(
        self,
        impl_command: str,
        *,
        profile: str,
        backend: str,
        seed: int,
        instances: int | None,
        out_dir: Path,
        topology_path: Path | None,
        encrypted: bool,
        endpoint_url: str | None,
        extra_env: dict[str, str] | None,
        require: frozenset[str] = frozenset(),
        force: bool = False,
    ) -> None:
        self.force = force
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose from {sorted(PROFILES)}")
        if backend not in ("localstack", "aws"):
            raise ValueError("backend must be localstack or aws")
        self.argv = shlex.split(impl_command)
        if not self.argv:
            raise ValueError("empty implementation command")
        unknown = set(require) - KNOWN_CAPABILITIES
        if unknown:
            raise ValueError(f"unknown capability {sorted(unknown)}; known: {sorted(KNOWN_CAPABILITIES)}")
        self.require = frozenset(require)
        self.proxy: OutageProxy | None = None
        #: v1.4: the implementation's KMS endpoint (``FLOWGATE_KMS_ENDPOINT_URL``), cut alone in the
        #: KMS transport outage while SQS and SNS keep working (LocalStack, encrypted runs)
        self.kms_proxy: OutageProxy | None = None
        self.phase_queues: dict[str, topo.CommandQueue] = {}
        self.phase_threads: list[threading.Thread] = []
        self.capabilities: frozenset[str] = frozenset()
        self.skipped: dict[str, str] = {}  # checks not run -> why (shown, never counted as passed)
        self.impl_command = impl_command
        self.profile = PROFILES[profile]
        self.backend, self.seed = backend, seed
        self.n = instances if instances is not None else self.profile.instances
        self.out_dir = out_dir
        self.run_id = uuid.uuid4().hex[:10]
        self.topology = topo.load(topology_path).with_overrides(
            visibility_timeout=self.profile.visibility_timeout,
            max_receive_count=self.profile.max_receive_count,
            encrypted=encrypted,
            redrive_headroom=REDRIVE_HEADROOM,
        )
        self.encrypted = self.topology.kms_key
        self.endpoint = None
        if backend == "localstack":
            self.endpoint = (
                endpoint_url
                or os.environ.get("FLOWGATE_ENDPOINT_URL")
                or os.environ.get("AWS_ENDPOINT_URL")
                or DEFAULT_ENDPOINT
            )
        self.region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.extra_env = dict(extra_env or {})
        clients = ClientSettings.for_endpoint(self.endpoint, region=self.region, read_timeout=20).clients(
            ("sqs", "sns", "kms")
        )
        self.sqs: Any = clients["sqs"]
        self.sns: Any = clients["sns"]
        self.kms: Any = clients["kms"]
        self.history = History(clock=time.time)
        self.stop_probe = threading.Event()
        self.effects_seen: set[str] = set()
        self.last_progress = time.monotonic()
        self._keys: frozenset[str] | None = None
        #: set while the run's KMS key is disabled (the probe cannot open events then: it pauses);
        #: the probe holds ``probe_lock`` for each poll, so no poll is mid-way when the key goes
        self.kms_down = threading.Event()
        self.probe_lock = threading.Lock()
        #: the heartbeat and shutdown phase threads (a KMS outage waits for them: same key)
        self.workload_phases: list[threading.Thread] = []
        #: message group / body -> the hostile message sent in it (filled as they are sent); a DLQ
        #: message is matched by its body (forwarded and redriven copies keep it), else its group
        self.hostile_by_group: dict[str, PlannedHostile] = {}
        self.hostile_by_body: dict[str, PlannedHostile] = {}
        #: hostile id -> the MessageGroupId it was sent with (a dead letter must keep it, v1.4)
        self.hostile_group: dict[str, str] = {}
        #: the carrier order :meth:`_pending_command` handed to the kind being built
        self._carrier: PlannedCommand | None = None
        self.hostile_rows: list[catalog.Row] = []

    # ---- sending -------------------------------------------------------------------------------
    def _seal(self, key_id: str, ctx: dict[str, str], plaintext: bytes) -> str:
        return envelope.seal(self.kms, key_id, ctx, plaintext)

    def _encode(
        self,
        body: dict[str, Any] | bytes,
        *,
        event_id: str,
        entity: str,
        ctype: str,
        key_id: str | None = None,
        ctx: dict[str, str] | None = None,
        destination: str | None = None,
    ) -> str:
        """The wire body: plaintext JSON, or sealed for ``destination`` (default: the main command
        queue's short name; a phase queue's commands are sealed for that queue)."""
        raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        if not self.encrypted:
            return raw.decode()
        ctx = ctx or envelope.context(event_id, destination or self.prov.command_queue_name, entity, ctype)
        return self._seal(key_id or self.prov.kms_key_id, ctx, raw)

    def _queue_of(self, c: PlannedCommand) -> topo.CommandQueue:
        """The queue a planned command goes to: its phase's queue, or the main command queue."""
        for phase, indexes in self.plan.phase_orders.items():
            if phase in self.phase_queues and any(self.plan.commands[i] is c for i in indexes):
                return self.phase_queues[phase]
        return self.main_queue

    def _wire_command(self, c: PlannedCommand, queue: topo.CommandQueue) -> tuple[str, dict[str, Any]]:
        """(body, message attributes) of a valid command sent to ``queue``."""
        body = self._encode(
            command_body(c),
            event_id=c.command_id,
            entity=c.entity_id,
            ctype=c.command_type,
            destination=queue.name,
        )
        attrs = _attrs(
            CommandType=c.command_type,
            EntityId=c.entity_id,
            SequenceNo=str(c.seq),
            EventId=c.command_id,
            CorrelationId=c.command_id,
        )
        if self.encrypted:
            attrs.update(_attrs(Encryption=envelope.SCHEME))
        return body, attrs

    def send_command(
        self,
        c: PlannedCommand,
        *,
        resend: bool = False,
        wire: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        """Send ``c`` (``wire``: its body and attributes, already built -- sealed before a KMS outage)."""
        queue = self._queue_of(c)
        body, attrs = wire or self._wire_command(c, queue)
        value = {
            "command_id": c.command_id,
            "entity_id": c.entity_id,
            "seq": c.seq,
            "command_type": c.command_type,
            "destination": queue.name,
        }
        dedup = c.command_id if not resend else f"{c.command_id}-late-resend"
        if not resend:
            self.history.append(CLIENT, "invoke", "send", value)
        try:
            resp = self.sqs.send_message(
                QueueUrl=queue.url,
                MessageBody=body,
                MessageAttributes=attrs,
                MessageGroupId=c.entity_id,
                MessageDeduplicationId=dedup,
            )
        except ClientError as exc:
            if not resend:
                self.history.append(CLIENT, "fail", "send", dict(value, error=str(exc)))
            return
        except BotoCoreError as exc:
            if not resend:
                self.history.append(CLIENT, "info", "send", dict(value, error=str(exc)))
            return
        if resend:
            self.history.nemesis(
                "duplicate_delivery",
                dict(value, message_id=resp["MessageId"], how="late resend: same body, new dedup id"),
            )
        else:
            self.history.append(CLIENT, "ok", "send", dict(value, message_id=resp["MessageId"]))

    def send_burst(self, first: int) -> None:
        """All commands of one order in a single SendMessageBatch: one receive then sees several
        messages of the same group, so processing them out of order or in parallel shows."""
        entity = self.plan.commands[first].entity_id
        self.send_batch([c for c in self.plan.commands if c.entity_id == entity], burst=True)

    def send_batch(self, batch: list[PlannedCommand], *, burst: bool = False) -> None:
        """Up to 10 commands (all for the queue of the first) in one SendMessageBatch; each entry
        is recorded as its own send (``burst`` marks an order's commands sent together)."""
        queue = self._queue_of(batch[0])
        entries, values = [], []
        for n, c in enumerate(batch):
            body, attrs = self._wire_command(c, queue)
            entries.append(
                {
                    "Id": f"m{n}",
                    "MessageBody": body,
                    "MessageAttributes": attrs,
                    "MessageGroupId": c.entity_id,
                    "MessageDeduplicationId": c.command_id,
                }
            )
            value: dict[str, Any] = {
                "command_id": c.command_id,
                "entity_id": c.entity_id,
                "seq": c.seq,
                "command_type": c.command_type,
                "destination": queue.name,
            }
            if burst:
                value["burst"] = True
            values.append(value)
            self.history.append(CLIENT, "invoke", "send", value)
        try:
            resp = self.sqs.send_message_batch(QueueUrl=queue.url, Entries=entries)
        except ClientError as exc:
            for value in values:
                self.history.append(CLIENT, "fail", "send", dict(value, error=str(exc)))
            return
        except BotoCoreError as exc:
            for value in values:
                self.history.append(CLIENT, "info", "send", dict(value, error=str(exc)))
            return
        ok = {e["Id"]: e["MessageId"] for e in resp.get("Successful", [])}
        failed = {e["Id"]: e.get("Message", e.get("Code", "")) for e in resp.get("Failed", [])}
        for n, value in enumerate(values):
            if f"m{n}" in ok:
                self.history.append(CLIENT, "ok", "send", dict(value, message_id=ok[f"m{n}"]))
            else:  # an entry SQS refused was not sent; the later ones of the group still were
                self.history.append(CLIENT, "fail", "send", dict(value, error=failed.get(f"m{n}", "?")))

    def send_hostile(self, p: PlannedHostile) -> None:
        """Build ``p``'s message with its catalog kind's transform (contract v1.2 section 6) from
        the valid message of its own fresh command (:func:`catalog.context`) and send it to the
        main command queue. A DeadLetter (or business-refused) kind is recorded as a ``poison``
        nemesis op (the dead_letter and integrity checkers judge it), an Applied kind as a client
        ``send`` (judged like any command); every kind also as a ``hostile`` op for the per-kind
        verdict (:func:`catalog.judge`): ``sent``, or ``not_run`` (the context cannot supply what
        the kind needs, or it targets a view queue), or the send's ``error``."""
        kind = self.kinds[p.kind]
        queue = self.main_queue
        value: dict[str, Any] = {
            "hostile_id": p.hostile_id,
            "poison_id": p.hostile_id,
            "kind": p.kind,
            "category": kind.category,
            "reason": p.reason,
            "expected": str(kind.outcome),
            "entity_id": p.command.entity_id,
            "destination": queue.name,
        }
        try:
            ctx = catalog.context(
                p,
                encrypted=self.encrypted,
                queue=queue.name,
                rng=random.Random(f"{self.seed}:{p.hostile_id}"),
                kms=self.kms,
                key_id=self.prov.kms_key_id,
                other_key=self.prov.foreign_key_id,
                known=self._known_applied,
                pending=self._pending_command,
            )
            wire = kind.transform(ctx)
        except hostile_catalog.Unavailable as exc:
            self.history.nemesis("hostile", dict(value, sent=False, not_run=str(exc)))
            return
        if wire.target != catalog.COMMANDS_TARGET:
            self.history.nemesis(
                "hostile",
                dict(value, sent=False, not_run=f"aimed at a {wire.target} queue (none in the gate)"),
            )
            return
        attributes = catalog.string_attributes(wire.attributes)
        event_id, entity, seq, ctype = catalog.carried(wire, ctx)
        group = wire.group_id or p.command.entity_id
        # the id an effect of this message would name: its eventId, unless that is a valid command of
        # the run (a reused id: an effect of that id is the valid command's), then its own fresh id
        command_id = p.command.command_id if event_id in self._valid_ids else event_id
        value.update(group=group, command_id=command_id, event_id=event_id, target=wire.target)
        self.hostile_by_body[wire.body] = p
        self.hostile_group[p.hostile_id] = group
        if group == p.command.entity_id:  # its own group (a kind may queue it in an order's group)
            self.hostile_by_group[group] = p
        send_value = {
            "command_id": command_id,
            "entity_id": entity,
            "seq": seq,
            "command_type": ctype,
            "destination": queue.name,
            "hostile": p.kind,
        }
        applied_like = not p.reason or p.reason == catalog.REFUSED
        if applied_like:
            # an Applied kind (or one SQS should refuse but might accept): its events are known
            self._sent[command_id] = SentCommand(command_id, entity, seq, ctype, queue.name, p.command.marker)
            self._markers[entity] = p.command.marker
            self.history.append(CLIENT, "invoke", "send", send_value)
        carrier, self._carrier = self._carrier, None
        entry = {
            "MessageBody": wire.body,
            "MessageAttributes": wire.attributes,
            "MessageGroupId": group,
            "MessageDeduplicationId": wire.dedup_id or p.hostile_id,
        }
        try:
            if carrier is None:
                resp = self.sqs.send_message(QueueUrl=queue.url, **entry)
            else:  # the carrier first, the hostile message right behind it in the same group
                resp = self._send_with_carrier(carrier, entry)
        except (ClientError, BotoCoreError) as exc:
            if applied_like:
                self.history.append(CLIENT, "fail", "send", dict(send_value, error=str(exc)))
            self.history.nemesis("hostile", dict(value, sent=False, error=str(exc)[:500]))
            return
        value["message_id"] = resp["MessageId"]
        if p.reason == catalog.REFUSED:
            # the backend accepted what SQS refuses: reported, not judged (an indeterminate send:
            # its effect, if any, is not unexpected, and it need not have one)
            self.history.append(CLIENT, "info", "send", dict(send_value, message_id=resp["MessageId"]))
        elif p.reason:
            self.history.nemesis("poison", value)
        else:
            self.history.append(CLIENT, "ok", "send", dict(send_value, message_id=resp["MessageId"]))
        self.history.nemesis("hostile", dict(value, sent=True, attributes=sorted(attributes)))

    def _send_with_carrier(self, carrier: PlannedCommand, entry: dict[str, Any]) -> dict[str, Any]:
        """One SendMessageBatch: the carrier (a valid PlaceOrder of the plan's ``carrier`` phase,
        recorded as a client send) and then ``entry`` in the same group, so the carrier is still
        pending when the hostile message arrives. Returns the hostile entry's result; raises
        ``ClientError`` if SQS refused that entry."""
        body, attrs = self._wire_command(carrier, self.main_queue)
        value = {
            "command_id": carrier.command_id,
            "entity_id": carrier.entity_id,
            "seq": carrier.seq,
            "command_type": carrier.command_type,
            "destination": self.main_queue.name,
        }
        self.history.append(CLIENT, "invoke", "send", value)
        first = {
            "Id": "carrier",
            "MessageBody": body,
            "MessageAttributes": attrs,
            "MessageGroupId": carrier.entity_id,
            "MessageDeduplicationId": carrier.command_id,
        }
        try:
            resp = self.sqs.send_message_batch(
                QueueUrl=self.main_queue.url, Entries=[first, {"Id": "hostile", **entry}]
            )
        except (ClientError, BotoCoreError) as exc:
            self.history.append(CLIENT, "info", "send", dict(value, error=str(exc)))
            raise
        ok = {e["Id"]: e["MessageId"] for e in resp.get("Successful", [])}
        if "carrier" in ok:
            self.history.append(CLIENT, "ok", "send", dict(value, message_id=ok["carrier"]))
        else:
            self.history.append(CLIENT, "fail", "send", dict(value, error="refused in the batch"))
        if "hostile" not in ok:
            failed = {e["Id"]: e for e in resp.get("Failed", [])}.get("hostile", {})
            raise ClientError(
                {"Error": {"Code": str(failed.get("Code", "?")), "Message": str(failed.get("Message", ""))}},
                "SendMessageBatch",
            )
        return {"MessageId": ok["hostile"]}

    def _known_applied(self) -> str | None:
        """The eventId of a main-workload command the probe has seen take effect (the earliest in
        plan order; waits up to 30 s for a first one, else None: the kind is not run)."""
        deadline = time.monotonic() + 30.0
        while True:
            for c in self.plan.commands:
                if c.command_id in self.effects_seen:
                    return c.command_id
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.25)

    def _pending_command(self) -> tuple[str, str] | None:
        """(eventId, group) of a valid command sent and not yet applied: the next unused order of
        the plan's ``carrier`` phase, which :meth:`send_hostile` then sends in one batch right
        before the hostile message (a real order would usually be applied before the gate could
        queue anything behind it); None when the carriers are used up."""
        carriers = self.plan.phase_orders.get("carrier", [])
        if not carriers:
            return None
        self._carrier = self.plan.commands[carriers.pop(0)]
        return self._carrier.command_id, self._carrier.entity_id

    # ---- observing -----------------------------------------------------------------------------
    def _open_event(self, msg: dict[str, Any], attrs: dict[str, str]) -> tuple[str | None, bool, str | None]:
        body = msg.get("Body", "")
        if attrs.get("Encryption") is None:
            return body, False, None
        if attrs["Encryption"] != envelope.SCHEME:
            return None, True, f"unknown Encryption {attrs['Encryption']!r}"
        ctx = envelope.context(
            attrs.get("EventId", ""),
            self.prov.topic_name,
            attrs.get("EntityId", ""),
            attrs.get("EventType", ""),
        )
        try:
            return envelope.open_body(self.kms, self._accepted_keys(), ctx, body).decode(), True, None
        except (envelope.EnvelopeError, UnicodeDecodeError) as exc:
            return None, True, str(exc)

    def _accepted_keys(self) -> frozenset[str]:
        if self._keys is None:
            try:
                self._keys = envelope.accepted_key_ids(self.kms, self.prov.kms_key_id)
            except (ClientError, BotoCoreError):
                return frozenset({self.prov.kms_key_id})
        return self._keys

    def poll_probe(self, wait: int = 1) -> int:
        try:
            resp = self.sqs.receive_message(
                QueueUrl=self.prov.probe_queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        except (ClientError, BotoCoreError):
            time.sleep(0.5)
            return 0
        msgs = resp.get("Messages", [])
        for msg in msgs:
            attrs = {k: v.get("StringValue", "") for k, v in (msg.get("MessageAttributes") or {}).items()}
            plaintext, encrypted, error = self._open_event(msg, attrs)
            before = len(self.history)
            system = msg.get("Attributes") or {}
            sent_ms = system.get("SentTimestamp")
            self.mapper.observe(
                raw_body=msg.get("Body", ""),
                attributes=attrs,
                plaintext=plaintext,
                encrypted=encrypted,
                decrypt_error=error,
                message_id=msg["MessageId"],
                sent_at=int(sent_ms) / 1000.0 if sent_ms and str(sent_ms).isdigit() else None,
                dedup_id=system.get("MessageDeduplicationId"),
                group_id=system.get("MessageGroupId"),
            )
            for op in self.history.ops[before:]:
                if op.f == "effect":
                    self.effects_seen.add(str(op.value.get("command_id")))
            self.last_progress = time.monotonic()
            with contextlib.suppress(ClientError, BotoCoreError):
                self.sqs.delete_message(
                    QueueUrl=self.prov.probe_queue_url, ReceiptHandle=msg["ReceiptHandle"]
                )
        return len(msgs)

    def _probe_loop(self) -> None:
        """Poll the probe until stopped; paused while the run's KMS key is disabled (events cannot
        be opened then: they wait in the probe queue)."""
        while not self.stop_probe.is_set():
            with self.probe_lock:
                paused = self.kms_down.is_set()
                if not paused:
                    self.poll_probe()
            if paused:
                time.sleep(0.25)

    def read_dlq(self) -> None:
        """Record every message of every DLQ (the main queue's and each phase queue's) as a
        ``dead_letter`` op (a hostile message's carries its ``hostile_id``; a DeadLetter kind's is
        marked ``poison``). A reason whose code is not one of :data:`DEAD_LETTER_REASONS` is a
        ``dead-letter-reason`` violation; a hostile kind's wrong code is judged per kind
        (:func:`catalog.judge`), the dead_letter checker judges the rest (valid commands, missing
        reasons)."""
        for queue in (self.main_queue, *self.phase_queues.values()):
            if queue.dlq_url:
                self._read_one_dlq(queue.dlq_url, queue.dlq_name)

    def _read_one_dlq(self, url: str, name: str) -> None:
        hostile = dict(self.hostile_by_group)
        empty = 0
        seen: set[str] = set()
        while empty < 2:
            resp = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                VisibilityTimeout=600,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            msgs = resp.get("Messages", [])
            empty = 0 if msgs else empty + 1
            for msg in msgs:
                if msg["MessageId"] in seen:
                    continue
                seen.add(msg["MessageId"])
                attrs = {k: v.get("StringValue", "") for k, v in (msg.get("MessageAttributes") or {}).items()}
                group = msg.get("Attributes", {}).get("MessageGroupId", "")
                found = self.hostile_by_body.get(msg.get("Body", "")) or hostile.get(group)
                value: dict[str, Any] = {
                    "message_id": msg["MessageId"],
                    "queue": name,
                    "reason": attrs.get("DeadLetterReason", ""),
                    "group": group,
                }
                code = reason_code(value["reason"])
                if value["reason"] and code not in DEAD_LETTER_REASONS:
                    self.mapper.violation(
                        "dead-letter-reason",
                        f"dead letter {msg['MessageId']} on {name} has reason {value['reason']!r}: "
                        f"{code!r} is not a code of contract section 6 ({', '.join(sorted(DEAD_LETTER_REASONS))})",
                        message_id=msg["MessageId"],
                    )
                if code == "BusinessError":
                    value["business_error"] = True  # the domain refused it after the retries
                if found is not None and found.reason:  # a DeadLetter kind: poison
                    value.update(hostile_id=found.hostile_id, poison_id=found.hostile_id, poison=True)
                elif found is not None:  # an Applied kind: a valid command dead-lettered
                    value.update(hostile_id=found.hostile_id, command_id=self._hostile_command(found))
                elif attrs.get("EventId"):
                    value["command_id"] = attrs["EventId"]
                self._check_dead_letter_group(msg["MessageId"], name, group, found, attrs.get("EventId", ""))
                self.history.append("dlq", "ok", "dead_letter", value)

    def _check_dead_letter_group(
        self, message_id: str, dlq: str, group: str, found: PlannedHostile | None, event_id: str
    ) -> None:
        """v1.4 (sections 1 and 6): a dead letter keeps the ``MessageGroupId`` of the message it was
        forwarded from -- which the implementation only has if it asked ReceiveMessage for it. A dead
        letter of a message the gate sent (a hostile one, or a command by its ``EventId``) in another
        group is ``dead-letter-group-changed``."""
        if found is not None:
            expected = self.hostile_group.get(found.hostile_id, "")
        else:
            sent = self._sent.get(event_id)
            expected = sent.entity_id if sent is not None else ""
        if expected and group != expected:
            self.mapper.violation(
                "dead-letter-group-changed",
                f"dead letter {message_id} on {dlq} is in MessageGroupId {group!r}; the message it was "
                f"forwarded from was sent in {expected!r} (forward with the source's MessageGroupId, "
                "requested from ReceiveMessage)",
                message_id=message_id,
            )

    def _hostile_command(self, p: PlannedHostile) -> str:
        """The command id the ``hostile`` op of ``p`` recorded (its planned id if it was not sent)."""
        for op in self.history.ops:
            if op.f == "hostile" and op.value.get("hostile_id") == p.hostile_id:
                return str(op.value.get("command_id", p.command.command_id))
        return p.command.command_id

    # ---- faults --------------------------------------------------------------------------------
    def _nemesis(self, faults: list[Fault], t0: float, done: threading.Event) -> None:
        vt = self.profile.visibility_timeout
        for fault in faults:
            if done.wait(max(0.0, t0 + fault.at - time.monotonic())):
                return
            if fault.kind == "kill":
                main = [i for i in self.cluster.live() if i.delay_ms == 0 and not i.phase]
                targets = [i for i in main if i.index == fault.instance] or main
                if not targets:
                    continue
                victim = targets[0]
                self.history.nemesis(
                    "kill", {"instance": victim.index, "pid": victim.process.pid, "signal": "SIGKILL"}
                )
                self.cluster.kill(victim)
                time.sleep(1.0)
                with self.cluster.boot_lock:
                    fresh = self.cluster.start(victim.index)
                self.history.nemesis("restart", {"instance": victim.index, "pid": fresh.process.pid})
            elif fault.kind in ("slow", "slow-kill"):
                delay = vt * 1000 + 1500
                with self.cluster.boot_lock:
                    slow = self.cluster.start(fault.instance, delay_ms=delay)
                self.history.nemesis(
                    "stall",
                    {
                        "instance": fault.instance,
                        "delay_ms": delay,
                        "visibility_timeout": vt,
                        "window": self.profile.slow_window_seconds,
                        "ends_with": "SIGKILL" if fault.kind == "slow-kill" else "SIGTERM",
                    },
                )
                if done.wait(self.profile.slow_window_seconds):
                    if fault.kind == "slow-kill" and slow.process.poll() is None:
                        self.cluster.kill(slow)
                    return
                if (
                    fault.kind == "slow-kill"
                ):  # a crash in the middle of a (slow) handler: nothing may be lost
                    self.history.nemesis(
                        "kill",
                        {
                            "instance": fault.instance,
                            "pid": slow.process.pid,
                            "signal": "SIGKILL",
                            "mid_handler": True,
                        },
                    )
                    self.cluster.kill(slow)
                else:
                    self.cluster.terminate(slow, grace=max(30.0, 12 * delay / 1000))
                self.history.nemesis("stall_end", {"instance": fault.instance})

    def _outages(self, faults: list[Fault], t0: float, done: threading.Event) -> None:
        """The outage thread: each ``outage`` (transport) and ``kms-outage`` fault at its time, one
        after another, each ``profile.outage_seconds`` (10 x VT) long. A transport outage starts
        not before every live main instance has been ready for :data:`OUTAGE_READY_MARGIN` (waiting
        at most 60 s for that) and holds the cluster's ``boot_lock`` for the whole cut, so the
        nemesis starts no instance while the endpoint is down; without a proxy (real AWS) it is
        skipped. A KMS outage first waits (at most 150 s) for the heartbeat and shutdown phases to
        end (their instances use the same key). An outage is never shortened: the endpoint or the
        key is restored before the next step, even when the run ends meanwhile."""
        for fault in faults:
            if done.wait(max(0.0, t0 + fault.at - time.monotonic())):
                return
            if fault.kind == "kms-outage":
                give_up = time.monotonic() + 150.0
                for thread in self.workload_phases:
                    thread.join(timeout=max(0.0, give_up - time.monotonic()))
                if done.is_set():
                    return
                self._kms_outage(fault.instance)
                continue
            if self.proxy is None:
                self.history.nemesis("outage_skipped", {"why": "no endpoint to cut (real AWS: no proxy)"})
                self.skipped["transport-outage"] = "not injected: the gate has no proxy on real AWS"
                continue
            give_up = time.monotonic() + 60.0
            while True:
                self.cluster.boot_lock.acquire()
                now = time.monotonic()
                main = [i for i in self.cluster.live() if not i.phase]
                if (
                    all(i.ready.is_set() and now - i.ready_at >= OUTAGE_READY_MARGIN for i in main)
                    or now > give_up
                ):
                    break
                self.cluster.boot_lock.release()
                if done.wait(0.5):
                    return
            try:
                self._cut(self.proxy, self.profile.outage_seconds, [i.index for i in main], fault.instance)
            finally:
                self.cluster.boot_lock.release()

    def _outage_orders(self, name: str) -> list[PlannedCommand]:
        return [self.plan.commands[i] for i in self.plan.phase_orders.get(name, [])]

    def _cut(self, proxy: OutageProxy, seconds: float, instances: list[int], number: int = 0) -> None:
        """One transport outage: cut, send the outage's new orders (the gate's own clients go
        direct), ``seconds`` of downtime, restore; both ends recorded as nemesis ops."""
        severed = proxy.cut()
        orders = self._outage_orders(f"outage-{number}")
        self.history.nemesis(
            "outage",
            {
                "endpoint": proxy.url,
                "seconds": seconds,
                "connections_closed": severed,
                "instances": instances,
                "orders": [c.entity_id for c in orders],
            },
        )
        ends = time.monotonic() + seconds
        for c in orders:
            self.send_command(c)
        time.sleep(max(0.0, ends - time.monotonic()))
        proxy.restore()
        self.history.nemesis("outage_end", {"endpoint": proxy.url, "connections_refused": proxy.refused})

    def _kms_outage(self, number: int) -> None:
        """One KMS outage (contract v1.2 sections 5 and 9): the outage's new orders are sealed while
        the key works, then the probe pauses (it cannot open events either), the gate calls
        ``DisableKey`` on the run's key, sends the orders at once (they are received while the key
        is disabled: GenerateDataKey and Decrypt fail with ``DisabledException``, a transient
        failure that MUST NOT dead-letter them), waits ``outage_seconds`` and calls ``EnableKey``.
        Nemesis ops ``kms_outage`` / ``kms_outage_end``."""
        key, seconds = self.prov.kms_key_id, self.profile.outage_seconds
        orders = self._outage_orders(f"kms-outage-{number}")
        wires = [self._wire_command(c, self.main_queue) for c in orders]
        with self.probe_lock:
            self.kms_down.set()
        try:
            self.kms.disable_key(KeyId=key)
            self.history.nemesis(
                "kms_outage",
                {"key_id": key, "seconds": seconds, "orders": [c.entity_id for c in orders]},
            )
            ends = time.monotonic() + seconds
            for c, wire in zip(orders, wires, strict=True):
                self.send_command(c, wire=wire)
            time.sleep(max(0.0, ends - time.monotonic()))
        finally:
            for attempt in range(5):
                try:
                    self.kms.enable_key(KeyId=key)
                    break
                except (ClientError, BotoCoreError):
                    if attempt == 4:
                        raise
                    time.sleep(1.0)
            self.kms_down.clear()
            self.history.nemesis("kms_outage_end", {"key_id": key})
        self._kms_transport_outage(number)

    def _kms_transport_outage(self, number: int) -> None:
        """v1.4 (contract sections 5 and 9): after the key outage, once the implementation had
        ``KMS_TRANSPORT_GAP`` seconds to close its breaker, the gate cuts the implementation's KMS
        endpoint (its own proxy, ``FLOWGATE_KMS_ENDPOINT_URL``; SQS and SNS keep working) for
        ``outage_seconds``: connections are closed and refused, so Decrypt and GenerateDataKey fail
        with transport errors -- transient, never a reason to dead-letter. The outage's orders are
        sealed before and sent at the cut, so they are received while KMS cannot be reached.
        Skipped (and said so) without a proxy (real AWS). Nemesis ops ``kms_transport_outage`` /
        ``kms_transport_outage_end``."""
        if self.kms_proxy is None:
            self.history.nemesis("kms_transport_outage_skipped", {"why": "no KMS proxy (real AWS)"})
            self.skipped["kms-transport-outage"] = "not injected: the gate has no proxy on real AWS"
            return
        orders = self._outage_orders(f"kms-transport-{number}")
        wires = [self._wire_command(c, self.main_queue) for c in orders]
        time.sleep(KMS_TRANSPORT_GAP)
        severed = self.kms_proxy.cut()
        seconds = self.profile.outage_seconds
        self.history.nemesis(
            "kms_transport_outage",
            {
                "endpoint": self.kms_proxy.url,
                "seconds": seconds,
                "connections_closed": severed,
                "orders": [c.entity_id for c in orders],
            },
        )
        ends = time.monotonic() + seconds
        try:
            for c, wire in zip(orders, wires, strict=True):
                self.send_command(c, wire=wire)
            time.sleep(max(0.0, ends - time.monotonic()))
        finally:
            self.kms_proxy.restore()
            self.history.nemesis(
                "kms_transport_outage_end",
                {"endpoint": self.kms_proxy.url, "connections_refused": self.kms_proxy.refused},
            )

    # ---- phases on their own queues ------------------------------------------------------------
    def _phase_specs(self) -> dict[str, topo.QueueSpec]:
        """The dedicated queue of each phase the profile runs (visibility, redrive threshold)."""
        p, fifo = self.profile, self.topology.command_queue.fifo
        suffix = ".fifo" if fifo else ""

        def spec(phase: str, visibility: int, max_receive: int, headroom: int) -> topo.QueueSpec:
            return topo.QueueSpec(
                f"{phase}-commands{suffix}",
                fifo=fifo,
                visibility_timeout=visibility,
                dlq_name=f"{phase}-dlq{suffix}",
                max_receive_count=max_receive,
                redrive_headroom=headroom,
            )

        specs: dict[str, topo.QueueSpec] = {}
        if p.heartbeat_orders:  # headroom 1: this phase tests exactly SQS's native redrive
            specs["heartbeat"] = spec("heartbeat", p.heartbeat_visibility, p.heartbeat_max_receive, 1)
        if p.shutdown_orders:
            specs["shutdown"] = spec("shutdown", p.shutdown_visibility, p.max_receive_count, REDRIVE_HEADROOM)
        return specs

    def _phase_env(self, queue: topo.CommandQueue) -> dict[str, str]:
        """A phase instance's environment: the contract's, pointed at the phase's queue, with the
        real endpoint (a phase is independent of the main cluster's transport outages)."""
        env = {
            "FLOWGATE_COMMAND_QUEUE_URL": queue.url,
            "FLOWGATE_COMMAND_QUEUE_NAME": queue.name,
            "FLOWGATE_DEAD_LETTER_QUEUE_URL": queue.dlq_url,
            "FLOWGATE_VISIBILITY_TIMEOUT": str(queue.visibility_timeout),
            "FLOWGATE_MAX_RECEIVE_COUNT": str(queue.max_receive_count),
            "FLOWGATE_REDRIVE_MAX_RECEIVE_COUNT": str(queue.redrive_max_receive_count),
        }
        if self.endpoint:
            env.update(AWS_ENDPOINT_URL=self.endpoint, FLOWGATE_ENDPOINT_URL=self.endpoint)
            env.update(AWS_ENDPOINT_URL_KMS=self.endpoint, FLOWGATE_KMS_ENDPOINT_URL=self.endpoint)
        return env

    def _start_phase_instance(self, phase: str, index: int, delay_ms: int) -> Instance:
        """Start one instance on ``phase``'s queue and wait (up to 30 s) for its ready line."""
        queue = self.phase_queues[phase]
        inst = self.cluster.start(index, delay_ms, env=self._phase_env(queue), phase=phase)
        self.cluster.wait_ready([inst], timeout=30.0)
        return inst

    def _wait_effects(self, commands: list[PlannedCommand], timeout: float, done: threading.Event) -> bool:
        """Wait until the probe has seen an effect of every one of ``commands``, for at most
        ``timeout`` seconds, returning early (False) when ``done`` is set (the run is over)."""
        wanted = {c.command_id for c in commands}
        deadline = time.monotonic() + timeout
        while not wanted <= self.effects_seen:
            if time.monotonic() >= deadline or done.wait(0.25):
                return False
        return True

    def _phase_heartbeat(self, index: int, done: threading.Event) -> None:
        """Heartbeat phase (contract sections 4 and 9). ONE instance on a queue with a short
        visibility timeout ``VT`` and redrive threshold ``M`` handles new orders with a handler
        delay > (M + 1) x VT. Only a worker that extends the visibility (heartbeat) keeps them
        invisible; otherwise each is redelivered every VT, SQS's native redrive moves it to the
        phase DLQ without a reason (``valid-dead-lettered``, ``dead-letter-without-reason``).

        Waits for the orders' effects up to ``2 x delay + (M + 1) x VT + 15 s``, then SIGTERMs the
        instance (grace ``max(15 s, 2 x VT)`` plus the delay: a handler in hand may finish)."""
        p, queue = self.profile, self.phase_queues["heartbeat"]
        orders = [self.plan.commands[i] for i in self.plan.phase_orders["heartbeat"]]
        inst = self._start_phase_instance("heartbeat", index, p.heartbeat_delay_ms)
        self.history.nemesis(
            "heartbeat_phase",
            {
                "instance": index,
                "queue": queue.name,
                "visibility_timeout": queue.visibility_timeout,
                "max_receive_count": queue.max_receive_count,
                "delay_ms": p.heartbeat_delay_ms,
                "orders": [c.entity_id for c in orders],
            },
        )
        for c in orders:
            self.send_command(c)
        bound = (
            2 * p.heartbeat_delay_ms / 1000 + (queue.max_receive_count + 1) * queue.visibility_timeout + 15
        )
        deadline = time.monotonic() + bound
        seen = armed = False
        while not seen and time.monotonic() < deadline and not done.is_set():
            armed = self._probe_lapse(queue, len(orders), armed)
            seen = self._wait_effects(orders, 0.5, done)
        grace = max(15.0, 2.0 * queue.visibility_timeout) + p.heartbeat_delay_ms / 1000
        code = self.cluster.terminate(inst, grace)
        self.history.nemesis(
            "heartbeat_phase_end", {"instance": index, "all_effects_seen": seen, "exit_code": code}
        )

    def _probe_lapse(self, queue: topo.CommandQueue, sent: int, armed: bool) -> bool:
        """The gate's own receive on the heartbeat queue, once it is *armed*: all ``sent`` messages
        were in flight at the same time (the instance has received each). From then on a correct
        worker keeps them invisible until it deletes them, so the gate receives nothing; a message
        whose visibility lapsed is received by it (``heartbeat_lapse`` op) and, as the redrive
        maxReceiveCount is 2, moved by SQS's native redrive to the phase DLQ on the next receive -- a missing heartbeat
        shows whatever the implementation's concurrency. The receive uses VisibilityTimeout 0, so
        a message it gets is at once visible to the instance again. Returns the armed state."""
        if not armed:
            attrs = self.sqs.get_queue_attributes(
                QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            return int(attrs["ApproximateNumberOfMessagesNotVisible"]) >= sent
        resp = self.sqs.receive_message(
            QueueUrl=queue.url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=0,
            AttributeNames=["All"],
        )
        for msg in resp.get("Messages", []):
            self.history.nemesis(
                "heartbeat_lapse",
                {
                    "queue": queue.name,
                    "message_id": msg["MessageId"],
                    "receive_count": msg.get("Attributes", {}).get("ApproximateReceiveCount"),
                },
            )
        return True

    def _phase_shutdown(self, index: int, done: threading.Event) -> None:
        """Shutdown phase (contract sections 1 and 9). ONE instance with a handler delay ``D`` on a
        queue with a long visibility timeout: send one order and wait for its effect (the instance
        is polling and handling), send the others in one SendMessageBatch (distinct groups), wait
        ``D / 2`` (they are in hand, mid-handler; v1.4: the batch also holds a second command of
        three of those orders, waiting behind its group's head -- received, not started -- which
        must be finished or released), SIGTERM it and wait for its exit (the usual
        grace, ``max(15 s, 2 x VT)``). Right after the exit ``ApproximateNumberOfMessagesNotVisible``
        of the queue must be 0: anything still invisible was received and neither finished nor
        released (``lifecycle: sigterm-abandoned-messages``). Then a normal instance (no delay)
        takes over the queue until every order has its effect (bound: VT + 30 s -- abandoned
        messages come back only after VT) and is SIGTERMed."""
        p, queue = self.profile, self.phase_queues["shutdown"]
        orders = [self.plan.commands[i] for i in self.plan.phase_orders["shutdown"]]
        delay = p.shutdown_delay_ms / 1000
        grace = max(15.0, 2.0 * queue.visibility_timeout)
        inst = self._start_phase_instance("shutdown", index, p.shutdown_delay_ms)
        self.history.nemesis(
            "shutdown_phase",
            {
                "instance": index,
                "queue": queue.name,
                "visibility_timeout": queue.visibility_timeout,
                "delay_ms": p.shutdown_delay_ms,
                "orders": [c.entity_id for c in orders],
            },
        )
        self.send_command(orders[0])
        busy = self._wait_effects(orders[:1], 2 * delay + 30.0, done)
        for start in range(1, len(orders), 10):
            self.send_batch(orders[start : start + 10])
        if done.wait(delay / 2):
            return
        self.history.nemesis(
            "shutdown_sigterm", {"instance": index, "pid": inst.process.pid, "first_effect_seen": busy}
        )
        code = self.cluster.terminate(inst, grace)
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=queue.url,
            AttributeNames=["ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessages"],
        )["Attributes"]
        in_flight = int(attrs.get("ApproximateNumberOfMessagesNotVisible", "0"))
        self.history.nemesis(
            "shutdown_exit",
            {
                "instance": index,
                "exit_code": code,
                "not_visible": in_flight,
                "visible": int(attrs.get("ApproximateNumberOfMessages", "0")),
            },
        )
        if in_flight > 0 and code is not None:
            self.cluster.anomalies.append(
                Anomaly(
                    "sigterm-abandoned-messages",
                    f"instance {index} exited {code} after SIGTERM with {in_flight} message(s) of "
                    f"{queue.name} still in flight (received, neither finished nor released); "
                    "contract section 1: finish or release what you hold",
                )
            )
        if self._wait_effects(orders, 1.0, done):  # all done already: nothing to take over
            self.history.nemesis("shutdown_phase_end", {"all_effects_seen": True})
            return
        rescue = self._start_phase_instance("shutdown", index + 1, 0)
        seen = self._wait_effects(orders, queue.visibility_timeout + 30.0, done)
        code = self.cluster.terminate(rescue, grace)
        self.history.nemesis(
            "shutdown_phase_end", {"instance": index + 1, "all_effects_seen": seen, "exit_code": code}
        )

    def _start_phases(self, done: threading.Event) -> None:
        """One thread per phase; instance indexes after the main cluster and its slow windows."""
        runners = {
            "heartbeat": (self._phase_heartbeat, self.n + 2),
            "shutdown": (self._phase_shutdown, self.n + 3),
        }
        for phase in self.phase_queues:
            run, index = runners[phase]
            thread = threading.Thread(target=self._guard_phase, args=(phase, run, index, done), daemon=True)
            self.phase_threads.append(thread)
            self.workload_phases.append(thread)
            thread.start()

    def _guard_phase(
        self, phase: str, run: Callable[[int, threading.Event], None], index: int, done: threading.Event
    ) -> None:
        """Run a phase; an AWS error aborts it (recorded), never the whole gate."""
        try:
            run(index, done)
        except (ClientError, BotoCoreError, GateError) as exc:
            self.history.nemesis(f"{phase}_phase_error", {"error": str(exc)})

    # ---- replay (contract section 7) -----------------------------------------------------------
    def _replay_verdict(self) -> Verdict | None:
        """Run the implementation twice in replay mode (after every instance stopped) and compare
        each run, per entity, with what the probe saw live. ``None`` when replay is not declared
        (recorded in :attr:`skipped`). Each run must exit 0 within :data:`REPLAY_TIMEOUT`."""
        if REPLAY not in self.capabilities:
            self.skipped["replay"] = "not run: the implementation did not declare the replay capability"
            return None
        entities = sorted({c.entity_id for c in self.plan.commands})
        live = live_events(self.history.ops, entities)
        watermark = len(self.history)
        anomalies: list[Anomaly] = []
        runs = 0
        for run in (1, 2):
            self.history.nemesis("replay", {"run": run, "entities": len(entities)})
            stdout, failure = self._run_replay(run, entities)
            runs += 1
            if failure:
                anomalies.append(Anomaly("replay-failed", f"replay run {run}: {failure}"))
                continue
            parsed = parse_replay_output(stdout)
            anomalies += [Anomaly("replay-failed", f"replay run {run}: {e}") for e in parsed.errors[:20]]
            anomalies += [
                Anomaly("replay-divergence", f"replay run {run}: {d}") for d in compare(live, parsed.events)
            ]
            self.history.nemesis(
                "replay_end", {"run": run, "events": parsed.lines, "errors": len(parsed.errors)}
            )
        empty = 0
        while empty < 3:
            empty = 0 if self.poll_probe(wait=1) else empty + 1
        published = [op.index for op in self.history.ops[watermark:] if op.f == "wire"]
        if published:
            anomalies.append(
                Anomaly(
                    "replay-published",
                    f"{len(published)} event(s) reached the topic while replay ran (replay must not publish)",
                    tuple(published[:20]),
                )
            )
        return Verdict("replay", not anomalies, anomalies, {"runs": runs, "entities": len(entities)})

    def _run_replay(self, run: int, entities: list[str]) -> tuple[str, str]:
        """One replay process: (stdout, failure; empty = exited 0 in time). Its stderr goes to
        ``impl-replay-<run>.log``; on timeout its process group is killed."""
        env = dict(self.impl_env(), FLOWGATE_MODE="replay", FLOWGATE_REPLAY_ENTITIES=",".join(entities))
        env["FLOWGATE_INSTANCE_ID"] = f"replay-{run}"
        with (self.out_dir / f"impl-replay-{run}.log").open("wb") as log:
            try:
                proc = subprocess.Popen(
                    self.argv, env=env, stdout=subprocess.PIPE, stderr=log, start_new_session=True
                )
            except OSError as exc:
                return "", f"cannot start: {exc}"
            try:
                out, _ = proc.communicate(timeout=REPLAY_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                return "", f"did not exit within {REPLAY_TIMEOUT:.0f}s"
            text = out.decode("utf-8", "replace")
            log.write(b"--- stdout\n" + out)
        if proc.returncode != 0:
            return text, f"exited {proc.returncode} (must be 0); see impl-replay-{run}.log"
        return text, ""

    # ---- the run -------------------------------------------------------------------------------
    def impl_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "FLOWGATE_CONTRACT_VERSION": "1",
                "FLOWGATE_RUN_ID": self.run_id,
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "FLOWGATE_COMMAND_QUEUE_URL": self.prov.command_queue_url,
                "FLOWGATE_COMMAND_QUEUE_NAME": self.prov.command_queue_name,
                "FLOWGATE_DEAD_LETTER_QUEUE_URL": self.prov.dlq_url,
                "FLOWGATE_EVENT_TOPIC_ARN": self.prov.topic_arn,
                "FLOWGATE_EVENT_TOPIC_ARNS": self.prov.topic_arn,
                "FLOWGATE_KMS_KEY_ID": self.prov.kms_key_id,
                "FLOWGATE_IDEMPOTENCY_URL": f"file://{(self.out_dir / 'store').resolve()}",
                "FLOWGATE_VISIBILITY_TIMEOUT": str(self.profile.visibility_timeout),
                "FLOWGATE_MAX_RECEIVE_COUNT": str(self.profile.max_receive_count),
                "FLOWGATE_REDRIVE_MAX_RECEIVE_COUNT": str(self.profile.redrive_max_receive_count),
                "FLOWGATE_HANDLER_DELAY_MS": "0",
            }
        )
        if self.endpoint:
            # the main cluster talks through the outage proxy (the gate's own clients do not)
            endpoint = self.proxy.url if self.proxy is not None else self.endpoint
            env.update(
                {
                    "AWS_ENDPOINT_URL": endpoint,
                    "FLOWGATE_ENDPOINT_URL": endpoint,
                    "AWS_ACCESS_KEY_ID": env.get("AWS_ACCESS_KEY_ID", "test"),
                    "AWS_SECRET_ACCESS_KEY": env.get("AWS_SECRET_ACCESS_KEY", "test"),
                }
            )
            # queue URLs too: some SDKs (JavaScript v3) send SQS calls to the queue URL's host
            for key in ("FLOWGATE_COMMAND_QUEUE_URL", "FLOWGATE_DEAD_LETTER_QUEUE_URL"):
                env[key] = via_endpoint(env[key], self.endpoint, endpoint)
            # v1.4: KMS calls go to an endpoint of their own (the SDKs' service-specific variable too)
            kms_endpoint = self.kms_proxy.url if self.kms_proxy is not None else endpoint
            env.update({"FLOWGATE_KMS_ENDPOINT_URL": kms_endpoint, "AWS_ENDPOINT_URL_KMS": kms_endpoint})
        if not self.encrypted:
            env.pop("FLOWGATE_KMS_KEY_ID")
        env.update(self.extra_env)
        return env

    def run(self) -> GateResult:
        started = time.time()
        t_start = time.monotonic()
        # FLOWGATE_IDEMPOTENCY_URL is empty at start (v1.4 section 1): a previous run's store in the
        # same --out would hold the same seeded command ids. The gate clears what an earlier gate run
        # wrote there and refuses a directory it did not write (unless --force): harness/gate/outdir.py
        kept = outdir.prepare(self.out_dir, force=self.force)
        (self.out_dir / outdir.STORE).mkdir()
        outdir.record(self.out_dir, kept)
        try:
            return self._provisioned(started, t_start)
        finally:
            outdir.record(self.out_dir, kept)

    def _provisioned(self, started: float, t_start: float) -> GateResult:
        try:
            self.prov = topo.provision(self.topology, self.run_id, self.sqs, self.sns, self.kms)
        except (ClientError, BotoCoreError) as exc:
            raise GateError(
                f"provisioning on {self.backend} ({self.endpoint or 'AWS'}) failed: {exc}"
            ) from exc
        try:
            for phase, spec in self._phase_specs().items():
                self.phase_queues[phase] = topo.add_command_queue(self.prov, self.sqs, spec)
            if self.endpoint and self.profile.outages:
                self.proxy = OutageProxy.for_url(self.endpoint).start()
            if self.endpoint and self.encrypted and self.profile.kms_outages:
                self.kms_proxy = OutageProxy.for_url(self.endpoint).start()
            return self._run(started, t_start)
        except (ClientError, BotoCoreError) as exc:
            raise GateError(f"the gate failed talking to {self.endpoint or 'AWS'}: {exc}") from exc
        finally:
            if self.proxy is not None:
                self.proxy.close()
            if self.kms_proxy is not None:
                self.kms_proxy.close()
            errors = self.prov.teardown(self.sqs, self.sns, self.kms)
            if errors:
                (self.out_dir / "teardown-errors.txt").write_text("\n".join(errors) + "\n")

    def _run(self, started: float, t_start: float) -> GateResult:
        applicable = catalog.applicable(self.encrypted)
        self.kinds = {k.name: k for k in applicable}
        self.plan: Plan = make_plan(
            self.profile,
            self.seed,
            self.run_id,
            encrypted=self.encrypted,
            instances=self.n,
            hostile_kinds=[(k.name, catalog.outcome_code(k)) for k in applicable],
        )
        self._valid_ids = {c.command_id for c in self.plan.commands}
        self.main_queue = topo.CommandQueue(
            self.prov.command_queue_name,
            self.prov.command_queue_url,
            self.prov.dlq_name,
            self.prov.dlq_url,
            self.profile.visibility_timeout,
            self.profile.max_receive_count,
            self.profile.redrive_max_receive_count,
        )
        self._sent: dict[str, SentCommand] = {
            c.command_id: SentCommand(
                c.command_id, c.entity_id, c.seq, c.command_type, self._queue_of(c).name, c.marker
            )
            for c in self.plan.commands
        }
        self._markers = {c.entity_id: c.marker for c in self.plan.commands}
        self.mapper = EventMapper(
            self.history,
            self._sent,
            self.prov.topic_name,
            markers=self._markers,
            probe_queue=self.prov.probe_queue_name,
        )
        self.history.append(
            "harness",
            "info",
            "plan",
            {
                "seed": self.seed,
                "profile": self.profile.name,
                "instances": self.n,
                "run_id": self.run_id,
                "commands": len(self.plan.commands),
                "hostile": [(h.kind, h.reason or "Applied") for h in self.plan.hostile],
                "max_receive_count": self.profile.max_receive_count,
                "redrive_max_receive_count": self.profile.redrive_max_receive_count,
                "faults": [(f.at, f.kind, f.instance) for f in self.plan.faults],
                "phases": {
                    phase: {
                        "queue": q.name,
                        "visibility_timeout": q.visibility_timeout,
                        "max_receive_count": q.max_receive_count,
                        "orders": len(self.plan.phase_orders.get(phase, [])),
                    }
                    for phase, q in self.phase_queues.items()
                },
                "outages": {
                    "transport": self.profile.outages,
                    "kms": sum(1 for f in self.plan.faults if f.kind == "kms-outage"),
                    "seconds": self.profile.outage_seconds,
                    "orders_each": self.profile.outage_orders,
                },
                "proxy": self.proxy.url if self.proxy is not None else None,
                "impl": self.impl_command,
                "encrypted": self.encrypted,
            },
        )
        self.cluster = Cluster(self.argv, self.impl_env(), self.out_dir, self.history)
        first = [self.cluster.start(i) for i in range(self.n)]
        self.cluster.wait_ready(first, timeout=30.0)
        not_ready = [i.index for i in first if not i.ready.is_set()]
        if not_ready:
            self.history.append("harness", "info", "not_ready", {"instances": not_ready})
        ready = [i.capabilities for i in first if i.ready.is_set()]
        self.capabilities = frozenset.intersection(*ready) if ready else frozenset()
        self.history.append("harness", "info", "capabilities", {"declared": sorted(self.capabilities)})
        probe = threading.Thread(target=self._probe_loop, daemon=True)
        probe.start()
        done = threading.Event()
        t0 = time.monotonic()
        outages = [f for f in self.plan.faults if f.kind in OUTAGE_KINDS]
        nemesis = threading.Thread(
            target=self._nemesis,
            args=([f for f in self.plan.faults if f.kind not in OUTAGE_KINDS], t0, done),
            daemon=True,
        )
        if self.cluster.live():
            nemesis.start()
            if outages:
                outage = threading.Thread(target=self._outages, args=(outages, t0, done), daemon=True)
                self.phase_threads.append(outage)
                outage.start()
            self._start_phases(done)
            gap = self.profile.send_seconds / max(1, len(self.plan.schedule))
            for kind, index in self.plan.schedule:
                if kind == "send":
                    self.send_command(self.plan.commands[index])
                elif kind == "burst":
                    self.send_burst(index)
                elif kind == "dup":
                    self.send_command(self.plan.commands[index], resend=True)
                else:
                    self.send_hostile(self.plan.hostile[index])
                self.cluster.check_crashes()
                time.sleep(gap)
            self._settle(nemesis)
        done.set()
        for thread in (nemesis, *self.phase_threads):
            if thread.is_alive():
                thread.join(timeout=90)
        self.cluster.check_crashes()
        grace = max(15.0, 2.0 * self.profile.visibility_timeout)
        for inst in self.cluster.live():
            self.cluster.terminate(inst, grace)
        self.cluster.close()
        self.stop_probe.set()
        probe.join(timeout=30)
        empty = 0
        while empty < 3:
            empty = 0 if self.poll_probe(wait=1) else empty + 1
        self.read_dlq()
        leftover = self.sqs.get_queue_attributes(
            QueueUrl=self.prov.command_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        unresolved = self._unresolved()
        self.history.append(
            "harness", "ok", "drain", {"command_queue_left": leftover, "unresolved": unresolved}
        )
        self._check_redrive_policies()
        replay = self._replay_verdict()
        return self._judge(started, t_start, [replay] if replay is not None else [])

    def _check_redrive_policies(self) -> None:
        """Contract v1.2 section 6: the gate provisions every command queue's ``RedrivePolicy``
        (``FLOWGATE_REDRIVE_MAX_RECEIVE_COUNT``); an implementation may adopt the queues but MUST
        NOT lower or move it (``lifecycle: redrive-policy-changed``) -- without the headroom, SQS
        dead-letters, without a reason, what the consumer would still retry or forward itself."""
        for queue in (self.main_queue, *self.phase_queues.values()):
            if not queue.dlq_url:
                continue
            attrs = self.sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["RedrivePolicy"])
            policy = json.loads(attrs.get("Attributes", {}).get("RedrivePolicy") or "{}")
            found = int(policy.get("maxReceiveCount", 0))
            if found != queue.redrive_max_receive_count:
                self.cluster.anomalies.append(
                    Anomaly(
                        "redrive-policy-changed",
                        f"{queue.name}: RedrivePolicy maxReceiveCount is {found} after the run, the gate "
                        f"set {queue.redrive_max_receive_count} (FLOWGATE_REDRIVE_MAX_RECEIVE_COUNT)",
                    )
                )

    def _acked(self) -> set[str]:
        return {str(op.value["command_id"]) for op in self.history.ops if op.f == "send" and op.type == "ok"}

    def _depth(self, url: str) -> int:
        """Messages in a queue: visible + in flight + delayed (approximate, as SQS reports)."""
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(v) for v in attrs.values())

    def _dlq_depth(self) -> int:
        return sum(
            self._depth(q.dlq_url) for q in (self.main_queue, *self.phase_queues.values()) if q.dlq_url
        )

    def _commands_left(self) -> int:
        """Commands still in the command queues: a business failure (contract section 2) is
        dead-lettered only after the implementation's retries (reference: up to 3 receives x VT),
        so the run is not settled while a queue still holds something."""
        return sum(self._depth(q.url) for q in (self.main_queue, *self.phase_queues.values()))

    def _sent_messages(self) -> dict[str, dict[str, Any]]:
        """Every message the gate put on a command queue, by SQS MessageId: its ``kind`` (``valid``,
        ``hostile``, ``duplicate`` -- a late resend) and the command it carries."""
        out: dict[str, dict[str, Any]] = {}
        for op in self.history.ops:
            message_id = op.value.get("message_id")
            if not message_id:
                continue
            if op.f == "send" and op.type in ("ok", "info") and op.process == CLIENT:
                kind = "hostile" if op.value.get("hostile") else "valid"
            elif op.f == "duplicate_delivery":
                kind = "duplicate"
            elif op.f == "poison":
                kind = "hostile"
            else:
                continue
            out.setdefault(
                str(message_id),
                {
                    "kind": kind,
                    "command_id": op.value.get("command_id"),
                    "entity_id": op.value.get("entity_id"),
                },
            )
        return out

    def _likely_unresolved(self, sent: dict[str, Any]) -> int:
        """Rank of a sent message as a candidate for an unnamed in-flight one (lower: likelier)."""
        if sent["kind"] == "valid":
            return 3 if sent.get("command_id") in self.effects_seen else 0
        return {"duplicate": 1, "hostile": 2}.get(str(sent["kind"]), 3)

    def _unresolved(self) -> list[dict[str, Any]]:
        """What is still in a command queue once every instance has stopped (contract v1.3 section 9):
        after a SIGTERM an implementation finishes or releases what it holds, so the gate waits at most
        VT + 2 s for in-flight messages to turn visible, then receives the visible ones to name them
        (message id, kind, command, receive count; they are not deleted: the queue is deleted with the
        run). A message still in flight after that wait was parked (its visibility set beyond VT, e.g.
        12 h): SQS shows only how many, so it is reported with the sent messages that could be it."""
        sent = self._sent_messages()
        out: list[dict[str, Any]] = []
        for queue in (self.main_queue, *self.phase_queues.values()):
            wait_until = time.monotonic() + queue.visibility_timeout + 2.0
            while True:
                attrs = self.sqs.get_queue_attributes(
                    QueueUrl=queue.url,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                        "ApproximateNumberOfMessagesDelayed",
                    ],
                )["Attributes"]
                hidden = int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)) + int(
                    attrs.get("ApproximateNumberOfMessagesDelayed", 0)
                )
                if not hidden or time.monotonic() >= wait_until:
                    break
                time.sleep(0.5)
            named: set[str] = set()
            if int(attrs.get("ApproximateNumberOfMessages", 0)):
                for _ in range(20):
                    got = self.sqs.receive_message(
                        QueueUrl=queue.url,
                        MaxNumberOfMessages=10,
                        WaitTimeSeconds=1,
                        VisibilityTimeout=600,
                        AttributeNames=["All"],
                        MessageAttributeNames=["All"],
                    ).get("Messages", [])
                    if not got:
                        break
                    for m in got:
                        if m["MessageId"] in named:
                            continue
                        named.add(m["MessageId"])
                        known = sent.get(m["MessageId"], {})
                        event_id = ((m.get("MessageAttributes") or {}).get("EventId") or {}).get(
                            "StringValue"
                        )
                        out.append(
                            {
                                "queue": queue.name,
                                "message_id": m["MessageId"],
                                "command_id": known.get("command_id") or event_id,
                                "kind": known.get("kind"),
                                "state": "visible",
                                "receive_count": int(
                                    (m.get("Attributes") or {}).get("ApproximateReceiveCount", 0)
                                ),
                            }
                        )
            if hidden:
                # most likely first: a valid command without an effect, then resends, then hostile
                # messages, then valid commands that took effect (handled, then not deleted)
                candidates = sorted(
                    (
                        (
                            self._likely_unresolved(v),
                            f"{v['kind']} {v.get('command_id') or mid} (message {mid})",
                        )
                        for mid, v in sent.items()
                        if mid not in named
                    ),
                )
                out.append(
                    {
                        "queue": queue.name,
                        "state": f"in flight {hidden} message(s) more than VT + 2 s after every instance stopped (parked)",
                        "count": hidden,
                        "candidates": [label for _, label in candidates],
                    }
                )
        return out

    def _settle(self, nemesis: threading.Thread) -> None:
        """Wait until every acknowledged command has an effect, every poison message is in a DLQ,
        every command queue is empty and the nemesis and phase threads are done; or until no
        progress (an event, a DLQ depth change, a command-queue depth change) for
        ``max(20 s, (redrive maxReceiveCount + 1) x VT + 10 s [+ one outage length when outages are
        planned: a consumer's back-off probe notices the recovery late])`` counted from when those
        threads are done (or no
        instance is live: a consumer that never forwards poison leaves it to the native redrive);
        at most ``settle_timeout`` plus the length of every planned outage (transport and KMS: while a
        dependency is down a correct consumer stops receiving, so no message advances towards its
        fate; without this a poison message still short of ``maxReceiveCount`` receives when the
        deadline passes was reported as not dead-lettered). Then 2 s of quiet for late publishes.

        v1.3 (unresolved messages): both bounds are at least SQS's own redrive time, redrive
        maxReceiveCount x VT + :data:`RECEIVE_INTERVAL`, so a message no consumer decides on is moved
        by SQS before the run is judged (``dead-letter-without-reason``) instead of being cut off;
        what is still in a command queue then is ``unresolved``. A settle longer than
        :data:`SETTLE_PROGRESS_SECONDS` prints one progress line (stderr) that often."""
        vt, mrc = self.profile.visibility_timeout, self.profile.redrive_max_receive_count
        # a KMS outage is two windows (v1.4): the key disabled, then the KMS endpoint cut
        outages = self.profile.outages + 2 * self.profile.kms_outages
        redrive = mrc * vt + RECEIVE_INTERVAL
        # after an outage a correct consumer resumes only when its back-off probe next succeeds:
        # allow one outage length for that on top of the redrive path
        stall = max(20.0, (mrc + 1) * vt + 10.0, redrive) + (self.profile.outage_seconds if outages else 0.0)
        started = time.monotonic()
        deadline = started + max(
            self.profile.settle_timeout + outages * self.profile.outage_seconds, redrive + 10.0
        )
        acked = self._acked()
        self.last_progress = time.monotonic()
        seen = (-1, -1)
        next_report = started + SETTLE_PROGRESS_SECONDS
        while time.monotonic() < deadline:
            self.cluster.check_crashes()
            depth, left = self._dlq_depth(), self._commands_left()
            if (depth, left) != seen:
                seen, self.last_progress = (depth, left), time.monotonic()
            busy = nemesis.is_alive() or any(t.is_alive() for t in self.phase_threads)
            if busy:  # an outage or a phase still running is not a lack of progress
                self.last_progress = time.monotonic()
            acked |= self._acked()  # the phases send while this runs
            poison = sum(1 for p in self.hostile_by_body.values() if p.reason and p.reason != catalog.REFUSED)
            if acked <= self.effects_seen and depth >= poison and not left and not busy:
                break
            # (no instance live during a kill -> restart gap is not the end: wait for the nemesis)
            if not busy and (not self.cluster.live() or time.monotonic() - self.last_progress > stall):
                break
            now = time.monotonic()
            if now >= next_report:
                next_report = now + SETTLE_PROGRESS_SECONDS
                print(
                    f"flowgate gate: settling {now - started:.0f} s: {len(acked & self.effects_seen)}/"
                    f"{len(acked)} acknowledged commands took effect, {left} message(s) in the command "
                    f"queues, {depth} in the DLQs, {'faults/phases running' if busy else 'idle'} "
                    f"{now - self.last_progress:.0f} s (gives up after {stall:.0f} s idle or at "
                    f"{deadline - started:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
            time.sleep(0.5)
        quiet_until = time.monotonic() + 2.0
        while time.monotonic() < quiet_until:
            time.sleep(0.25)

    def _excuse_crash_stranded_poison(self, verdict: Verdict) -> Verdict:
        """A worker SIGKILLed while it holds a poison message on its ``maxReceive``-th receive cannot
        forward it; the queue's native redrive (same count, section 6) then moves it without a reason
        on the next receive. That is the backstop working, not a bug -- but only for *poison*, only in
        a run with a SIGKILL, and only if the implementation forwarded some poison itself with a reason
        (a listener that never dead-letters is still caught in every profile)."""
        if verdict.checker != "dead_letter" or verdict.valid:
            return verdict
        ops = self.history.ops
        killed = any(op.f == "kill" for op in ops)
        with_reason = sum(
            1 for op in ops if op.f == "dead_letter" and op.value.get("poison") and op.value.get("reason")
        )

        def excused(a: Anomaly) -> bool:
            return (
                a.kind == "dead-letter-without-reason"
                and killed
                and with_reason > 0
                and bool(a.ops)
                and all(ops[i].f == "dead_letter" and ops[i].value.get("poison") for i in a.ops)
            )

        kept = [a for a in verdict.anomalies if not excused(a)]
        if len(kept) == len(verdict.anomalies):
            return verdict
        stats = dict(verdict.stats, excused_crash_stranded_poison=len(verdict.anomalies) - len(kept))
        return Verdict(verdict.checker, not kept, kept, stats)

    def _judge(self, started: float, t_start: float, extra: list[Verdict]) -> GateResult:
        history_path = self.history.dump(self.out_dir / "history.jsonl")
        ops = self.history.ops
        # every DeadLetter kind is hostile: an effect caused by one is an integrity-breach
        dead_letter_kinds = {h.kind for h in self.plan.hostile if h.reason}
        verdicts = [
            self._excuse_crash_stranded_poison(v)
            for v in check_all(
                self.history, require_encryption=self.encrypted, integrity_kinds=dead_letter_kinds
            )
        ]
        killed = any(op.f == "kill" for op in ops)
        forwarded = any(
            op.f == "dead_letter" and op.value.get("poison") and op.value.get("reason") for op in ops
        )
        hostile_verdict, self.hostile_rows = catalog.judge(
            self.plan.hostile, ops, excuse_reasonless=killed and forwarded
        )
        verdicts = [v for v in verdicts if not (v.checker == "replay_equivalence" and v.valid)] + [
            self.mapper.verdict(),
            hostile_verdict,
            Verdict(
                "lifecycle",
                not self.cluster.anomalies,
                list(self.cluster.anomalies),
                {"instances_started": len(self.cluster.instances)},
            ),
            *extra,
        ]
        missing = sorted(self.require - self.capabilities)
        if missing:
            verdicts.append(
                Verdict(
                    "capabilities",
                    False,
                    [
                        Anomaly(
                            "capability-missing",
                            f"required capability {name!r} not declared on the ready line "
                            f"(declared: {sorted(self.capabilities) or 'none'})",
                        )
                        for name in missing
                    ],
                    {"declared": sorted(self.capabilities), "required": sorted(self.require)},
                )
            )
        table = render_table(verdicts) + "".join(
            f"\nnot run: {check} -- {why}" for check, why in sorted(self.skipped.items())
        )
        passed = all(v.valid for v in verdicts)
        duration = time.monotonic() - t_start
        header = (
            f"flowgate gate: impl={self.impl_command!r} profile={self.profile.name} seed={self.seed} "
            f"backend={self.backend} instances={self.n} run={self.run_id} "
            f"encrypted={self.encrypted} ({duration:.1f}s)"
        )
        (self.out_dir / "verdicts.txt").write_text(header + "\n" + table + "\n", encoding="utf-8")
        hostile_md = self.out_dir / "hostile.md"
        hostile_md.write_text(catalog.render_markdown(self.hostile_rows, header), encoding="utf-8")
        (self.out_dir / "hostile.json").write_text(catalog.rows_json(self.hostile_rows), encoding="utf-8")
        (self.out_dir / "verdicts.json").write_text(
            json.dumps(
                [
                    {
                        "checker": v.checker,
                        "valid": v.valid,
                        "anomalies": [str(a) for a in v.anomalies],
                        "stats": v.stats,
                    }
                    for v in verdicts
                ]
                + [
                    {"checker": check, "valid": None, "skipped": why}
                    for check, why in sorted(self.skipped.items())
                ],
                indent=2,
                default=str,
            ),
            encoding="utf-8",
        )
        junit = write_junit(
            self.out_dir / "junit.xml",
            verdicts,
            suite=f"gate-{self.profile.name}",
            duration=duration,
            skipped=self.skipped,
            properties={
                "impl": self.impl_command,
                "seed": str(self.seed),
                "backend": self.backend,
                "profile": self.profile.name,
                "run_id": self.run_id,
            },
        )
        allure_dir = write_allure(
            self.out_dir / "allure-results",
            verdicts,
            implementation=self.impl_command,
            backend=self.backend,
            profile=self.profile.name,
            seed=self.seed,
            table=table,
            history_path=history_path,
            extra_attachments=[("hostile inputs", hostile_md, "text/markdown", "md")],
            started=started,
            stopped=time.time(),
        )
        return GateResult(
            passed,
            EXIT_PASS if passed else EXIT_ANOMALY,
            verdicts,
            header + "\n" + table,
            self.out_dir,
            history_path,
            junit,
            allure_dir,
            duration,
            self.run_id,
            {
                "commands": len(self.plan.commands),
                "hostile": len(self.plan.hostile),
                "effects": len(self.effects_seen),
            },
        )


def run_gate(
    impl_command: str,
    *,
    profile: str = "smoke",
    backend: str = "localstack",
    seed: int = 0,
    instances: int | None = None,
    out_dir: Path = Path("reports/gate"),
    topology: Path | None = None,
    encrypted: bool = True,
    endpoint_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    require: frozenset[str] = frozenset(),
    force: bool = False,
) -> GateResult:
    """Run one gate (see the module docstring). Raises :class:`GateError` when the backend is
    unusable. ``require``: capabilities the implementation must declare (else ``capability-missing``).
    ``force``: use a non-empty ``out_dir`` no gate run wrote (:mod:`harness.gate.outdir`; without it
    such a directory raises :class:`~harness.gate.outdir.OutDirInUse`, a ValueError)."""
    gate = Gate(
        impl_command,
        profile=profile,
        backend=backend,
        seed=seed,
        instances=instances,
        out_dir=Path(out_dir),
        topology_path=topology,
        encrypted=encrypted,
        endpoint_url=endpoint_url,
        extra_env=extra_env,
        require=require,
        force=force,
    )
    return gate.run()


def _b64(raw: bytes) -> str:  # kept for symmetry with envelope (used by tests)
    return base64.b64encode(raw).decode()
