"""The IAM audit: every recorded AWS call allowed by its process's role, every grant used.

Input: the JSON lines of :class:`flowgate.reference.hooks.AwsCallRecorder` (one per API call of each
process: service, operation, the parameters that name the resource) and which :class:`Role`
each process plays; the policies of :func:`flowgate.reference.iam.role_policies` for the same
configuration.

1. **Each call -> one IAM request** (:func:`to_request`): the action (batch operations authorize
   as their single action: ``SendMessageBatch`` is ``sqs:SendMessage``, ``PublishBatch`` is
   ``sns:Publish``, ...), the resource ARN (``QueueUrl`` / ``QueueName`` -> queue ARN,
   ``TopicArn``, ``Name`` of CreateTopic -> topic ARN, ``KeyId`` -> the key's ARN through the
   alias map, STS -> ``*``) and the condition context (``kms:EncryptionContext:<key>`` for each
   encryption-context entry, ``sns:Protocol`` / ``sns:Endpoint`` of Subscribe).
2. **Allowed?** decided by moto's IAM policy evaluator (``moto.iam.access_control``,
   ``IAMPolicyStatement.is_action_permitted``: action, resource and condition matching), applied
   statement by statement with IAM's combination rule: allowed when some ``Allow`` statement
   permits the request (the generated policies have no ``Deny``; a document with one is refused).
   Two gaps of that evaluator are closed here, not papered over (docs/decisions.md D27): a
   condition key the request does not carry is passed as a value no policy names (IAM: a
   ``StringEquals`` on a missing key does not match; moto would skip it), and a failed condition
   of one statement does not stop the others from being looked at (moto's whole-document method
   returns at the first one).
3. **Every grant used**: each (action, resource) pair of each statement of a role -- with the
   statement's condition -- must permit at least one recorded call of a process of that role,
   or be listed in :data:`flowgate.reference.iam.RARELY_EXERCISED` with its reason.

:meth:`Audit.table` is the role table of ``docs/iam.md``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from flowgate.reference.iam import RARELY_EXERCISED, Role, queue_arn, topic_arn

#: batch operations authorize as their single-message action (SQS and SNS documentation)
BATCH_ACTIONS: Mapping[str, str] = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
    "PublishBatch": "Publish",
}
#: the value a condition key the request does not carry is evaluated with (matches no policy value)
ABSENT = "\x00absent"


@dataclass(frozen=True)
class AwsCall:
    """One recorded API call (a line of :class:`flowgate.reference.hooks.AwsCallRecorder`)."""

    process: str
    service: str
    operation: str
    params: Mapping[str, Any]


@dataclass(frozen=True)
class IamRequest:
    """What IAM authorizes for one call: action, resource ARN and the condition context."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()

    def context_dict(self) -> dict[str, str]:
        return dict(self.context)


def load_calls(paths: Iterable[Path]) -> list[AwsCall]:
    """Every call recorded in ``paths`` (missing files contribute nothing)."""
    calls = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                calls.append(AwsCall(d["process"], d["service"], d["operation"], d.get("params") or {}))
    return calls


def to_request(call: AwsCall, *, region: str, account: str, key_arns: Mapping[str, str]) -> IamRequest:
    """The IAM request of ``call`` (module docstring, step 1). ``key_arns`` maps every key id or
    alias a process may pass as ``KeyId`` to the key's ARN."""
    p = call.params
    action = f"{call.service}:{BATCH_ACTIONS.get(call.operation, call.operation)}"
    context: dict[str, str] = {}
    if call.service == "sqs":
        if "QueueUrl" in p:
            path = [x for x in urlparse(str(p["QueueUrl"])).path.split("/") if x]
            resource = queue_arn(region, path[-2], path[-1])
        else:
            resource = queue_arn(region, account, str(p.get("QueueName", "*")))
    elif call.service == "sns":
        if "TopicArn" in p:
            resource = str(p["TopicArn"])
        else:
            resource = topic_arn(region, account, str(p.get("Name", "*")))
        for key in ("Protocol", "Endpoint"):
            if key in p:
                context[f"sns:{key}"] = str(p[key])
    elif call.service == "kms":
        key_id = str(p.get("KeyId", "*"))
        resource = key_arns.get(key_id) or (
            key_id if key_id.startswith("arn:") else f"arn:aws:kms:{region}:{account}:key/{key_id}"
        )
        for k, v in (p.get("EncryptionContext") or {}).items():
            context[f"kms:EncryptionContext:{k}"] = str(v)
    else:
        resource = "*"
    return IamRequest(action, resource, tuple(sorted(context.items())))


