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

:class:`Gate` keeps only that timeline; each step is a collaborator with one job, sharing the run's
:class:`~flowgate.harness.gate.state.RunState`: :mod:`~flowgate.harness.gate.cluster` (the processes),
:mod:`~flowgate.harness.gate.sender` (valid commands), :mod:`~flowgate.harness.gate.poison` (hostile messages),
:mod:`~flowgate.harness.gate.probe` (events), :mod:`~flowgate.harness.gate.nemesis` (faults and outages),
:mod:`~flowgate.harness.gate.phases` (heartbeat and shutdown phases), :mod:`~flowgate.harness.gate.settle`,
:mod:`~flowgate.harness.gate.drain` (what is left, redrive policies), :mod:`~flowgate.harness.gate.dlq`,
:mod:`~flowgate.harness.gate.replayer` and :mod:`~flowgate.harness.gate.judge` (verdicts and reports).

Timeouts: the settle loop ends at the first of (all done and no fault/phase thread alive),
(no fault/phase thread alive and no progress for ``max(20 s, (maxReceive + 1) x VT + 10 s,
maxReceive x VT + 20 s)``), ``max(settle_timeout, maxReceive x VT + 30 s)`` (maxReceive = the
redrive policy's; 20 s = SQS's longest receive interval: SQS's own redrive is always waited
for; :meth:`flowgate.harness.gate.settle.Settler.settle` has the exact bounds). A phase waits for its own
orders' effects with its own bound (see :meth:`flowgate.harness.gate.phases.Phases._wait_effects`) and
returns early when the run is over, so it never holds the settle loop past ``settle_timeout``.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from botocore.exceptions import BotoCoreError, ClientError

from flowgate.harness import topology as topo
from flowgate.harness.checkers.model import Verdict
from flowgate.harness.clients import ClientSettings
from flowgate.harness.gate import catalog, drain, outdir
from flowgate.harness.gate.cluster import Cluster, GateError
from flowgate.harness.gate.dlq import DeadLetterReader
from flowgate.harness.gate.judge import judge
from flowgate.harness.gate.nemesis import OUTAGE_KINDS, Nemesis
from flowgate.harness.gate.observe import EventMapper, SentCommand
from flowgate.harness.gate.phases import Phases, phase_specs
from flowgate.harness.gate.poison import PoisonSender
from flowgate.harness.gate.probe import Probe
from flowgate.harness.gate.proxy import OutageProxy
from flowgate.harness.gate.replay import KNOWN_CAPABILITIES
from flowgate.harness.gate.replayer import Replayer
from flowgate.harness.gate.sender import Sender
from flowgate.harness.gate.settle import Settler
from flowgate.harness.gate.state import (
    EXIT_ANOMALY,
    EXIT_INFRA,
    EXIT_PASS,
    EXIT_USAGE,
    GateResult,
    RunState,
    queue_of,
)
from flowgate.harness.gate.workload import PROFILES, REDRIVE_HEADROOM, Plan, make_plan
from flowgate.harness.history import History

__all__ = [
    "EXIT_ANOMALY",
    "EXIT_INFRA",
    "EXIT_PASS",
    "EXIT_USAGE",
    "Gate",
    "GateError",
    "GateResult",
    "run_gate",
]

DEFAULT_ENDPOINT = "http://127.0.0.1:4566"


def via_endpoint(url: str, real: str, endpoint: str) -> str:
    """``url`` with the scheme and host of ``endpoint`` when it is served by ``real`` (same host and
    port), else unchanged: a queue URL an implementation may call directly, routed like its
    endpoint (through the outage proxy)."""
    u, r, e = urlsplit(url), urlsplit(real), urlsplit(endpoint)
    if u.netloc != r.netloc:
        return url
    return urlunsplit((e.scheme, e.netloc, u.path, u.query, u.fragment))


