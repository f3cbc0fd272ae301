"""``flowgate policies --config FILE``: print the least-privilege IAM policy of each role.

Reads a worker configuration file (the shape of :mod:`flowgate.reference.worker`) and prints
``{"account", "region", "kmsKeyArn", "policies": {role: policy document}}`` as JSON
(:func:`flowgate.reference.iam.role_policies`; ``--role NAME`` prints that role's document alone).

The account id comes from ``--account`` or, when omitted, from ``sts:GetCallerIdentity`` with
the ambient credentials (``AWS_ENDPOINT_URL`` and the usual boto3 chain), as the bootstrapper
does. When the configuration encrypts with an alias or key id, the key's ARN comes from
``--kms-key-arn`` or from ``kms:DescribeKey`` the same way. No policy names a wildcard account
or key.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from flowgate.reference.config import BusConfiguration
from flowgate.reference.errors import ConfigurationError
from flowgate.reference.iam import Role, key_arn_for, role_policies
from flowgate.reference.worker import DOMAINS, load_config_file


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowgate policies", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="JSON or YAML bus configuration (worker shape)")
    parser.add_argument("--account", help="12-digit account id (default: sts:GetCallerIdentity)")
    parser.add_argument("--region", help="region of the ARNs (default: the configuration's)")
    parser.add_argument("--kms-key-arn", help="ARN of the envelope key (default: kms:DescribeKey of its id)")
    parser.add_argument("--role", choices=[r.value for r in Role], help="print only this role's policy")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    data = load_config_file(args.config)
    domain = DOMAINS.get(str(data.get("domain", "orders")))
    if domain is None:
        parser.error(f"unknown domain {data.get('domain')!r}; known: {sorted(DOMAINS)}")
    config = BusConfiguration.from_dict(data, domain.registry())
    region = args.region or config.options.region
    session: Any = None
    if args.account is None or (config.kms_key_id and args.kms_key_arn is None):
        from flowgate.harness.clients import ClientSettings

        session = ClientSettings.from_environment(region=region)
    account = args.account or str(session.client("sts").get_caller_identity()["Account"])
    key_arn = args.kms_key_arn
    if config.kms_key_id and key_arn is None:
        try:
            key_arn = key_arn_for(config, None)
        except ConfigurationError:
            key_arn = str(session.client("kms").describe_key(KeyId=config.kms_key_id)["KeyMetadata"]["Arn"])
    try:
        policies = role_policies(config, account=account, region=region, kms_key_arn=key_arn)
    except ConfigurationError as exc:
        print(f"flowgate policies: {exc}", file=sys.stderr)
        return 2
    if args.role:
        print(json.dumps(policies[Role(args.role)], indent=2))
    else:
        out = {
            "account": account,
            "region": region,
            "kmsKeyArn": key_arn,
            "policies": {str(role): doc for role, doc in policies.items()},
        }
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
