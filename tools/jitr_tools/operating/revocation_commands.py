"""`jitr revocation sync` and `jitr revocation backfill`: the scheduled sync, on demand, and the index's backfill for
certificates decided before it existed, against a deployed stack (its function's settings) or the embedded IoT."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

from jitr_tools.arguments import UsageError, certificate_id_argument, number

EXIT_OK = 0
EXIT_FAILED = 1


def add_parser(commands: Any) -> None:
    revocation = commands.add_parser("revocation", help="keep AWS IoT in step with the issuers' CRLs")
    sub = revocation.add_subparsers(title="revocation commands")
    sync = sub.add_parser("sync", help="revoke in AWS IoT what each configured CA's current CRL lists, now")
    _account_options(sync)
    sync.set_defaults(run=_sync)
    backfill = sub.add_parser(
        "backfill", help="index the certificates of a CA decided before the revocation index existed (resumable)"
    )
    backfill.add_argument("--ca", required=True, type=certificate_id_argument, help="the CA's certificate id")
    backfill.add_argument(
        "--describe-tps", type=number(minimum=0.1), default=2.0, help="DescribeCertificate calls per second (2)"
    )
    _account_options(backfill)
    backfill.set_defaults(run=_backfill)


def _account_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--function", help="the deployed registration function: use its settings and decision table")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="another setting")
    parser.add_argument("--endpoint-url", help="AWS endpoint (the embedded IoT's URL); default: the real account")
    parser.add_argument("--region", help="AWS region (default: AWS_DEFAULT_REGION or us-east-1)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _clients(args: argparse.Namespace) -> Callable[[str], Any]:
    import boto3

    from jitr.iot import client_config

    region = args.region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    session = boto3.session.Session(region_name=region)
    config = client_config(3)
    return lambda service: session.client(service, config=config, endpoint_url=args.endpoint_url)


def _settings(args: argparse.Namespace, client: Callable[[str], Any]) -> Any:
    from jitr.settings import Settings, SettingsError

    variables: dict[str, str] = {Settings.variable("template_name"): "unused"}
    if args.function:
        configuration = client("lambda").get_function_configuration(FunctionName=args.function)
        variables.update(configuration.get("Environment", {}).get("Variables", {}))
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--env takes NAME=VALUE, got {item!r}")
        variables[name] = value
    if args.endpoint_url:
        variables[Settings.variable("endpoint_url")] = args.endpoint_url
    try:
        settings = Settings.from_environment(variables)
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    if not settings.decision_table:
        raise UsageError("name the decision table: --function NAME, or --env JITR_DECISION_TABLE=NAME")
    return settings


def _sync(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from jitr.iot import IoTError
    from jitr.revocation_index import IndexUnavailable
    from jitr_handlers.revocation_sync import run

    client = _clients(args)
    try:
        settings = _settings(args, client)
        if not settings.revocation:
            raise UsageError("no CA has revocation sources configured (JITR_REVOCATION)")
        report = run(settings)
    except (IoTError, IndexUnavailable) as exc:
        raise UsageError(f"AWS: {exc}") from None
    except (BotoCoreError, ClientError) as exc:
        raise UsageError(f"AWS: {exc}") from None
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    for ca in report.cas if not args.json else ():
        done = f"revoked {len(ca.revoked)}, held {len(ca.held)}, released {len(ca.released)}"
        state = "unchanged since the last sync" if ca.unchanged else done
        where = f"CRL {ca.source} #{ca.crl_number}, {ca.listed} entries, {ca.registered} registered here"
        print(f"{ca.ca_id}  {'FAILED: ' + ca.error if ca.error else state}" + ("" if ca.error else f" ({where})"))
    return EXIT_FAILED if report.failed else EXIT_OK


def _backfill(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from jitr.iot import IoT, IoTError
    from jitr.revocation_index import IndexUnavailable, RevocationIndex
    from jitr.revocation_sync import backfill

    client = _clients(args)
    try:
        settings = _settings(args, client)
        index = RevocationIndex(settings.decision_table, client("dynamodb"))
        result = backfill(IoT(client("iot"), template_ttl_s=0), index, args.ca, describe_tps=args.describe_tps)
    except (IoTError, IndexUnavailable) as exc:
        raise UsageError(f"AWS: {exc}") from None
    except (BotoCoreError, ClientError) as exc:
        raise UsageError(f"AWS: {exc}") from None
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        rest = "done" if result.complete else "not finished: run it again to go on"
        print(f"{args.ca}  indexed {result.indexed}, skipped {result.skipped}; {rest}")
    return EXIT_OK