class Gate:
    """One gate run of ``impl_command`` (see the module docstring for its timeline and timeouts).
    Validates its arguments at construction (``ValueError``); :meth:`run` runs it once."""

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
        #: the run's shared state, built once it is provisioned and planned (:meth:`_run`)
        self.state: RunState | None = None

    def impl_env(self) -> dict[str, str]:
        """The implementation's environment (contract section 1): the gate's own, the run's queues,
        topic, key and store, the main cluster's endpoint through the outage proxy, then ``--env``."""
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
        """Prepare ``out_dir``, provision, run and judge; the resources are deleted in any case.
        Raises :class:`GateError` when the backend is unusable."""
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
            for phase, spec in phase_specs(self.profile, self.topology.command_queue.fifo).items():
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
        plan = make_plan(
            self.profile,
            self.seed,
            self.run_id,
            encrypted=self.encrypted,
            instances=self.n,
            hostile_kinds=[(k.name, catalog.outcome_code(k)) for k in applicable],
        )
        main_queue = topo.CommandQueue(
            self.prov.command_queue_name,
            self.prov.command_queue_url,
            self.prov.dlq_name,
            self.prov.dlq_url,
            self.profile.visibility_timeout,
            self.profile.max_receive_count,
            self.profile.redrive_max_receive_count,
        )
        sent: dict[str, SentCommand] = {
            c.command_id: SentCommand(
                c.command_id,
                c.entity_id,
                c.seq,
                c.command_type,
                queue_of(plan, self.phase_queues, main_queue, c).name,
                c.marker,
            )
            for c in plan.commands
        }
        markers = {c.entity_id: c.marker for c in plan.commands}
        mapper = EventMapper(
            self.history, sent, self.prov.topic_name, markers=markers, probe_queue=self.prov.probe_queue_name
        )
        self.history.append("harness", "info", "plan", plan_record(self, plan))
        cluster = Cluster(self.argv, self.impl_env(), self.out_dir, self.history)
        s = self.state = RunState(
            self.impl_command, self.profile, self.seed, self.backend, self.n, self.run_id, self.encrypted,
            self.endpoint, self.out_dir, self.sqs, self.kms, self.history, self.prov, plan, main_queue,
            self.phase_queues, cluster, sent, markers, mapper, self.skipped, last_progress=time.monotonic(),
        )  # fmt: skip
        sender, probe = Sender(s), Probe(s)
        phases = Phases(s, sender)
        poison = PoisonSender(s, sender, {k.name: k for k in applicable})
        nemesis = Nemesis(s, sender, probe, proxy=self.proxy, kms_proxy=self.kms_proxy, phases=phases.threads)
        first = [cluster.start(i) for i in range(self.n)]
        cluster.wait_ready(first, timeout=30.0)
        not_ready = [i.index for i in first if not i.ready.is_set()]
        if not_ready:
            self.history.append("harness", "info", "not_ready", {"instances": not_ready})
        ready = [i.capabilities for i in first if i.ready.is_set()]
        self.capabilities = frozenset.intersection(*ready) if ready else frozenset()
        self.history.append("harness", "info", "capabilities", {"declared": sorted(self.capabilities)})
        probe_thread = threading.Thread(target=probe.loop, daemon=True)
        probe_thread.start()
        done = threading.Event()
        t0 = time.monotonic()
        outages = [f for f in plan.faults if f.kind in OUTAGE_KINDS]
        faults = threading.Thread(
            target=nemesis.run_faults,
            args=([f for f in plan.faults if f.kind not in OUTAGE_KINDS], t0, done),
            daemon=True,
        )
        background: list[threading.Thread] = []  # the outage thread, then the phase threads
        if cluster.live():
            faults.start()
            if outages:
                outage = threading.Thread(target=nemesis.run_outages, args=(outages, t0, done), daemon=True)
                background.append(outage)
                outage.start()
            phases.start(done)
            background += phases.threads
            gap = self.profile.send_seconds / max(1, len(plan.schedule))
            for kind, index in plan.schedule:
                if kind == "send":
                    sender.send_command(plan.commands[index])
                elif kind == "burst":
                    sender.send_burst(index)
                elif kind == "dup":
                    sender.send_command(plan.commands[index], resend=True)
                else:
                    poison.send(plan.hostile[index])
                cluster.check_crashes()
                time.sleep(gap)
            Settler(s, poison).settle(lambda: faults.is_alive() or any(t.is_alive() for t in background))
        done.set()
        for thread in (faults, *background):
            if thread.is_alive():
                thread.join(timeout=90)
        cluster.check_crashes()
        grace = max(15.0, 2.0 * self.profile.visibility_timeout)
        for inst in cluster.live():
            cluster.terminate(inst, grace)
        cluster.close()
        probe.stop.set()
        probe_thread.join(timeout=30)
        probe.drain()
        DeadLetterReader(s, poison).read_all()
        leftover = self.sqs.get_queue_attributes(
            QueueUrl=self.prov.command_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        unresolved = drain.unresolved(self.sqs, s.queues, self.history, s.effects_seen)
        self.history.append(
            "harness", "ok", "drain", {"command_queue_left": leftover, "unresolved": unresolved}
        )
        cluster.anomalies.extend(drain.redrive_policy_anomalies(self.sqs, s.queues))
        replay = Replayer(s, self.argv, self.impl_env(), probe).verdict(self.capabilities)
        extra: list[Verdict] = [replay] if replay is not None else []
        return judge(
            s,
            require=self.require,
            capabilities=self.capabilities,
            extra=extra,
            started=started,
            t_start=t_start,
        )


def plan_record(gate: Gate, plan: Plan) -> dict[str, Any]:
    """The value of the history's ``plan`` op for ``gate`` running ``plan``: seed, profile,
    commands, hostile kinds, faults, phase queues, outages, proxy, implementation, encryption."""
    return {
        "seed": gate.seed,
        "profile": gate.profile.name,
        "instances": gate.n,
        "run_id": gate.run_id,
        "commands": len(plan.commands),
        "hostile": [(h.kind, h.reason or "Applied") for h in plan.hostile],
        "max_receive_count": gate.profile.max_receive_count,
        "redrive_max_receive_count": gate.profile.redrive_max_receive_count,
        "faults": [(f.at, f.kind, f.instance) for f in plan.faults],
        "phases": {
            phase: {
                "queue": q.name,
                "visibility_timeout": q.visibility_timeout,
                "max_receive_count": q.max_receive_count,
                "orders": len(plan.phase_orders.get(phase, [])),
            }
            for phase, q in gate.phase_queues.items()
        },
        "outages": {
            "transport": gate.profile.outages,
            "kms": sum(1 for f in plan.faults if f.kind == "kms-outage"),
            "seconds": gate.profile.outage_seconds,
            "orders_each": gate.profile.outage_orders,
        },
        "proxy": gate.proxy.url if gate.proxy is not None else None,
        "impl": gate.impl_command,
        "encrypted": gate.encrypted,
    }


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
    ``force``: use a non-empty ``out_dir`` no gate run wrote (:mod:`flowgate.harness.gate.outdir`; without it
    such a directory raises :class:`~flowgate.harness.gate.outdir.OutDirInUse`, a ValueError)."""
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
