"""Chaos: LocalStack restarted mid-run -- on the scenario's OWN instance (a second host-mode
LocalStack on port 4610; the shared one is never touched). Host-mode LocalStack keeps no state
across a restart, so the queues, topics and every message in flight are gone: the scenario must
DETECT that and REPORT it (an ``infra`` verdict in the summary), and must not hang.

Phases: A) orders sent and processed; B) orders sent while LocalStack restarts (acknowledged
sends whose messages die with the old instance); detection: queues missing after the restart;
every worker must have survived the outage (still running 3 s after it); C) workers restarted (they re-bootstrap), more orders sent and processed. Verdict: the checkers'
``lost`` anomalies must be exactly commands acknowledged before the restart (reported as
infrastructure loss); anything else (a lost command sent after the restart, a duplicate, an
order violation) fails the test.
"""

from __future__ import annotations

import time

import pytest

from flowgate.fixtures.aws import clients
from flowgate.fixtures.scenario import OrderTopology, Producer, bootstrap, drain, sqlite_url
from flowgate.fixtures.workers import Workers
from flowgate.harness import launcher
from flowgate.harness.checkers import check_all, render_table
from flowgate.harness.workload import generate_orders

pytestmark = [pytest.mark.localstack, pytest.mark.chaos]
PORT = 4610


def _start():
    return launcher.start_host(port=PORT, start_timeout=60)


def test_localstack_restart_is_detected_and_reported(scenario, registry, summary, tmp_path, seed, mutant):
    s = scenario
    if launcher.port_open("127.0.0.1", PORT):
        pytest.fail(f"port {PORT} is busy: another run of this scenario, or something else")
    endpoint = _start()
    aws = clients(endpoint.url)
    workers = Workers(tmp_path / "own", s.history, endpoint_url=endpoint.url, mutant=mutant, seed=seed)
    infra: list[str] = []
    try:
        with workers:
            topo = OrderTopology(s.uid)
            config = topo.config(store=sqlite_url(tmp_path / "store.db"), visibility_timeout=5)
            res = bootstrap(config, registry, aws)
            workers.spawn("w1", config)
            workers.spawn("w2", config)
            scripts = generate_orders(seed + 9, 30, lifecycle=False)
            producer = Producer(config, registry, aws, res, s.history)
            for sc in scripts[:10]:  # A
                producer.send_scripts([sc])
            drain_a = drain(s.history, workers, aws, [res.queue_urls[topo.commands]], effects=10, timeout=60)
            for sc in scripts[10:20]:  # B: acknowledged, then the instance dies
                producer.send_scripts([sc])
            producer.close()
            s.history.nemesis("localstack_restart", {"endpoint": endpoint.url})
            started = time.monotonic()
            endpoint = launcher.restart(endpoint, start_timeout=60)
            restart_s = time.monotonic() - started
            aws = clients(endpoint.url)
            try:
                aws.sqs.get_queue_url(QueueName=topo.commands)
            except aws.sqs.exceptions.QueueDoesNotExist:
                infra.append("LocalStack restart lost all state (queues gone, in-flight messages lost)")
                s.history.nemesis("state_lost", {"queues": "missing after restart"})
            # an outage is transient for the bus: every worker must still be running (its poll
            # loop logs, backs off and retries) -- one that died would leave work unprocessed
            time.sleep(3)
            outage = [f"worker {w.process_name} died during the LocalStack outage (exit {w.process.returncode})"
                      for w in workers.workers.values()
                      if w.process is not None and not w.stopped and w.process.poll() is not None]
            # C: operators redeploy: workers restart and re-bootstrap, clients resend new work
            for name in list(workers.workers):
                workers.restart(name)
            res = bootstrap(config, registry, aws)
            producer = Producer(config, registry, aws, res, s.history)
            for sc in scripts[20:]:
                producer.send_scripts([sc])
            producer.close()
            c_ids = {c.event_id for c in producer.sent}
            result = drain(s.history, workers, aws, [res.queue_urls[topo.commands]],
                           until=lambda ops: c_ids <= {o["value"].get("command_id") for o in ops if o["f"] == "effect"},
                           timeout=60, settle=2)
            workers.terminate_all()
            history = workers.merged_history()
    finally:
        launcher.stop(endpoint)
    restart_at = next(op.index for op in history.ops if op.f == "localstack_restart")
    sent_before = {op.value.get("command_id") for op in history.ops if op.f == "send" and op.index < restart_at}
    verdicts = check_all(history)
    print(render_table(verdicts))
    lost = [a for v in verdicts for a in v.anomalies if a.kind == "lost"]
    other = [a for v in verdicts for a in v.anomalies if a.kind != "lost"]
    lost_after = [a for a in lost if not any(cid and cid in a.message for cid in sent_before)]
    problems = [str(a) for a in other + lost_after] + result.notes + outage
    if not infra:
        problems.append("the restart was not detected (queues still present?)")
    history.dump(launcher.REPORTS / "histories" / "chaos_localstack_restart.jsonl")
    summary.add("chaos: LocalStack restarted mid-run (own instance)", orders=len(scripts), faults=1,
                anomalies=len(problems), notes=f"infra (expected, not a bus fault): {'; '.join(infra) or 'not detected'}; "
                f"{len(lost)} acknowledged commands lost with the old instance (expected, reported); "
                f"restart {restart_s:.1f}s, phase A drain {drain_a.seconds:.1f}s")
    print(f"INFRA VERDICT: {infra}; {len(lost)} commands lost with LocalStack's state (sent before the restart)")
    assert not problems, "\n".join(problems[:20])
