"""flowgate load profiles: ``locust -f loadtests --headless --shape steady-10k``.

The only locustfile in ``loadtests/`` (helpers are ``_``-prefixed so Locust's directory
loader skips them). Locust has already monkey-patched with gevent when it imports this
file, and boto3/botocore are imported only later (in ``_runtime``), so their sockets
cooperate.

What happens:

1. ``test_start``: LocalStack via ``flowgate.harness.launcher.ensure_localstack()`` (or
   ``AWS_ENDPOINT_URL``), the system under load (``--sut reference``: bootstrapper +
   ``--workers`` worker subprocesses; ``--sut raw``: the bare boto3 pipeline), a probe queue
   subscribed to the event topic(s), a batcher (SendMessageBatch of 10, 20 ms linger) and
   probe pollers.
2. The shape (``--shape`` / ``FLOWGATE_SHAPE``) sets the number of :class:`OrderPacer`
   users; each releases ``--user-rate`` orders/min open loop (arrivals do not wait for
   responses), so users x user-rate is the arrival rate.
3. Request events: ``sqs SendMessageBatch`` (per call), ``order due-to-ack`` (scheduled
   time -> send acknowledged), ``order send-to-effect`` (send -> final event seen by the
   probe).
4. ``test_stop``: flush, drain, stop workers, run the checkers over the history, print
   the verdict and figures, write ``reports/load/history.jsonl`` and ``summary.json`` (and,
   with ``--alluredir DIR``, the run's Allure result with its latency plot:
   ``flowgate.harness.load_report``);
   ``quitting`` sets the exit code (non-zero on lost/duplicated effects, achieved rate
   below ``--min-rate-ratio`` of target, or ``--p99-ms``/``--p95-ms`` exceeded).

Distributed mode (``--processes N``, ``--master``/``--worker``): the master does 1 and 4 and
runs the shape; each Locust worker is a sender (``_runtime.Run.attach``): it asks the master for
the system (``flowgate-hello`` -> ``flowgate-system``), paces its share of the users, records
its own sends and ships them every 0.5 s (``flowgate-updates``); at ``test_stop`` (or the
master's ``flowgate-stop``) it flushes and ships its final updates, which the master waits for
before it drains, merges and judges. ``--backend aws`` loads the environment's AWS
(``docs/load.md``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from locust import LoadTestShape, User, events, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flowgate.harness.baseline import Pacer
from loadtests import _shapes
from loadtests._verdict import RunFigures, judge

log = logging.getLogger("flowgate.load")

_STATE: dict[str, object] = {}


def _run():  # type: ignore[no-untyped-def]
    return _STATE.get("run")


@events.init_command_line_parser.add_listener
def _add_arguments(parser) -> None:  # type: ignore[no-untyped-def]
    g = parser.add_argument_group("flowgate")
    g.add_argument(
        "--shape",
        default=os.environ.get("FLOWGATE_SHAPE", "steady-10k"),
        choices=list(_shapes.PROFILES),
        help="load profile",
    )
    g.add_argument(
        "--target-rate",
        type=float,
        default=None,
        help="base rate orders/min (default per shape: 10k; ramp peak 20k; capacity start 5k)",
    )
    g.add_argument("--shape-duration", type=float, default=None, help="profile length in seconds")
    g.add_argument(
        "--user-rate",
        type=float,
        default=_shapes.DEFAULT_USER_RATE,
        help="orders/min released by each pacer user",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("FLOWGATE_WORKERS", "2")),
        help="worker subprocesses of the system under load (default 2: two GILs; with more than one "
        "command per order they share entity state via SQL)",
    )
    g.add_argument(
        "--worker-history",
        dest="worker_history",
        action="store_true",
        default=True,
        help="reference (default): workers write their own history (--history), merged for the checkers",
    )
    g.add_argument(
        "--no-worker-history",
        dest="worker_history",
        action="store_false",
        help="reference: no worker history; effects are observed at the probe (final event)",
    )
    g.add_argument(
        "--effect-at",
        default=os.environ.get("FLOWGATE_EFFECT_AT", "auto"),
        choices=["auto", "view", "probe"],
        help="where an order's effect is observed: view = the worker's view projection (its history's "
        "project op; no extra subscription), probe = a probe queue subscribed to the event topic "
        "(doubles LocalStack's topic fan-out); auto (default) = view when workers write histories",
    )
    g.add_argument(
        "--bus-config",
        default=os.environ.get("FLOWGATE_BUS_CONFIG"),
        help="reference: load a system already running with this bus config (worker config file); "
        "its resources are adopted, not deleted; use --workers 0 if its workers run already",
    )
    g.add_argument(
        "--storage-url",
        default=os.environ.get("FLOWGATE_STORAGE_URL"),
        help="reference: SQL URL for entity state/idempotency (default in-memory; sqlite file if --workers>1)",
    )
    g.add_argument(
        "--pollers",
        type=int,
        default=int(os.environ.get("FLOWGATE_POLLERS", "1")),
        help="reference: poll threads per listener in each worker (BusOptions.pollers; default 1: with 2 "
        "worker processes, fuller receives and fewer calls per order; docs/load.md)",
    )
    g.add_argument(
        "--receive-linger-ms",
        type=float,
        default=float(os.environ.get("FLOWGATE_RECEIVE_LINGER_MS", "200")),
        help="reference: BusOptions.receive_linger in ms (wait after a receive of 1..9 messages; default 200)",
    )
    g.add_argument(
        "--fixed-lingers",
        action="store_true",
        default=os.environ.get("FLOWGATE_FIXED_LINGERS", "") not in ("", "0"),
        help="reference: BusOptions.adaptive_linger off (a partial batch or receive always waits its "
        "linger, as before D35); default: lingers only while batches fill",
    )
    g.add_argument(
        "--encryption",
        action="store_true",
        default=os.environ.get("FLOWGATE_ENCRYPTION", "") not in ("", "0"),
        help="reference: encrypted bus (a KMS key is created for the run; commands and events sealed, "
        "contract section 5); KMS calls per order are reported per operation",
    )
    g.add_argument(
        "--data-key-cache",
        action="store_true",
        default=os.environ.get("FLOWGATE_DATA_KEY_CACHE", "") not in ("", "0"),
        help="reference, with --encryption: BusOptions.data_key_cache on in the producer and the workers "
        "(decision D6; default bounds)",
    )
    g.add_argument(
        "--backend",
        default=os.environ.get("FLOWGATE_BACKEND", "localstack"),
        choices=["localstack", "aws"],
        help="localstack (default: the launcher's endpoint or AWS_ENDPOINT_URL) or aws (the "
        "environment's AWS: boto3's credential chain and region, no warm-up, no service CPU figure; "
        "docs/load.md)",
    )
    g.add_argument("--sut", default=os.environ.get("FLOWGATE_SUT", "reference"), choices=["reference", "raw"])
    g.add_argument(
        "--commands-per-order",
        type=int,
        default=int(os.environ.get("FLOWGATE_COMMANDS_PER_ORDER", "1")),
        choices=[1, 2, 3, 4],
        help="reference: commands issued per order: 1 (default) = PlaceOrder -> OrderPlaced -> view, the "
        "baseline's hops; 4 = the lifecycle Place, Authorize, Reserve, Confirm",
    )
    g.add_argument("--p99-ms", type=float, default=None, help="fail when p99 send-to-effect exceeds this")
    g.add_argument("--p95-ms", type=float, default=None, help="fail when p95 send-to-effect exceeds this")
    g.add_argument("--min-rate-ratio", type=float, default=0.98)
    g.add_argument(
        "--min-effect-ratio",
        type=float,
        default=0.95,
        help="fail when the orders effected during the load are below this share of those acknowledged "
        "(the system fell behind); not applied to capacity, which judges each step",
    )
    g.add_argument("--drain-timeout", type=float, default=60.0)
    g.add_argument("--send-concurrency", type=int, default=32)
    g.add_argument("--step-seconds", type=float, default=30.0, help="capacity: seconds per step")
    g.add_argument("--step-rate", type=float, default=1000.0, help="capacity: orders/min added per step")
    g.add_argument("--baseline-start", type=float, default=5000.0, help="capacity: baseline search start/min")
    g.add_argument("--baseline-step", type=float, default=2500.0, help="capacity: baseline search step/min")
    g.add_argument("--capacity-p99-ms", type=float, default=2000.0, help="capacity: p99 limit of a step")
    g.add_argument("--no-baseline", action="store_true", help="capacity: skip the baseline measurement")
    g.add_argument(
        "--warmup-seconds",
        type=float,
        default=float(os.environ["FLOWGATE_WARMUP_S"]) if os.environ.get("FLOWGATE_WARMUP_S") else None,
        help="seconds of unmeasured baseline traffic through LocalStack first "
        "(default: 30 when this run started LocalStack, else 0)",
    )
    g.add_argument("--report-dir", default="reports/load")
    g.add_argument(
        "--alluredir",
        default=os.environ.get("FLOWGATE_LOAD_ALLURE"),
        help="also write the run as an Allure result here (verdict table, latency plot, first-page "
        "headline; flowgate.harness.load_report); nox -s load/bench pass reports/allure-results/<session>",
    )
    # reports land under reports/load unless the command line says otherwise
    shape = _shape_in_argv()
    parser.set_defaults(csv_prefix=f"reports/load/{shape}", html_file=f"reports/load/{shape}.html")


def _shape_in_argv() -> str:
    """The shape named on the command line (for default report names, set before parsing)."""
    argv = sys.argv
    for i, arg in enumerate(argv):
        if arg == "--shape" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--shape="):
            return arg.split("=", 1)[1]
    return os.environ.get("FLOWGATE_SHAPE", "steady-10k")


def _config(options):  # type: ignore[no-untyped-def]
    from loadtests._runtime import Config

    return Config(
        shape=options.shape,
        target_rate=options.target_rate,
        duration_s=options.shape_duration,
        user_rate=options.user_rate,
        workers=options.workers,
        sut=options.sut,
        p99_ms=options.p99_ms,
        p95_ms=options.p95_ms,
        min_ratio=options.min_rate_ratio,
        min_effect_ratio=options.min_effect_ratio,
        drain_timeout_s=options.drain_timeout,
        send_concurrency=options.send_concurrency,
        commands_per_order=options.commands_per_order,
        storage_url=options.storage_url,
        pollers=options.pollers,
        receive_linger_ms=options.receive_linger_ms,
        adaptive_linger=not options.fixed_lingers,
        bus_config=options.bus_config,
        worker_history=options.worker_history,
        effect_at=options.effect_at,
        report_dir=Path(options.report_dir),
        capacity_p99_ms=options.capacity_p99_ms,
        step_s=options.step_seconds,
        baseline=not options.no_baseline,
        warmup_s=options.warmup_seconds,
        encryption=options.encryption,
        data_key_cache=options.data_key_cache,
        backend=options.backend,
    )


#: Locust messages of the distributed mode (worker -> master: hello, updates; master -> worker:
#: system, stop)
MSG_HELLO, MSG_SYSTEM, MSG_UPDATES, MSG_STOP = (
    "flowgate-hello",
    "flowgate-system",
    "flowgate-updates",
    "flowgate-stop",
)
#: seconds between a sender's updates to the master
SHIP_INTERVAL_S = 0.5

# Locust drops a worker after 3 missed 1 s heartbeats; a sender making its clients or a master
# starting the system under load can hold a busy machine's cores longer than that (both run once,
# before the load). 10 s keeps them; a worker that really died is still dropped.
with contextlib.suppress(ImportError, AttributeError):
    import locust.runners as _runners

    _runners.HEARTBEAT_LIVENESS = max(_runners.HEARTBEAT_LIVENESS, 10)


def _role(environment) -> str:  # type: ignore[no-untyped-def]
    from locust.runners import MasterRunner, WorkerRunner

    if isinstance(environment.runner, MasterRunner):
        return "master"
    if isinstance(environment.runner, WorkerRunner):
        return "sender"
    return "local"


@events.init.add_listener
def _on_init(environment, **_kw) -> None:  # type: ignore[no-untyped-def]
    """Register the distributed mode's messages; a sender process installs ``FLOWGATE_MUTANT``
    (the load test's producer side runs as that mutant: ``flowgate.harness.mutants``)."""
    role = _role(environment)
    _preload()
    if role == "master":
        environment.runner.register_message(MSG_HELLO, _master_hello)
        environment.runner.register_message(MSG_UPDATES, _master_updates)
    elif role == "sender":
        environment.runner.register_message(MSG_SYSTEM, _sender_system, concurrent=True)
        environment.runner.register_message(MSG_STOP, _sender_stop, concurrent=True)
    if role != "master" and (name := os.environ.get("FLOWGATE_MUTANT")):
        # importing the catalog takes seconds: in a thread, so the heartbeats go on meanwhile
        _STATE["mutant"] = gevent.spawn(gevent.get_hub().threadpool.apply, _install_mutant, (name,))


def _install_mutant(name: str) -> object:
    from contextlib import ExitStack

    from flowgate.harness.mutants import apply_mutant

    stack = ExitStack()
    stack.enter_context(apply_mutant(name))  # kept installed for the life of the process
    log.warning("the load test's producer runs as mutant %s", name)
    return stack


def _preload() -> None:
    """Import what a run needs now, before the test: an import in the middle of a distributed
    run blocks the gevent loop for seconds on a busy machine, and a Locust worker that misses
    its heartbeats that long is dropped by the master."""
    import flowgate.reference.bootstrap
    import flowgate.reference.dispatchers
    import flowgate.reference.domain.orders
    import flowgate.reference.envelope  # noqa: F401


def _master_hello(environment, msg, **_kw) -> None:  # type: ignore[no-untyped-def]
    """A Locust worker asks what to send into: the system the master started."""
    run = _run()
    if run is None or run.sut is None:
        log.error("sender %s asked for the system before it was started", msg.node_id)
        return
    run.senders.setdefault(msg.node_id, {"order": len(run.senders) + 1, "released": 0, "final": False})
    index = run.senders[msg.node_id]["order"]
    environment.runner.send_message(MSG_SYSTEM, {**run.sender_spec(), "index": index}, client_id=msg.node_id)


def _master_updates(environment, msg, **_kw) -> None:  # type: ignore[no-untyped-def]
    run = _run()
    if run is not None:
        run.merge_updates(msg.node_id, msg.data)


def _sender_system(environment, msg, **_kw) -> None:  # type: ignore[no-untyped-def]
    """A Locust worker becomes a sender into the master's system, then ships its updates."""
    if _run() is not None:
        return
    from loadtests._runtime import Run

    if (installing := _STATE.get("mutant")) is not None:
        installing.join()  # type: ignore[attr-defined]
    cfg = _config(environment.parsed_options)
    run = Run(cfg=cfg, fire=environment.events.request.fire, log=log.info)
    try:
        run.attach(msg.data, int(msg.data["index"]))
    except Exception as exc:
        log.exception("could not attach to the system under load: %s", exc)
        environment.runner.send_message(MSG_UPDATES, {**_empty_updates(), "final": True, "error": str(exc)})
        return
    _STATE["run"] = run
    log.info("sender %s attached (%s)", run.producer, msg.data["sut"])

    def ship() -> None:  # the first (empty) update tells the master this sender is attached
        while not _STATE.get("final_sent"):
            environment.runner.send_message(MSG_UPDATES, run.take_updates())
            gevent.sleep(SHIP_INTERVAL_S)

    _STATE["shipper"] = gevent.spawn(ship)


def _empty_updates() -> dict[str, object]:
    return {"ops": [], "sent": [], "released": 0, "calls": {}, "kms_calls": {}, "final": False}


def _sender_finish(environment) -> None:  # type: ignore[no-untyped-def]
    """Flush and wait for the in-flight sends, then send the final updates (once)."""
    run = _run()
    if run is None:
        environment.runner.send_message(MSG_UPDATES, {**_empty_updates(), "final": True})
        return
    if _STATE.get("final_sent"):
        return
    run.stop_load()
    _STATE["final_sent"] = True
    environment.runner.send_message(MSG_UPDATES, run.take_updates(final=True))


def _sender_stop(environment, msg, **_kw) -> None:  # type: ignore[no-untyped-def]
    _sender_finish(environment)


@events.test_start.add_listener
def _on_start(environment, **_kw) -> None:  # type: ignore[no-untyped-def]
    role = _role(environment)
    if role == "sender":  # a Locust worker: ask the master for the system (its users wait)
        if _run() is None and not _STATE.get("hello"):
            _STATE["hello"] = True
            environment.runner.send_message(MSG_HELLO, None)
        return
    if _run() is not None:
        return
    if (installing := _STATE.get("mutant")) is not None:
        installing.join()  # type: ignore[attr-defined]
    try:
        from loadtests._runtime import Run

        cfg = _config(environment.parsed_options)
        _STATE["options"] = environment.parsed_options
        run = Run(cfg=cfg, fire=environment.events.request.fire, log=log.info, role=role)
        _STATE["run"] = run
        run.start()
    except Exception as exc:
        log.exception("could not start the system under load: %s", exc)
        _STATE["start_error"] = str(exc)
        environment.process_exit_code = 2
        if environment.runner is not None:
            gevent.spawn_later(0.1, environment.runner.quit)
        with contextlib.suppress(Exception):
            _STATE["run"].shutdown()  # type: ignore[attr-defined]
        return
    shape = environment.shape_class
    if shape is not None:
        shape.bind(run)


class OrderPacer(User):
    """One open-loop source of orders at ``--user-rate`` orders/min."""

    def on_start(self) -> None:
        self.run_state = _run()
        self.pacer: Pacer | None = None

    @task
    def release(self) -> None:
        run = self.run_state = self.run_state or _run()  # a sender's run exists once attached
        if run is None or run.stopping:
            gevent.sleep(0.1 if run is None else 0.5)
            return
        if self.pacer is None:
            rate = self.environment.parsed_options.user_rate if self.environment.parsed_options else 100.0
            # a random phase spreads the users' releases; credit ~ U[0, 1) keeps the expected count
            # released by any time T exactly rate x T (E[floor(U + x)] = x)
            self.pacer = Pacer(rate, time.time(), _credit=random.random())
        while True:
            now = time.time()
            n = self.pacer.due(now)
            if n:
                run.submit(n, now)
            gevent.sleep(self.pacer.next_due_in())

    def wait_time(self) -> float:
        return 0.0


class FlowgateShape(LoadTestShape):
    """Every profile of :mod:`loadtests._shapes`, picked by ``--shape``."""

    use_common_options = False

    def __init__(self) -> None:
        super().__init__()
        self.schedule: _shapes.Schedule | None = None
        self.run_state = None
        self.step_started = 0.0
        self.step_mark: tuple[int, int, int] = (0, 0, 0)
        self.step_log: list[dict[str, object]] = []
        self.commanded: list[tuple[float, float]] = []

    def bind(self, run) -> None:  # type: ignore[no-untyped-def]
        """Start the profile's clock now (again, while a master waits for its senders)."""
        self.run_state = run
        self.reset_time()  # the profile's clock starts once the system under load is up
        run.shape_started = time.time()
        if self.commanded:  # the first rate holds from now (users spawn after test_start)
            self.commanded[0] = (run.shape_started, self.commanded[0][1])

    def _waiting_for_senders(self, run) -> bool:  # type: ignore[no-untyped-def]
        """master: True while a connected Locust worker has not attached (at most 120 s)."""
        assert self.runner is not None
        if not hasattr(self, "senders_since"):
            self.senders_since = time.time()
        if time.time() - self.senders_since > 120.0:
            return False
        attached = sum(1 for s in run.senders.values() if s.get("attached"))
        return attached < max(1, int(getattr(self.runner, "worker_count", 1)))

    def _options(self) -> Any:
        """Locust's parsed command line (there once the runner exists)."""
        assert self.runner is not None
        assert self.runner.environment.parsed_options is not None
        return self.runner.environment.parsed_options

    def _schedule(self) -> _shapes.Schedule:
        if self.schedule is None:
            opts = self._options()
            self.schedule = _shapes.make_schedule(
                opts.shape, rate=opts.target_rate, duration_s=opts.shape_duration
            )
            if isinstance(self.schedule, _shapes.Capacity):
                self.schedule.step_s = opts.step_seconds
                self.schedule.step_rate = opts.step_rate
        return self.schedule

    def tick(self):  # type: ignore[no-untyped-def]
        schedule = self._schedule()
        run = self.run_state
        opts = self._options()
        if run is None:  # the first tick: runner.start() fires test_start (setup) before spawning
            first = _shapes.tick_for(schedule, 0.0, opts.user_rate)
            self.commanded = [(time.time(), first[0] * opts.user_rate if first else 0.0)]
            return first
        if run.role == "master" and self._waiting_for_senders(run):
            # the profile's clock starts once every Locust worker can send (attaching makes its
            # clients: seconds on a busy machine); until then the first rate is commanded
            self.bind(run)
            return _shapes.tick_for(schedule, 0.0, opts.user_rate)
        t = self.get_run_time()
        if isinstance(schedule, _shapes.Capacity):
            self._capacity_step(schedule, run, t)
        result = _shapes.tick_for(schedule, t, opts.user_rate)
        rate = result[0] * opts.user_rate if result is not None else 0.0
        if not self.commanded or self.commanded[-1][1] != rate:
            self.commanded.append((time.time(), rate))  # what the pacers are told: the target
        return result

    def _capacity_step(self, schedule: _shapes.Capacity, run, t: float) -> None:  # type: ignore[no-untyped-def]
        if self.step_started == 0.0:
            self.step_started = t
            self.step_mark = (run.released, run.acked, run.backlog())
            self.step_wall = time.time()
            return
        if t - self.step_started < schedule.step_s or schedule.stopped:
            return
        released, acked, backlog = self.step_mark
        # judge the step on its second half (the first absorbs the step change)
        stats = _shapes.StepStats(
            target_per_min=schedule.current(),
            due=run.released - released,
            acked=run.acked - acked,
            p99_ms=run.window_p99(self.step_wall + schedule.step_s / 2),
            backlog_start=backlog,
            backlog_end=run.backlog(),
        )
        ok, reason = _shapes.step_ok(stats, p99_limit_ms=run.cfg.capacity_p99_ms, min_ratio=run.cfg.min_ratio)
        self.step_log.append({"rate": schedule.current(), "ok": ok, "reason": reason, **stats.__dict__})
        log.info(
            "capacity step %s/min: %s (%s)", f"{schedule.current():,.0f}", "ok" if ok else "STOP", reason
        )
        schedule.end_step(ok)
        self.step_started = t
        self.step_mark = (run.released, run.acked, run.backlog())
        self.step_wall = time.time()


#: seconds the master waits for the senders' final updates after the load stopped
SENDERS_TIMEOUT_S = 90.0


@events.test_stop.add_listener
def _on_stop(environment, **_kw) -> None:  # type: ignore[no-untyped-def]
    role = _role(environment)
    if role == "sender":
        _sender_finish(environment)
        return
    run = _run()
    if run is None or _STATE.get("stopped") or run.sut is None or not run.started:
        return
    _STATE["stopped"] = True
    run.stop_load()
    if role == "master":
        _await_senders(environment, run)
    missing = run.drain()
    run.shutdown()
    _finish(environment, run, missing)


def _await_senders(environment, run) -> None:  # type: ignore[no-untyped-def]
    """master: every sender's final updates (its last sends), asking those that have not sent
    them (a Locust quit does not stop the workers' load before the master's ``test_stop``)."""
    deadline = time.time() + SENDERS_TIMEOUT_S
    asked: set[str] = set()
    while (pending := run.senders_pending()) and time.time() < deadline:
        for node in pending:
            if node not in asked:
                asked.add(node)
                environment.runner.send_message(MSG_STOP, None, client_id=node)
        gevent.sleep(0.2)
    if pending:
        log.error("no final updates from sender(s) %s: their last sends are missing", pending)
    run.senders_missing = list(pending)
    log.info("%d sender(s) reported; %d orders released", len(run.senders), run.released)


def _finish(environment, run, missing: int) -> None:  # type: ignore[no-untyped-def]
    from flowgate.harness.checkers import check_all, render_table

    cfg = run.cfg
    cfg.report_dir.mkdir(parents=True, exist_ok=True)
    history = run.merged_history()
    history_path = history.dump(cfg.report_dir / "history.jsonl")
    if getattr(run, "run_dir", None):
        history.dump(run.run_dir / "history.jsonl")
    verdicts = check_all(history, checkers=["total_queue", "per_entity_order", "exactly_once_effect"])
    print(render_table(verdicts))

    shape = environment.shape_class
    schedule = shape.schedule if shape is not None else None
    begin = run.shape_started or run.started
    commanded = shape.commanded if shape is not None else []
    end = run.load_stopped
    if commanded and commanded[-1][1] == 0.0:
        end = min(end, commanded[-1][0])  # the profile ended here; users were stopped just after
    elapsed = max(1e-6, end - begin)
    acked_in_window = sum(1 for t in run.orders.values() if t.acked and t.due <= end)
    # the target is the rate the shape commanded, integrated over the run (ticks are 1 s apart,
    # so the profile's own integral can differ by a tick at each change)
    target = _shapes.integrate_steps(commanded, begin, end) if commanded else float(run.released)
    p50, p95, p99 = run.percentiles()
    effected_in_window = sum(1 for t, _ in run.latencies if begin <= t <= end)
    figures = RunFigures(
        target_orders=target,
        due_orders=run.released,
        acked_orders=acked_in_window,
        failed_orders=run.failed,
        elapsed_s=elapsed,
        effected_orders=run.effected,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        effected_in_window=effected_in_window,
    )
    summary: dict[str, object] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
        "shape": cfg.shape,
        "sut": cfg.sut,
        "workers": cfg.workers,
        "backend": cfg.backend,
        "locust_role": run.role,
        "senders": len(run.senders) if run.role == "master" else None,
        "target_per_min": round(figures.target_per_min, 1),
        "achieved_per_min": round(figures.achieved_per_min, 1),
        "achieved_ratio": round(figures.ratio, 4),
        "window_s": round(elapsed, 3),
        "commanded": [(round(t - begin, 3), r) for t, r in commanded],
        "effected_in_window_per_min": round(effected_in_window * 60.0 / elapsed, 1),
        "released": run.released,
        "acked": run.acked,
        "failed": run.failed,
        "effected": run.effected,
        "missing_after_drain": missing,
        "duplicate_final_events": run.duplicates,
        "send_to_effect_ms": {"p50": p50, "p95": p95, "p99": p99},
        "effect_observed_at": getattr(run, "effect_at", "probe"),
        "load_average": os.getloadavg(),
        "cores_used": getattr(run, "cpu", {}),  # load + drain window; workers counted after they exit
        "history": str(history_path),
        "history_ops": len(history),
        "worker_histories": [str(p) for p in run.sut.worker_histories()] if run.sut is not None else [],
        "checkers": {v.checker: {"valid": v.valid, "anomalies": len(v.anomalies)} for v in verdicts},
    }
    worker_calls = run.sut.worker_calls() if run.sut is not None else {}
    producer_calls = {**run.producer_calls, **(run.sut.producer_kms_calls if run.sut is not None else {})}
    calls = sum(worker_calls.values()) + sum(producer_calls.values())
    summary["api_calls"] = {"producer": producer_calls, "workers": worker_calls}
    summary["encryption"] = {"on": run.cfg.encryption, "data_key_cache": run.cfg.data_key_cache}
    summary["lingers"] = {"receive_ms": cfg.receive_linger_ms, "adaptive": cfg.adaptive_linger}
    kms_per_order = _kms_calls_per_order(producer_calls, worker_calls, run.effected)
    summary["kms_calls_per_order"] = kms_per_order
    latency = run.sut.worker_call_latency() if run.sut is not None else {}
    summary["worker_call_latency"] = latency
    summary["api_calls_per_order"] = round(calls / run.effected, 2) if run.effected else None
    summary["still_queued_after_drain"] = run.queued
    extra: list[str] = []
    if getattr(run, "senders_missing", None):
        extra.append(
            f"no final updates from Locust worker(s) {run.senders_missing}: their last sends are unknown"
        )
    if missing and run.queued:
        extra.append(
            f"drain timed out with messages still queued {run.queued}: the system under load fell behind "
            "(the 'lost' orders above were not processed in time, not necessarily lost)"
        )
    if isinstance(schedule, _shapes.Capacity):
        summary["capacity_per_min"] = schedule.capacity
        summary["capacity_steps"] = shape.step_log
        if cfg.baseline:
            summary.update(
                _shapes.baseline_entries(
                    schedule.capacity, {wire: _baseline_capacity(cfg, wire) for wire in _shapes.BASELINE_WIRES}
                )
            )
    verdict = judge(
        figures,
        verdicts,
        min_ratio=cfg.min_ratio,
        p99_ms=cfg.p99_ms,
        p95_ms=cfg.p95_ms,
        missing_effects=missing,
        extra_reasons=extra,
        allowance_orders=max((r for _, r in commanded), default=0.0) / cfg.user_rate,
        # capacity judges each step itself; every other shape must keep up while it runs
        min_effect_ratio=None if cfg.shape == "capacity" else cfg.min_effect_ratio,
    )
    summary["exit_code"] = verdict.exit_code
    summary["reasons"] = verdict.reasons
    summary["run_dir"] = str(getattr(run, "run_dir", ""))
    text = json.dumps(summary, indent=2, default=str)
    (cfg.report_dir / "summary.json").write_text(text)  # the latest run
    (cfg.report_dir / f"summary-{cfg.shape}.json").write_text(text)  # the latest run of this shape
    if getattr(run, "run_dir", None):
        (run.run_dir / "summary.json").write_text(text)
    print(
        f"flowgate load {cfg.shape} ({cfg.sut}, {cfg.workers} workers): target {figures.target_per_min:,.0f}/min, "
        f"achieved {figures.achieved_per_min:,.0f}/min ({figures.ratio:.1%}); effected {run.effected}/{run.acked} "
        f"({summary['effected_in_window_per_min']:,.0f}/min during the load); "
        f"send-to-effect ({summary['effect_observed_at']}) p50 {p50:.0f} ms p95 {p95:.0f} ms p99 {p99:.0f} ms; "
        f"API calls/order {summary['api_calls_per_order']}; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; cores used {getattr(run, 'cpu', {})}"
    )
    if run.cfg.encryption:
        print(
            f"KMS calls/order (data-key cache {'on' if run.cfg.data_key_cache else 'off'}): "
            + "; ".join(f"{op} {n}" for op, n in kms_per_order.items())
        )
    if latency:
        print(
            "worker API calls (count, mean ms): "
            + "; ".join(f"{op} {row['calls']:.0f} x {row['mean_ms']:.0f}" for op, row in latency.items())
        )
    if "capacity_per_min" in summary:
        print(_shapes.capacity_line(summary))
    print("VERDICT: " + ("PASS" if verdict.ok else "FAIL: " + "; ".join(verdict.reasons)))
    _STATE["exit_code"] = verdict.exit_code
    alluredir = getattr(environment.parsed_options, "alluredir", None)
    if alluredir:
        from flowgate.harness.load_report import write_load_result

        try:
            result = write_load_result(
                Path(alluredir),
                summary,
                checker_table=render_table(verdicts),
                latencies=run.latencies,
                begin=begin,
                end=end,
                commanded=commanded,
            )
        except Exception as exc:  # the verdict stands; the missing report entry fails the run
            log.exception("could not write the Allure result to %s: %s", alluredir, exc)
            _STATE["exit_code"] = verdict.exit_code or 2
        else:
            print(f"Allure result: {result}")


