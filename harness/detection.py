"""The failure-detection matrix on the simulator (seed 002's matrix, seed 004's alarms), in
virtual time.

One :class:`DetectionWorld` is the NexusStream partner feed (``reference/domain/partners.py``)
on the simulated AWS: ``partner-orders.fifo`` (4-day retention, ``MessageGroupId`` = partnerId),
``PartnerOrderValidated`` to ``partner-accepted.fifo``, ``PartnerOrderRejected`` to
``partner-rejected.fifo`` -> the error queue ``partner-errors.fifo`` (14-day retention, with a
DLQ: D31), two workers sharing one store, a producer sending ``rate`` orders a second, and a
:class:`flowgate.reference.monitoring.Monitor` sampling the order queue once per ``period`` and evaluating
the default alarms (:func:`flowgate.reference.monitoring.default_alarms`).

Time moves in steps of one virtual second: the producer sends, every live worker polls until its
queue is empty (at most ``polls_per_step`` receives), and at each period boundary the monitor
ticks. Failures (:data:`CASES`) are injected between ``inject`` and ``recover`` and each case
states which alarms must fire, within how long, and that they clear within how long after
recovery; every other alarm must stay quiet. :func:`run_case` returns a :class:`Detection`
(fired / cleared times relative to injection / recovery) -- the rows of the detection table in
``docs/operating.md``. Deterministic: the same seed gives the same table.
"""

from __future__ import annotations

import dataclasses
import json
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowgate.harness.sim import SimAws, VirtualClock
from flowgate.reference.alarms import ALARM, Transition
from flowgate.reference.bootstrap import Bootstrapper
from flowgate.reference.config import BusConfiguration
from flowgate.reference.dispatchers import build_body, message_attributes
from flowgate.reference.domain.partners import (
    PartnerErrorLog,
    PartnerOrderRejected,
    PartnerOrderSaga,
    PartnerOrderValidated,
    SubmitPartnerOrder,
    partner_command,
    partner_registry,
)
from flowgate.reference.monitoring import Monitor, Thresholds
from flowgate.reference.stores import InMemoryStorage
from flowgate.reference.worker import Runtime, build_runtime

ORDERS = "partner-orders.fifo"
ACCEPTED = "partner-accepted.fifo"
REJECTED = "partner-rejected.fifo"
ERRORS = "partner-errors.fifo"
#: seed 004: valid orders are kept 4 days, error orders 14 days (for investigation)
ORDERS_RETENTION = 4 * 86_400
ERRORS_RETENTION = 14 * 86_400


def partner_bus(*, group_by_partner: bool = True, visibility_timeout: int = 30) -> BusConfiguration:
    """The partner feed's bus (module docstring)."""
    cfg = (
        BusConfiguration(partner_registry())
        .send(SubmitPartnerOrder)
        .to_queue(ORDERS)
        .raise_events(PartnerOrderValidated)
        .to_topic(ACCEPTED)
        .raise_events(PartnerOrderRejected)
        .to_topic(REJECTED)
        .listen_to(ORDERS)
        .subscribe(ERRORS)
        .to_topics(REJECTED)
        .with_retention(ORDERS, ORDERS_RETENTION)
        .with_retention(ERRORS, ERRORS_RETENTION)
        .with_options(visibility_timeout=visibility_timeout, wait_time_seconds=0, max_receive_count=3)
    )
    if group_by_partner:
        cfg.with_message_group(ORDERS, "partnerId")
    return cfg


class _Faults:
    """A worker's fault points: while its ``stall_until`` lies ahead, the handler it is in sits
    there and the rest of the world runs on (virtual time passes step by step)."""

    def __init__(self, world: DetectionWorld, index: int) -> None:
        self.world = world
        self.index = index
        self.stall_for = 0.0

    def hit(self, point: str, context: Mapping[str, Any]) -> None:
        if point != "mid_handler" or self.stall_for <= 0:
            return
        until, self.stall_for = self.world.clock.now() + self.stall_for, 0.0
        self.world.stalled.add(self.index)
        try:
            while self.world.clock.now() < until:
                self.world.step()
        finally:
            self.world.stalled.discard(self.index)


