"""Stateful exploration: hypothesis picks each step (send, resend, poll worker k, crash/stall at
a point, duplicate delivery, advance time, poison); the teardown drains and runs every checker.
The orders carry ``GetOrder`` reads (``SimConfig.reads``), so ``read_state`` judges what each
read saw after the resends and redeliveries the steps made."""

from __future__ import annotations

from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from flowgate.harness.faults import POISON_KINDS, STALL_POINTS
from flowgate.harness.simulation import SimConfig, Simulation, _quiet_reference
from flowgate.reference.hooks import FAULT_POINTS
from properties.support import assert_valid, sim_label

WORKERS = 3


class BusMachine(RuleBasedStateMachine):
    sim: Simulation

    @initialize(seed=st.integers(0, 2**32 - 1), fifo=st.booleans(), encryption=st.booleans(),
                orders=st.integers(1, 6))
    def start(self, seed: int, fifo: bool, encryption: bool, orders: int) -> None:
        sim_label("Chaos", "stateful exploration", "rule-based steps + final drain")
        self.quiet = _quiet_reference()
        self.quiet.__enter__()
        self.config = SimConfig(seed=seed, orders=orders, workers=WORKERS, fifo=fifo, encryption=encryption,
                                visibility_timeout=10, max_receive_count=4, reads=True)
        note(f"config: {self.config}")
        self.sim = Simulation(self.config)
        self.seen = 0
        self.effects: set[str] = set()

    @rule(order=st.integers(0, 5))
    def send_next(self, order: int) -> None:
        sendable = self.sim.sendable()
        if sendable:
            self.sim.send_next(sendable[order % len(sendable)])

    @rule(order=st.integers(0, 5), which=st.integers(0, 5))
    def resend(self, order: int, which: int) -> None:
        self.sim.resend(order % len(self.sim.orders), which)

    @rule(worker=st.integers(0, WORKERS - 1), views=st.booleans())
    def poll(self, worker: int, views: bool) -> None:
        self.sim.poll(worker, self.sim.views_queue if views else self.config.command_queue)

    @rule(worker=st.integers(0, WORKERS - 1), point=st.sampled_from(FAULT_POINTS))
    def crash_at(self, worker: int, point: str) -> None:
        self.sim.arm("crash", point, worker)

    @rule(worker=st.integers(0, WORKERS - 1), point=st.sampled_from(STALL_POINTS),
          kind=st.sampled_from(["stall", "expire_lease", "redeliver"]))
    def stall_at(self, worker: int, point: str, kind: str) -> None:
        self.sim.arm(kind, point, worker)

    @rule()
    def duplicate(self) -> None:
        self.sim.duplicate_in_flight()

    @rule(seconds=st.sampled_from([0.5, 5.0, 11.0, 301.0]))
    def advance(self, seconds: float) -> None:
        self.sim.advance(seconds)

    @rule(kind=st.sampled_from(POISON_KINDS))
    def poison(self, kind: str) -> None:
        if self.sim.poison.sent < 3:
            self.sim.send_poison(kind)

    @invariant()
    def no_duplicate_effect_so_far(self) -> None:
        if not hasattr(self, "sim"):
            return
        ops = self.sim.history.ops
        for op in ops[self.seen:]:
            if op.f == "effect" and op.type == "ok":
                cid = str(op.value.get("command_id"))
                assert cid not in self.effects, f"second effect of {cid}: {op.describe()}"
                self.effects.add(cid)
        self.seen = len(ops)

    def teardown(self) -> None:
        if not hasattr(self, "sim"):
            return
        try:
            self.sim.nemesis.armed.clear()
            self.sim.nemesis.stop()
            for _ in range(200):  # the producers finish their scripts before the final drain
                sendable = self.sim.sendable()
                if not sendable and all(o.remaining == 0 for o in self.sim.orders):
                    break
                for n in sendable:
                    self.sim.send_next(n)
                got = sum(self.sim.poll(w, q) for w in range(WORKERS)
                          for q in (self.config.command_queue, self.sim.views_queue))
                if not got:
                    self.sim.advance(self.config.visibility_timeout + 1)
            result = self.sim.finish()
            assert_valid(result, [v.checker for v in result.verdicts])
        finally:
            self.quiet.__exit__(None, None, None)


BusMachine.TestCase.settings = settings(settings.default, stateful_step_count=40)
TestBusMachine = BusMachine.TestCase