def _condition_keys(statement: Mapping[str, Any]) -> set[str]:
    return {key for block in (statement.get("Condition") or {}).values() for key in block}


def statement_permits(statement: Mapping[str, Any], request: IamRequest) -> bool:
    """True when the ``Allow`` ``statement`` permits ``request`` (moto's statement evaluator; a
    condition key the request lacks is passed as :data:`ABSENT`)."""
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    if statement.get("Effect") != "Allow":
        raise ValueError("only Allow statements are evaluated (the generated policies have no Deny)")
    context = request.context_dict()
    values = {key: context.get(key, ABSENT) for key in _condition_keys(statement)}
    result = IAMPolicyStatement(dict(statement)).is_action_permitted(
        request.action, request.resource, incoming_condition_values=values
    )
    return bool(result == PermissionResult.PERMITTED)


def allowing_statement(policy: Mapping[str, Any], request: IamRequest) -> str | None:
    """The Sid of the first statement of ``policy`` that permits ``request``; None = denied."""
    for n, statement in enumerate(policy["Statement"]):
        if statement_permits(statement, request):
            return str(statement.get("Sid", n))
    return None


@dataclass(frozen=True)
class Verdict:
    """Calls of one process with the same request (counted), and the decision on them."""

    process: str
    role: Role
    request: IamRequest
    calls: int
    allowed_by: str | None

    @property
    def allowed(self) -> bool:
        return self.allowed_by is not None


@dataclass(frozen=True)
class GrantUse:
    """One (action, resource) pair of a role's statement and how many recorded calls it permitted."""

    role: Role
    sid: str
    action: str
    resource: str
    calls: int
    justified: str | None = None


@dataclass
class Audit:
    """The outcome: verdicts per distinct request, grant use per (action, resource) pair."""

    verdicts: list[Verdict]
    grants: list[GrantUse]
    processes: dict[Role, list[str]] = field(default_factory=dict)
    unattributed: list[str] = field(default_factory=list)

    @property
    def denied(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.allowed]

    @property
    def unexercised(self) -> list[GrantUse]:
        """Grants no recorded call used and no reason justifies: more than any process needs."""
        return [g for g in self.grants if g.calls == 0 and g.justified is None]

    @property
    def ok(self) -> bool:
        return not self.denied and not self.unexercised and not self.unattributed

    def problems(self) -> list[str]:
        out = [
            f"DENIED {v.process} ({v.role}): {v.request.action} on {v.request.resource} "
            f"{v.request.context_dict() or ''} x{v.calls}"
            for v in self.denied
        ]
        out += [f"UNEXERCISED {g.role} {g.sid}: {g.action} on {g.resource}" for g in self.unexercised]
        out += [f"process {p} made calls but plays no role" for p in self.unattributed]
        return out

    def table(self) -> str:
        """The role table: processes, calls observed per action, the evaluator's verdicts, grants."""
        lines = [
            "| role | processes | calls observed (action x count) | verdicts | grants used | justified unexercised |",
            "|---|---|---|---|---|---|",
        ]
        for role in Role:
            verdicts = [v for v in self.verdicts if v.role == role]
            per_action: Counter[str] = Counter()
            for v in verdicts:
                per_action[v.request.action] += v.calls
            allowed = sum(v.calls for v in verdicts if v.allowed)
            denied = sum(v.calls for v in verdicts if not v.allowed)
            grants = [g for g in self.grants if g.role == role]
            used = sum(1 for g in grants if g.calls)
            justified = "; ".join(
                f"{g.action} on {g.resource.rsplit(':', 1)[-1]}: {g.justified}"
                for g in grants
                if not g.calls and g.justified
            )
            lines.append(
                f"| {role} | {', '.join(self.processes.get(role, [])) or '-'} | "
                f"{', '.join(f'{a} x{n}' for a, n in sorted(per_action.items())) or '-'} | "
                f"{allowed} allowed, {denied} denied | {used}/{len(grants)} | {justified or '-'} |"
            )
        return "\n".join(lines)