@dataclass
class DetectionWorld:
    """The simulated partner feed with its monitor (module docstring)."""

    seed: int = 0
    workers: int = 2
    rate: float = 1.0
    period: float = 60.0
    thresholds: Thresholds | None = None
    polls_per_step: int = 5
    #: every ``clean_invalid_every``-th order is invalid in normal operation (2 %: under 5 %)
    clean_invalid_every: int = 50
    #: called after every step (tests look inside a stall with it)
    on_step: Callable[[DetectionWorld], None] | None = None

    def __post_init__(self) -> None:
        self.clock = VirtualClock()
        self.aws = SimAws(seed=self.seed, clock=self.clock)
        self.rng = random.Random(self.seed)
        self.sqs = self.aws.client("sqs")
        self.config = partner_bus()
        self.resources = Bootstrapper(
            self.config, sqs=self.sqs, sns=self.aws.client("sns"), sts=self.aws.client("sts")
        ).run()
        self.storage = InMemoryStorage(self.config.registry)
        self.faults = [_Faults(self, i) for i in range(self.workers)]
        self.runtimes: list[Runtime] = [self._runtime(i) for i in range(self.workers)]
        self.alive = [True] * self.workers
        self.stalled: set[int] = set()
        producer_config = BusConfiguration(self.config.registry).send(SubmitPartnerOrder).to_queue(ORDERS)
        producer_config.message_groups.update(self.config.message_groups)
        self.producer = build_runtime(
            producer_config,
            sqs=self.sqs,
            sns=self.aws.client("sns"),
            sts=self.aws.client("sts"),
            storage=self.storage,
            clock=self.clock,
            resources=self.resources,
        )
        self.invalid_share = 0.0
        self.sent = 0
        self._owed = 0.0
        t = self.thresholds or Thresholds(period=self.period)
        self.monitor = Monitor(
            self.sqs,
            ORDERS,
            self.resources.queue_urls[ORDERS],
            self.resources.dlq_urls[ORDERS],
            gauges=self._gauges,
            clock=self.clock.now,
            thresholds=t,
            poll_staleness=min(30.0, t.period / 2),
        )
        self.next_tick = self.clock.now() + t.period

    def _runtime(self, index: int) -> Runtime:
        return build_runtime(
            self.config,
            sqs=self.sqs,
            sns=self.aws.client("sns"),
            sts=self.aws.client("sts"),
            storage=self.storage,
            sagas=[PartnerOrderSaga()],
            views=[PartnerErrorLog()],
            clock=self.clock,
            faults=self.faults[index],
            resources=self.resources,
        )

    def _gauges(self) -> list[dict[str, Any]]:
        return [
            {**lst.gauge.snapshot(), "worker": f"w{i}"}
            for i, rt in enumerate(self.runtimes)
            for lst in rt.listeners
        ]

    # ---------------------------------------------------------------- driving
    def _order(self) -> SubmitPartnerOrder:
        self.sent += 1
        n = self.sent
        invalid = self.rng.random() < self.invalid_share or (
            self.clean_invalid_every > 0 and n % self.clean_invalid_every == 0
        )
        if invalid:
            return SubmitPartnerOrder("PARTNER_X", f"X-{n}", "SKU-1", 1, 100)
        partner = "PARTNER_A" if n % 2 else "PARTNER_B"
        return SubmitPartnerOrder(partner, f"{partner[-1]}-{n}", f"SKU-{n % 7}", 1 + n % 3, 100 * (n % 5))

    def step(self) -> None:
        """One virtual second: sends, polls of every live worker not stalled, a monitor tick."""
        self.clock.advance(1.0)
        self._owed += self.rate
        while self._owed >= 1.0:
            self._owed -= 1.0
            self.producer.command_bus.publish(partner_command(self._order(), clock=self.clock))
        for i, rt in enumerate(self.runtimes):
            if not self.alive[i] or i in self.stalled:
                continue
            for lst in rt.listeners:
                for _ in range(self.polls_per_step):
                    if lst.poll_once() == 0:
                        break
        if self.clock.now() >= self.next_tick:
            self.monitor.tick()
            self.next_tick += self.monitor.thresholds.period
        if self.on_step is not None:
            self.on_step(self)

    def run_for(self, seconds: float) -> None:
        end = self.clock.now() + seconds
        while self.clock.now() < end:
            self.step()

    # ---------------------------------------------------------------- failures
    def kill_workers(self) -> None:
        """Every worker stops (SIGKILL, not restarted): nothing polls."""
        self.alive = [False] * self.workers

    def restart_workers(self) -> None:
        """Fresh worker runtimes (new listeners and gauges, the same store)."""
        self.runtimes = [self._runtime(i) for i in range(self.workers)]
        self.alive = [True] * self.workers

    def stall(self, worker: int, seconds: float) -> None:
        """Worker ``worker``'s next handler sits ``seconds`` (its poll thread with it)."""
        self.faults[worker].stall_for = seconds

    def poison(self, count: int) -> None:
        """``count`` undecodable commands on the order queue (each its own group)."""
        for n in range(count):
            self.sqs.send_message(
                QueueUrl=self.resources.queue_urls[ORDERS],
                MessageBody="{not json",
                MessageAttributes={
                    "CommandType": {"DataType": "String", "StringValue": "SubmitPartnerOrder"}
                },
                MessageGroupId=f"poison-{n}",
                MessageDeduplicationId=f"poison-{self.clock.now()}-{n}",
            )

    def conflicting(self, count: int) -> None:
        """``count`` commands reusing the entity and sequence number of orders already applied,
        under new event ids: each is refused (``SequenceConflict``) until its business retries
        run out, then business-dead-lettered (seed 002's retry exhaustion)."""
        url = self.resources.queue_urls[ORDERS]
        for n in range(1, count + 1):
            order = SubmitPartnerOrder("PARTNER_A", f"A-{2 * n - 1}", "SKU-1", 1, 100)
            cmd = partner_command(order, clock=self.clock)
            cmd = dataclasses.replace(
                cmd,
                metadata=dataclasses.replace(cmd.metadata, sequence_no=1, event_id=str(uuid.UUID(int=n))),
            )
            self.sqs.send_message(
                QueueUrl=url,
                MessageBody=build_body(cmd, ORDERS, None),
                MessageAttributes=message_attributes(cmd, encrypted=False, traceparent=None),
                MessageGroupId=f"conflict-{n}",
                MessageDeduplicationId=cmd.event_id,
            )

    def transitions(self) -> list[Transition]:
        return self.monitor.evaluator.transitions()


