"""Least privilege, proved on LocalStack: every AWS call of every role is recorded and judged.

One scenario exercises every role of :mod:`flowgate.reference.iam` as its own process or client set,
each recording its AWS calls (:class:`flowgate.reference.hooks.AwsCallRecorder`; workers through
``FLOWGATE_AWS_CALLS``):

* ``bootstrap`` (bootstrapper): provisions the encrypted order bus, then runs again with another
  visibility timeout (the reconciling path: ``SetQueueAttributes`` on every queue);
* ``producer``: resolves its queue (``--no-bootstrap`` path), sends orders (sealed) and one
  poison command;
* ``commands`` (command consumer) and ``views`` (event consumer): worker processes started with
  ``--no-bootstrap``; a handler delay longer than VT/2 makes the heartbeat extend visibility;
  the harness publishes one poison event to the topic, so both consumers dead-letter;
* ``dlq-operator``: replays one dead letter of each DLQ.

Then :func:`flowgate.harness.iam_audit.audit` with moto's IAM policy evaluator: every recorded call must be
allowed by its role's policy, and every (action, resource) grant of every role must have been
used by a call of that role (or be listed in ``flowgate.reference.iam.RARELY_EXERCISED``). The role table
is printed and written to ``iam-audit.md`` in the test's directory. Mutants ``iam-missing-action``,
``iam-extra-action`` and ``worker-bootstraps-anyway`` must fail it.
"""

from __future__ import annotations

import json

import pytest

from flowgate.fixtures.aws import clients
from flowgate.fixtures.scenario import OrderTopology, Producer, bus_config, drain
from flowgate.harness.iam_audit import audit, load_calls
from flowgate.reference import dlq, iam
from flowgate.reference.bootstrap import Bootstrapper
from flowgate.reference.domain.orders import PlaceOrder
from flowgate.reference.hooks import AWS_CALLS_ENV, AwsCallRecorder
from flowgate.reference.iam import Role
from flowgate.reference.messages import new_command

pytestmark = pytest.mark.localstack

ORDERS = 4
#: the process name each role records under
ROLES = {
    "bootstrap": Role.BOOTSTRAPPER,
    "producer": Role.PRODUCER,
    "commands": Role.COMMAND_CONSUMER,
    "views": Role.EVENT_CONSUMER,
    "dlq-operator": Role.DLQ_OPERATOR,
}


def test_every_call_allowed_and_every_grant_used(scenario, registry, kms_key, summary):
    s = scenario
    topo = OrderTopology(s.uid + "i")
    calls = s.tmp / "calls"
    calls.mkdir()

    def recorder(process: str) -> AwsCallRecorder:
        return AwsCallRecorder(str(calls / f"{process}.jsonl"), process)

    options = {"visibility_timeout": 2, "max_receive_count": 2, "business_max_attempts": 1}
    full = topo.config(kms_key=kms_key, **options)
    # -- bootstrapper: create, then reconcile (another visibility timeout on every queue)
    admin = clients(s.aws.endpoint_url, recorder=recorder("bootstrap"))
    Bootstrapper(
        bus_config({**full, "options": {**full["options"], "visibility_timeout": 5}}, registry),
        sqs=admin.sqs,
        sns=admin.sns,
        sts=admin.sts,
    ).run()
    resources = Bootstrapper(bus_config(full, registry), sqs=admin.sqs, sns=admin.sns, sts=admin.sts).run()
    # -- the two consumers, as processes that only resolve what exists
    env = {AWS_CALLS_ENV: str(calls / "workers.jsonl"), "FLOWGATE_HANDLER_DELAY_MS": "mid_handler:1500"}
    command_cfg = topo.config(kms_key=kms_key, subscribe=[], **options)
    view_cfg = {k: v for k, v in topo.config(kms_key=kms_key, listen=False, **options).items() if k != "send"}
    s.workers.spawn("commands", command_cfg, env=env, args=("--no-bootstrap",))
    s.workers.spawn("views", view_cfg, env=env, args=("--no-bootstrap",))
    # -- producer: resolves its queue, sends sealed orders and one poison command
    producer_cfg = {
        k: v for k, v in full.items() if k in ("domain", "region", "send", "encryption", "options")
    }
    producer_rec = recorder("producer")
    own = clients(s.aws.endpoint_url, recorder=producer_rec)
    produced = Bootstrapper(
        bus_config(producer_cfg, registry), sqs=own.sqs, sns=own.sns, sts=own.sts
    ).resolve()
    producer = Producer(producer_cfg, registry, s.aws, produced, s.history, recorder=producer_rec)
    for n in range(ORDERS):
        producer.publish(new_command(PlaceOrder(f"c-{n}", "SKU-1", 1, 100), f"ord-{s.uid}-{n}"))
    producer.close()
    own.sqs.send_message(
        QueueUrl=produced.queue_urls[topo.commands],
        MessageBody="{not json",
        MessageGroupId="poison",
        MessageDeduplicationId=f"poison-{s.uid}",
    )
    # -- a poison event on the topic (the harness's own, unrecorded client: hostile input)
    s.aws.sns.publish(
        TopicArn=resources.topic_arns[topo.topic],
        Message="{not json",
        MessageGroupId="poison",
        MessageDeduplicationId=f"poison-event-{s.uid}",
    )
    view_queue = topo.view_queue("views")
    urls = [resources.queue_urls[topo.commands], resources.queue_urls[view_queue]]
    result = drain(
        s.history,
        s.workers,
        s.aws,
        urls,
        effects=ORDERS,
        timeout=90,
        settle=2,
        until=lambda ops: sum(o["f"] == "dead_letter" for o in ops) >= 2,
    )
    # -- DLQ operator: resolves and replays one dead letter of each DLQ
    operator = clients(s.aws.endpoint_url, recorder=recorder("dlq-operator"))
    operator.sts.get_caller_identity()
    replayed = 0
    for queue in (topo.commands, view_queue):
        source = operator.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        dead = operator.sqs.get_queue_url(QueueName=bus_config(full, registry).dlq_for(queue))["QueueUrl"]
        replayed += dlq.replay_dead_letters(
            operator.sqs,
            dlq_url=dead,
            source_url=source,
            fifo=True,
            limit=1,
            wait_time_seconds=2,
            dedup_suffix="-replayed",
        )
    s.workers.terminate_all()
    # -- the audit
    policies = iam.role_policies(bus_config(full, registry), account=resources.account, kms_key_arn=kms_key)
    verdict = audit(
        load_calls(sorted(calls.glob("*.jsonl"))),
        roles=ROLES,
        policies=policies,
        region=resources.region,
        account=resources.account,
        key_arns={kms_key: kms_key},
    )
    table = verdict.table()
    (s.tmp / "iam-audit.md").write_text(table + "\n")
    (s.tmp / "policies.json").write_text(json.dumps({str(r): p for r, p in policies.items()}, indent=2))
    print(table)
    summary.add(
        "iam: every call allowed, every grant used",
        orders=ORDERS,
        faults=2 + replayed,
        anomalies=len(verdict.problems()),
        notes=f"{len(verdict.verdicts)} distinct requests",
    )
    assert result.effects >= ORDERS, result.notes
    assert replayed == 2, f"expected one dead letter in each DLQ, replayed {replayed}"
    assert verdict.ok, "\n".join(verdict.problems()) + "\n" + table