def audit(
    calls: Sequence[AwsCall],
    *,
    roles: Mapping[str, Role | Collection[Role]],
    policies: Mapping[Role, Mapping[str, Any]],
    region: str,
    account: str,
    key_arns: Mapping[str, str] | None = None,
    justified: Mapping[tuple[Role, str], str] = RARELY_EXERCISED,
) -> Audit:
    """Judge ``calls`` (module docstring). ``roles`` maps each recording process to its role, or
    to several (a worker that listens and is subscribed holds both consumer policies, as IAM
    allows a principal several): a call is then allowed when one of them allows it, and counted
    under the first role that does."""
    key_arns = key_arns or {}
    held = {p: (r,) if isinstance(r, Role) else tuple(r) for p, r in roles.items()}
    # per-message context values (message id, entity id) no policy names are dropped: the
    # decision cannot depend on them, and equal requests are then judged once
    named = {key for policy in policies.values() for s in policy["Statement"] for key in _condition_keys(s)}
    counted: Counter[tuple[str, IamRequest]] = Counter()
    unattributed: set[str] = set()
    for call in calls:
        if call.process not in held:
            unattributed.add(call.process)
            continue
        request = to_request(call, region=region, account=account, key_arns=key_arns)
        request = IamRequest(
            request.action, request.resource, tuple(kv for kv in request.context if kv[0] in named)
        )
        counted[(call.process, request)] += 1
    verdicts = []
    for (process, request), n in sorted(counted.items(), key=lambda kv: (kv[0][0], kv[0][1].action)):
        decisions = [(role, allowing_statement(policies[role], request)) for role in held[process]]
        role, sid = next(((r, s) for r, s in decisions if s is not None), (held[process][0], None))
        verdicts.append(Verdict(process, role, request, n, sid))
    grants = []
    for role, policy in policies.items():
        requests = [(v.request, v.calls) for v in verdicts if role in held[v.process]]
        for n, statement in enumerate(policy["Statement"]):
            sid = str(statement.get("Sid", n))
            for action in _as_list(statement["Action"]):
                for resource in _as_list(statement["Resource"]):
                    narrowed = {**statement, "Action": action, "Resource": resource}
                    used = sum(calls for request, calls in requests if statement_permits(narrowed, request))
                    grants.append(GrantUse(role, sid, action, resource, used, justified.get((role, action))))
    processes: dict[Role, list[str]] = {}
    for process, roles_held in sorted(held.items()):
        for role in roles_held:
            processes.setdefault(role, []).append(process)
    return Audit(verdicts, grants, processes, sorted(unattributed))


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flowgate.harness.iam_audit --config FILE --calls FILE [--calls ...] --process NAME=ROLE[+ROLE]``

    Judges recorded calls (e.g. of the load run's workers, started with ``FLOWGATE_AWS_CALLS``)
    against the configuration's role policies and prints the role table. Exit 1 on a denied
    call or a call of a process given no role; with ``--coverage`` also on a grant no call used
    (a load run sends no poison, so its DLQ grants go unused: coverage is the scenario's job)."""
    import argparse

    from flowgate.reference.config import BusConfiguration
    from flowgate.reference.iam import role_policies
    from flowgate.reference.worker import DOMAINS, load_config_file

    parser = argparse.ArgumentParser(prog="python -m flowgate.harness.iam_audit", description=main.__doc__)
    parser.add_argument("--config", required=True, help="the bus configuration the processes ran")
    parser.add_argument(
        "--calls", action="append", required=True, type=Path, help="recorded calls (JSON lines)"
    )
    parser.add_argument("--process", action="append", default=[], metavar="NAME=ROLE[+ROLE]")
    parser.add_argument("--account", help="12-digit account id (default: sts:GetCallerIdentity)")
    parser.add_argument("--kms-key-arn")
    parser.add_argument("--coverage", action="store_true", help="also fail on a grant no call used")
    args = parser.parse_args(argv)
    data = load_config_file(args.config)
    config = BusConfiguration.from_dict(data, DOMAINS[str(data.get("domain", "orders"))].registry())
    region = config.options.region
    if args.account is None:
        from flowgate.harness.clients import ClientSettings

        sts = ClientSettings.from_environment(region=region).client("sts")
        args.account = str(sts.get_caller_identity()["Account"])
    roles = {}
    for item in args.process:
        name, _, held = item.partition("=")
        roles[name] = tuple(Role(r) for r in held.split("+"))
    held = {role for roles_held in roles.values() for role in roles_held}
    policies = {
        role: policy
        for role, policy in role_policies(
            config, account=args.account, region=region, kms_key_arn=args.kms_key_arn
        ).items()
        if role in held  # the roles no recorded process plays are not judged
    }
    key_arns = {config.kms_key_id: args.kms_key_arn} if config.kms_key_id and args.kms_key_arn else {}
    verdict = audit(
        load_calls(args.calls),
        roles=roles,
        policies=policies,
        region=region,
        account=args.account,
        key_arns=key_arns,
    )
    print(verdict.table())
    problems = [p for p in verdict.problems() if args.coverage or not p.startswith("UNEXERCISED")]
    for problem in problems:
        print(problem)
    print(
        f"{sum(v.calls for v in verdict.verdicts)} calls, {len(verdict.verdicts)} distinct requests, "
        f"{sum(v.calls for v in verdict.denied)} denied"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