#: the KMS operations the bus makes (envelope, breaker probe)
KMS_OPERATIONS = ("GenerateDataKey", "Decrypt", "DescribeKey")


def _kms_calls_per_order(
    producer: dict[str, int], workers: dict[str, int], effected: int
) -> dict[str, float | None]:
    """KMS calls per effected order by operation, producer and workers together, and their total."""
    counts = {op: producer.get(op, 0) + workers.get(op, 0) for op in KMS_OPERATIONS}
    out: dict[str, float | None] = {
        op: round(n / effected, 3) if effected else None for op, n in counts.items()
    }
    out["total"] = round(sum(counts.values()) / effected, 3) if effected else None
    return out


def _baseline_capacity(cfg, wire: str) -> float | str:  # type: ignore[no-untyped-def]
    """The bare boto3 baseline's capacity with ``wire``'s messages (``flowgate.harness.baseline.WIRES``),
    measured right after the reference (same run, same machine); an error text if it failed."""
    out = cfg.report_dir / f"baseline-capacity-{wire}.json"
    opts: Any = _STATE["options"]
    cmd = [
        sys.executable,
        "-m",
        "flowgate.harness.baseline",
        "capacity",
        "--start",
        str(opts.baseline_start),
        "--step",
        str(opts.baseline_step),
        "--step-seconds",
        str(min(cfg.step_s, 20.0)),
        "--p99-ms",
        str(cfg.capacity_p99_ms),
        "--wire",
        wire,
        "--json",
        str(out),
    ]
    log.info("measuring the baseline (%s wire): %s", wire, " ".join(cmd))
    proc = subprocess.run(cmd, check=False, cwd=Path(__file__).resolve().parent.parent)
    if proc.returncode != 0 or not out.exists():
        return f"baseline exited {proc.returncode}"
    return float(json.loads(out.read_text())["capacity_per_min"])


@events.quitting.add_listener
def _on_quit(environment, **_kw) -> None:  # type: ignore[no-untyped-def]
    if "exit_code" in _STATE:
        environment.process_exit_code = _STATE["exit_code"]
    elif "start_error" in _STATE:
        environment.process_exit_code = 2
