"""Hypothesis strategies for hostile inputs: catalog kinds and *generated* structured mutations.

:func:`mutation_specs` composes one to three edits of a valid message (field deletion, type
swaps, nesting, boundary values, re-encoding, attribute/body disagreement, identity changes and
reuse, envelope field edits) into a ``~`` spec (:mod:`flowgate.harness.hostile.mutations`), so it reaches
messages no catalog entry names; the expected outcome of each is decided when it is sent, by the
outcome model (:mod:`flowgate.harness.hostile.model`). Every strategy shrinks towards a single, simple
edit (the first path, the first value), and every drawn message replays from its name alone
(``flowgate replay SEED --faults 'poison=...'``).
"""

from __future__ import annotations

from hypothesis import strategies as st

from flowgate.harness import hostile
from flowgate.harness.faults import FaultPlan
from flowgate.harness.hostile import mutations as mu
from flowgate.harness.hostile.mutations import Mutation
from flowgate.harness.simulation import SimConfig

NEST_LEVELS = (1, 2, 8, 14, 15, 16, 17, 40, 1500, 5000)


def _m(op: str, *args: object) -> Mutation:
    return Mutation(op, tuple(str(a) for a in args))


def _index(values: object) -> st.SearchStrategy[int]:
    return st.integers(0, len(values) - 1)  # type: ignore[arg-type]


def single_mutations(*, encrypted: bool) -> st.SearchStrategy[Mutation]:
    """One structured edit (envelope edits only on an encrypted bus)."""
    paths = st.sampled_from(mu.PATHS)
    attr = st.sampled_from(mu.ATTR_NAMES)
    options = [
        paths.map(lambda p: _m("del", p)),
        st.builds(lambda p, t: _m("type", p, t), paths, st.sampled_from(sorted(mu.TYPES))),
        st.builds(lambda p, i: _m("val", p, i), paths, _index(mu.BOUNDARY)),
        st.builds(lambda p, n: _m("nest", p, n), paths, st.sampled_from(NEST_LEVELS)),
        # nesting where only the depth limit can object (an unknown field): around the limit
        st.sampled_from((14, 15, 16, 17, 18, 100)).map(lambda n: _m("nest", "extra", n)),
        st.sampled_from(sorted(mu.ID_VALUES)).flatmap(
            lambda f: _index(mu.ID_VALUES[f]).map(lambda i: _m("id", f, i))
        ),
        st.just(_m("reuse")),
        st.sampled_from(mu.ROUTES).map(lambda r: _m("route", r)),
        st.sampled_from(mu.ENCODINGS).map(lambda e: _m("enc", e)),
        st.sampled_from(("dupkey", "dupval")).map(lambda e: _m("enc", e)),  # duplicate keys, weighted up
        attr.map(lambda a: _m("adel", a)),
        attr.map(lambda a: _m("abin", a)),
        st.builds(lambda a, i: _m("aset", a, i), attr, _index(mu.ATTR_VALUES)),
        st.integers(1, 8).map(lambda n: _m("aadd", n)),
    ]
    if encrypted:
        field = st.sampled_from(mu.ENV_FIELDS)
        options += [
            field.map(lambda f: _m("edel", f)),
            st.builds(lambda f, t: _m("etype", f, t), field, st.sampled_from(sorted(mu.TYPES))),
            st.builds(lambda f, b: _m("eflip", f, b), field, st.integers(0, 4095)),
            st.sampled_from(mu.RESEALS).map(lambda r: _m("reseal", r)),
            st.sampled_from(mu.RESEALS).map(
                lambda r: _m("reseal", r)
            ),  # weighted up: only the binding objects
        ]
    return st.one_of(options)


def mutation_specs(*, encrypted: bool, max_edits: int = 3) -> st.SearchStrategy[str]:
    """A composition of 1..``max_edits`` edits, as a ``~`` spec."""
    return st.lists(single_mutations(encrypted=encrypted), min_size=1, max_size=max_edits).map(
        lambda ms: mu.spec_of(tuple(ms))
    )


def catalog_kinds(*, encrypted: bool, fifo: bool) -> st.SearchStrategy[str]:
    return st.sampled_from([k.name for k in hostile.kinds(encrypted=encrypted, fifo=fifo)])


def hostile_names(*, encrypted: bool, fifo: bool) -> st.SearchStrategy[str]:
    """A catalog kind or a generated mutation (both shrink towards the simplest)."""
    return st.one_of(catalog_kinds(encrypted=encrypted, fifo=fifo), mutation_specs(encrypted=encrypted))


@st.composite
def hostile_runs(
    draw: st.DrawFn,
    *,
    encryption: bool | None = None,
    fifo: bool | None = None,
    max_messages: int = 6,
    orders: tuple[int, int] = (1, 4),
) -> SimConfig:
    """A simulation of valid orders interleaved (by the seeded scheduler) with 1..``max_messages``
    hostile messages, encryption on or off, FIFO or standard."""
    encrypted = draw(st.booleans()) if encryption is None else encryption
    is_fifo = draw(st.booleans()) if fifo is None else fifo
    names = draw(
        st.lists(hostile_names(encrypted=encrypted, fifo=is_fifo), min_size=1, max_size=max_messages)
    )
    return SimConfig(
        seed=draw(st.integers(0, 2**32 - 1)),
        orders=draw(st.integers(*orders)),
        workers=2,
        fifo=is_fifo,
        encryption=encrypted,
        faults=FaultPlan(poison=tuple(names)),
        snapshots=True,
    )


__all__ = ["catalog_kinds", "hostile_names", "hostile_runs", "mutation_specs", "single_mutations"]