@dataclass(frozen=True)
class Case:
    """One row of the matrix: ``inject`` at ``before`` seconds, ``recover`` after ``duration``;
    ``expect`` = the alarms that must fire within ``fire_within`` s of the injection and clear
    within ``clear_within`` s of the recovery; ``allowed`` = alarms that may also fire."""

    name: str
    failure: str
    expect: tuple[str, ...]
    inject: Callable[[DetectionWorld], None]
    recover: Callable[[DetectionWorld], None]
    duration: float
    fire_within: float
    clear_within: float
    allowed: tuple[str, ...] = ()
    before: float = 180.0
    during: Callable[[DetectionWorld], None] | None = None
    world: Mapping[str, Any] = field(default_factory=dict)


def _invalid_on(w: DetectionWorld) -> None:
    w.invalid_share = 0.8


def _invalid_off(w: DetectionWorld) -> None:
    w.invalid_share = 0.0


def _nothing(w: DetectionWorld) -> None:
    return None


CASES: tuple[Case, ...] = (
    Case(
        "workers-killed",
        "every worker killed and not restarted for 10 min, 2 orders/s keep coming",
        ("no-worker-polling", "backlog-over-1000"),
        DetectionWorld.kill_workers,
        DetectionWorld.restart_workers,
        duration=600.0,
        fire_within=600.0,
        clear_within=120.0,
        allowed=("sustained-backlog",),
        world={"rate": 2.0},
    ),
    Case(
        "poison-flood",
        "40 undecodable commands on the order queue",
        ("dlq-growth",),
        lambda w: w.poison(40),
        _nothing,
        duration=60.0,
        fire_within=180.0,
        clear_within=180.0,
    ),
    Case(
        "stalled-handler",
        "one worker's handler sits 10 min on a message (the other worker runs on)",
        ("sustained-backlog",),
        lambda w: w.stall(0, 600.0),
        _nothing,
        duration=600.0,
        fire_within=600.0,
        clear_within=120.0,
    ),
    Case(
        "business-retry-exhaustion",
        "10 commands whose sequence number is taken (new ids for applied orders)",
        ("worker-failed",),
        lambda w: w.conflicting(10),
        _nothing,
        duration=60.0,
        fire_within=180.0,
        clear_within=180.0,
    ),
    Case(
        "partner-invalid",
        "a partner sends mostly invalid orders (80 % rejected) for 5 min",
        ("rejected-share-over-5pct",),
        _invalid_on,
        _invalid_off,
        duration=300.0,
        fire_within=120.0,
        clear_within=120.0,
    ),
)


@dataclass
class Detection:
    """The outcome of one case: per alarm, seconds from injection to firing and from recovery to
    clearing (None: did not happen); ``unexpected`` alarms that fired outside ``expect``/``allowed``
    or before the injection."""

    case: str
    failure: str
    fired: dict[str, float | None]
    cleared: dict[str, float | None]
    unexpected: list[str]
    problems: list[str]
    transitions: list[Transition]
    #: the anomaly kinds behind ``problems``: alarm-not-fired, alarm-not-cleared, false-alarm
    kinds: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def verdict(self) -> str:
        """The failure message: ``flowgate-anomalies: <kinds>`` then the problems."""
        return f"flowgate-anomalies: {','.join(self.kinds)}\n" + "\n".join(self.problems)

    def rows(self) -> list[str]:
        return [
            f"| {self.failure} | `{a}` | {_s(self.fired[a])} | {_s(self.cleared.get(a))} |"
            for a in self.fired
        ]


