"""Property: commands that sagas and aggregates issue take effect exactly once, in order, none
lost (docs/decisions.md D33).

The saga-command flow (``SimConfig.saga_commands``): the client sends ``PlaceOrder`` and
``AuthorizePayment``; the order saga issues ``ReserveInventory`` with the payment's effect, the
fulfilment aggregate ``ConfirmOrder`` with its reaction to ``InventoryReserved``. Workers crash
between the commit and its record, between the commit and the send, after the publish, and lose
their leases; messages are redelivered and duplicated; one or two producers share the store's
numbers. The checkers judge every issued command as acknowledged work (its ``issue`` op), and
the flow itself is checked: each paid order has exactly one issued ``ReserveInventory`` and one
``ConfirmOrder`` (a redelivery of a cause sends the recorded command, never a second one), each
applied once, so every paid order ends CONFIRMED.
"""

from __future__ import annotations

from collections import defaultdict

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from flowgate.harness.checkers import total_queue
from flowgate.harness.faults import FaultPlan
from flowgate.harness.simulation import SimConfig, SimResult
from flowgate.harness.workload import generate_orders
from properties.support import PROBS, assert_valid, sim_label, simulate

CRASH_POINTS = (
    "after_commit_before_record",
    "after_effect_before_delete",
    "after_publish",
    "before_delete",
    "mid_handler",
)

PLANS = st.builds(
    FaultPlan,
    crash=st.sampled_from([0.05, 0.1, 0.2]),
    stall=PROBS,
    expire_lease=PROBS,
    redeliver=PROBS,
    duplicate=PROBS,
    delay_delete=PROBS,
    crash_points=st.just(CRASH_POINTS),
    scripted=st.just(("crash@after_effect_before_delete",)),
)


def saga_configs() -> st.SearchStrategy[SimConfig]:
    return st.builds(
        SimConfig,
        seed=st.integers(0, 2**32 - 1),
        orders=st.integers(2, 8),
        workers=st.integers(2, 3),
        producers=st.integers(1, 2),
        bus_numbers=st.booleans(),
        fifo=st.just(True),
        encryption=st.booleans(),
        visibility_timeout=st.sampled_from([5, 30]),
        max_receive_count=st.sampled_from([3, 4, 5]),
        faults=PLANS,
        cancel_ratio=st.sampled_from([0.0, 0.2]),
        invalid_ratio=st.sampled_from([0.0, 0.2]),
        interleave=st.booleans(),
        saga_commands=st.just(True),
    )


def flow_problems(result: SimResult) -> list[str]:
    """What the history says against the flow: per paid order, the issued commands of each type
    (distinct ids) and their effects; per cancelled order, nothing issued."""
    config = result.config
    scripts = generate_orders(
        config.seed,
        config.orders,
        cancel_ratio=config.cancel_ratio,
        invalid_ratio=config.invalid_ratio,
        saga_commands=True,
    )
    issued: dict[tuple[str, str], set[str]] = defaultdict(set)
    applied: dict[str, int] = defaultdict(int)
    for op in result.history.ops:
        if op.type != "ok":
            continue
        if op.f == "issue":
            issued[(str(op.value["entity_id"]), str(op.value["command_type"]))].add(
                str(op.value["command_id"])
            )
        elif op.f in ("effect", "duplicate") and "command_id" in op.value:
            applied[str(op.value["command_id"])] += 1
    problems = []
    for script in scripts:
        want = 1 if script.final_status == "CONFIRMED" else 0
        for kind in ("ReserveInventory", "ConfirmOrder"):
            ids = issued.get((script.order_id, kind), set())
            if len(ids) != want:
                problems.append(
                    f"order {script.order_id}: {len(ids)} {kind} issued ({sorted(ids)}), want {want}"
                )
            problems += [
                f"order {script.order_id}: issued {kind} {i} never applied" for i in ids if not applied[i]
            ]
    return problems


@given(saga_configs())
def test_issued_commands_take_effect_exactly_once_in_order(config: SimConfig) -> None:
    """Every command a saga or aggregate issued is applied once, in its entity's sequence order,
    none lost, none business-dead-lettered; each paid order issues one of each and ends CONFIRMED."""
    sim_label("Ordering", "saga commands", "saga and aggregate commands under crashes and redeliveries")
    result = simulate(config)
    assert_valid(
        result,
        ["per_entity_order", "total_queue", "exactly_once_effect", "dead_letter", "replay_equivalence"],
    )
    problems = flow_problems(result)
    assert not problems, (
        f"flowgate-anomalies: saga-flow\nseed {result.seed}; replay: {result.replay_command()}\n"
        + "\n".join(problems[:10])
    )


@settings(max_examples=10)
@given(saga_configs())
def test_an_issued_command_never_sent_nor_applied_is_lost(config: SimConfig) -> None:
    """The checkers hold an issued command to account like a client's: the run's history with
    every send and effect of one issued command taken out (as if the worker had lost it after
    committing its cause) is judged ``lost`` by ``total_queue``."""
    sim_label("Ordering", "saga commands", "an issued command that never arrives is lost")
    result = simulate(config)
    issued = [op for op in result.history.ops if op.f == "issue" and op.type == "ok"]
    assume(issued)
    gone = str(issued[0].value["command_id"])
    kept = [
        op
        for op in result.history.ops
        if not (op.f in ("send", "effect", "duplicate") and str(op.value.get("command_id")) == gone)
    ]
    verdict = total_queue(kept)
    lost = [a for a in verdict.anomalies if a.kind == "lost" and gone in a.message]
    assert lost, (
        f"flowgate-anomalies: lost-not-reported\nseed {result.seed}; replay: {result.replay_command()}\n"
        f"issued {gone} taken out of the history, total_queue: {verdict.anomalies[:3]}"
    )