def _s(v: float | None) -> str:
    return "never" if v is None else f"{v:.0f} s"


def run_case(case: Case, *, seed: int = 0) -> Detection:
    """Run ``case`` on a fresh world and judge it (see :class:`Case`)."""
    world = DetectionWorld(seed=seed, **dict(case.world))
    world.run_for(case.before)
    injected = world.clock.now()
    case.inject(world)
    world.run_for(case.duration)
    recovered = world.clock.now()
    case.recover(world)
    world.run_for(
        max(case.clear_within, 3 * world.monitor.thresholds.period) + world.monitor.thresholds.period
    )
    return judge(
        case.name,
        case.failure,
        expect=case.expect,
        allowed=case.allowed,
        fire_within=case.fire_within,
        clear_within=case.clear_within,
        transitions=world.transitions(),
        injected=injected,
        recovered=recovered,
        states=world.monitor.evaluator.states(),
    )


def judge(
    name: str,
    failure: str,
    *,
    expect: Sequence[str],
    allowed: Sequence[str],
    fire_within: float,
    clear_within: float,
    transitions: Sequence[Transition],
    injected: float,
    recovered: float,
    states: Mapping[str, str],
) -> Detection:
    """Fire/clear times of the ``expect``-ed alarms and the problems: an expected alarm that did
    not fire within ``fire_within`` s of ``injected`` or clear within ``clear_within`` s of
    ``recovered``; any other alarm (not ``allowed``) that fired, or any that fired before the
    injection; an unexpected alarm still in ALARM at the end."""
    fired: dict[str, float | None] = {}
    cleared: dict[str, float | None] = {}
    problems: list[str] = []
    kinds: set[str] = set()
    for alarm in expect:
        fires = [t.time for t in transitions if t.alarm == alarm and t.new == ALARM and t.time >= injected]
        fired[alarm] = fires[0] - injected if fires else None
        clears = [t.time for t in transitions if t.alarm == alarm and t.old == ALARM and t.time >= recovered]
        cleared[alarm] = clears[-1] - recovered if clears and states.get(alarm) != ALARM else None
        fire, clear = fired[alarm], cleared[alarm]
        if fire is None or fire > fire_within:
            problems.append(f"{alarm} did not fire within {fire_within:g} s of the injection")
            kinds.add("alarm-not-fired")
        if clear is None or clear > clear_within:
            problems.append(f"{alarm} did not clear within {clear_within:g} s of the recovery")
            kinds.add("alarm-not-cleared")
    unexpected = sorted(
        {
            t.alarm
            for t in transitions
            if t.new == ALARM and (t.time < injected or t.alarm not in (*expect, *allowed))
        }
    )
    problems += [f"{a} fired although {name} does not explain it" for a in unexpected]
    still = [a for a, s in states.items() if s == ALARM]
    problems += [f"{a} still in ALARM at the end" for a in still if a not in expect]
    if unexpected or any(a not in expect for a in still):
        kinds.add("false-alarm")
    return Detection(name, failure, fired, cleared, unexpected, problems, list(transitions), sorted(kinds))


def run_clean(*, seed: int = 0, seconds: float = 900.0) -> list[Transition]:
    """A clean run (2 % invalid orders, workers healthy): the transitions to ALARM (must be none)."""
    world = DetectionWorld(seed=seed)
    world.run_for(seconds)
    return [t for t in world.transitions() if t.new == ALARM]


def table(detections: Sequence[Detection]) -> str:
    """The detection table (markdown)."""
    lines = ["| failure injected | alarm | time to fire | time to clear |", "|---|---|---|---|"]
    for d in detections:
        lines += d.rows()
    return "\n".join(lines)


def main() -> int:
    """Print the simulator's detection table (``python -m flowgate.harness.detection``)."""
    detections = [run_case(c) for c in CASES]
    print(table(detections))
    clean = run_clean()
    print(f"\nclean run (900 s, 2 % invalid): {len(clean)} alarm(s) fired")
    for d in detections:
        for p in d.problems:
            print(f"{d.case}: {p}")
    print(json.dumps({d.case: d.ok for d in detections}))
    return 0 if all(d.ok for d in detections) and not clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
