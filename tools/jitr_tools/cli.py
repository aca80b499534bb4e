"""The `jitr` command: operator tools over the domain package.

jitr template check FILE [--jitr] [--json]
jitr template render FILE [--cert PEM [--extension NAME=OID]...] [--param NAME=VALUE]... [--json]
jitr verify --cert PEM --ca PEM [--crl FILE | --crl-url URL | --crl-from-certificate] [...]
jitr pki ca | devices | verification
jitr simulate [...]            a fleet on the embedded AWS IoT
jitr invoke EVENT.json [...]   the handler once, in a fresh process
jitr explain CERTIFICATE_ID    what jitr would decide now, and what it decided (read-only)
jitr doctor --stack NAME       is a deployed stack healthy? (read-only)
jitr policy test [...]         may a device do this, and by which statement?
jitr serve [--state DIR]       the embedded AWS IoT for real devices: MQTT over mutual TLS + the HTTP API
jitr demo
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from jitr.certificates import (
    PROFILES,
    BadCertificate,
    CertificateRejected,
    Undecided,
    load_certificate,
    verify_device_certificate,
)
from jitr.facts import CertificateFacts, certificate_facts
from jitr.products import extension_problem
from jitr.revocation_sources import CrlSources
from jitr.settings import CLOCK_SKEW_SECONDS, DEFAULT_CRL_GRACE_SECONDS, RevocationSource
from jitr.templates import Problem, TemplateError, check_template, parse_template, render_template
from jitr_tools import pki
from jitr_tools.arguments import (
    Parser,
    UsageError,
    certificate_id_argument,
    certificates,
    chain_file,
    moment,
    non_negative_int,
    number,
    one_certificate,
    port,
    positive_int,
    read_bytes,
    read_json,
    read_text,
)
from jitr_tools.arguments import regex as regular_expression
from jitr_tools.operating import enroll_commands, revocation_commands
from jitr_tools.operating.revocation_check import (
    Answer,
    CrlFile,
    certificate_source_urls,
    crl_grace,
    crl_url,
    from_files,
    from_sources,
    read_crl_file,
)
from jitr_tools.operating.revocation_check import verdict as revocation_verdict
from jitr_tools.pki import commands as pki_commands
from jitr_tools.pki import revocations as pki_revocations

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed on one line
        return int(exc.code or 0)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.run(args))
    except (OSError, BadCertificate, pki.BadKey, UsageError) as exc:
        print(f"jitr: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ModuleNotFoundError as exc:  # a command of an extra that is not installed (pip install jitr without it)
        extra = EXTRAS.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        print(
            f"jitr: this command needs jitr[{extra}] (no module {exc.name!r}): pip install 'jitr[{extra}]'",
            file=sys.stderr,
        )
        return EXIT_USAGE


# The modules of each optional dependency set (pyproject.toml's optional-dependencies) by the extra that installs them
EXTRAS = {
    **dict.fromkeys(("moto", "amqtt", "OpenSSL", "paho", "werkzeug", "flask"), "serve"),
    **dict.fromkeys(("aws_cdk", "constructs", "cdk_nag", "jsii"), "cdk"),
}


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="jitr", description="Just-in-time registration for AWS IoT Core.")
    commands = parser.add_subparsers(title="commands")

    template = commands.add_parser("template", help="check or render a provisioning template")
    template_commands = template.add_subparsers(title="template commands")
    check = template_commands.add_parser("check", help="check a template as AWS IoT would; list every problem")
    check.add_argument("file", type=Path)
    check.add_argument("--jitr", action="store_true", help="also apply the rules for a JITR template")
    check.add_argument("--json", action="store_true", help="print machine-readable JSON")
    check.set_defaults(run=_template_check)

    render = template_commands.add_parser("render", help="render a template into the plan RegisterThing would run")
    render.add_argument("file", type=Path)
    render.add_argument(
        "--cert",
        type=Path,
        help="device certificate PEM: shows and adds its facts (AWS::IoT::Certificate::*, Jitr::Certificate::*)",
    )
    render.add_argument(
        "--extension",
        action="append",
        default=[],
        metavar="NAME=OID",
        help="an extension the certificate gives as Jitr::Certificate::Extension::NAME (as certificateExtensions)",
    )
    render.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a parameter value")
    render.add_argument("--json", action="store_true", help="print machine-readable JSON")
    render.set_defaults(run=_template_render)

    _verify_parser(commands)

    pki_commands.add_commands(commands)

    simulate = commands.add_parser(
        "simulate", help="a fleet's first connects on the embedded AWS IoT, wired as the stack wires them"
    )
    simulate.add_argument("--devices", type=positive_int, default=60, help="fleet size (default 60)")
    simulate.add_argument(
        "--invalid-fraction",
        type=number(minimum=0, maximum=1),
        default=0.2,
        help="share of defective devices (0.2)",
    )
    simulate.add_argument(
        "--quota",
        type=number(minimum=0, exclusive=True),
        default=20.0,
        help="RegisterThing calls per second (20): the rehearsal runs quota/10 times faster than AWS, devices'"
        " reconnect delays (the Device SDK's 1 s to 120 s) included",
    )
    simulate.add_argument("--seed", type=int, help="makes the fleet and the reconnect jitter repeatable")
    simulate.add_argument("--defects", help="comma-separated defects to use (default: all): " + ", ".join(pki.DEFECTS))
    simulate.add_argument(
        "--revoked",
        type=non_negative_int,
        help="good devices the CA revokes before they connect (default 3, fewer in a smaller fleet; 0: no CRL): its"
        " CRL is served on 127.0.0.1 and the handler rejects them REVOKED_BY_ISSUER",
    )
    simulate.add_argument(
        "--latency-ms", type=number(minimum=0), default=0.0, help="added to each RegisterThing call (0)"
    )
    simulate.add_argument("--wiring", choices=("queue", "direct"), default="queue", help="queue (the stack) or direct")
    simulate.add_argument(
        "--aws-quotas",
        action="store_true",
        help="enforce AWS's default quota of every operation, scaled as --quota scales RegisterThing's 10/s",
    )
    simulate.add_argument(
        "--no-decision-table",
        dest="absorb_duplicates",
        action="store_false",
        help="decide every duplicate event again instead of absorbing it with the decision table",
    )
    simulate.add_argument(
        "--timeout",
        type=number(minimum=0, exclusive=True),
        default=300.0,
        help="seconds before the rehearsal stops, decided or not (300)",
    )
    simulate.add_argument(
        "--products",
        action="store_true",
        help="three product lines from a products configuration: two CAs, a selector, enrollment with a manifest"
        " imported partway, a decision hook (a local function); the summary split by product",
    )
    simulate.add_argument("--json", action="store_true", help="print the result as JSON (no progress bar)")
    simulate.set_defaults(run=_simulate)

    invoke = commands.add_parser("invoke", help="run the handler once, as Lambda would, in a fresh process")
    invoke.add_argument("event", type=Path, help="a registration event, or an SQS batch of them (JSON)")
    invoke.add_argument("--endpoint-url", help="AWS IoT endpoint (the embedded IoT's URL); default: the real account")
    invoke.add_argument("--asset", type=Path, help="a built Lambda asset: the process sees only it and the stdlib")
    invoke.add_argument("--template-name", default="jitr-device", help="the stored template (JITR_TEMPLATE_NAME)")
    invoke.add_argument("--region", help="AWS region (default: AWS_DEFAULT_REGION or us-east-1)")
    invoke.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="another setting")
    invoke.set_defaults(run=_invoke)

    explain = commands.add_parser(
        "explain", help="what jitr would decide now for a certificate in the account, and what it decided (read-only)"
    )
    explain.add_argument("certificate_id", type=certificate_id_argument, help="the certificate's 64-hex-digit id")
    explain.add_argument("--function", help="the deployed registration function: decide with its settings and table")
    explain.add_argument("--template-name", default="jitr-device", help="the stored template, without --function")
    explain.add_argument("--decision-table", help="the stack's decision table, without --function")
    explain.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="another setting")
    explain.add_argument("--endpoint-url", help="AWS endpoint (the embedded IoT's URL); default: the real account")
    explain.add_argument("--region", help="AWS region (default: AWS_DEFAULT_REGION or us-east-1)")
    explain.add_argument("--json", action="store_true", help="print machine-readable JSON")
    explain.set_defaults(run=_explain)

    doctor = commands.add_parser("doctor", help="is a deployed stack healthy? read-only checks, one line each")
    doctor.add_argument("--stack", help="the stack's name (its outputs are read from CloudFormation)")
    doctor.add_argument("--outputs", type=Path, help="cdk-outputs.json, as `make deploy` writes it, instead")
    doctor.add_argument(
        "--pending-minutes",
        type=number(minimum=0),
        default=60.0,
        help="report certificates pending for longer than this (60)",
    )
    doctor.add_argument("--endpoint-url", help="AWS endpoint (the embedded IoT's URL); default: the real account")
    doctor.add_argument("--region", help="AWS region (default: AWS_DEFAULT_REGION or us-east-1)")
    doctor.add_argument("--json", action="store_true", help="print machine-readable JSON")
    doctor.set_defaults(run=_doctor)

    policy = commands.add_parser("policy", help="AWS IoT policies, evaluated for MQTT actions")
    policy_commands = policy.add_subparsers(title="policy commands")
    test = policy_commands.add_parser(
        "test", help="may a device do this? allowed or denied, and by which policy statement"
    )
    test.add_argument("--action", required=True, choices=("connect", "publish", "subscribe", "receive"))
    test.add_argument("--topic", help="the topic (publish, receive) or topic filter (subscribe)")
    test.add_argument("--client-id", required=True, help="the MQTT client id the device connects with")
    source = test.add_mutually_exclusive_group(required=True)
    source.add_argument("--certificate-id", type=certificate_id_argument, help="a certificate in the account")
    source.add_argument("--cert", type=Path, help="a device certificate PEM (its id is looked up in the account)")
    source.add_argument("--policy", type=Path, help="a policy document (JSON), evaluated with no account")
    test.add_argument("--thing", help="with --policy: the thing attached under the client id (default: none)")
    test.add_argument("--account", default="123456789012", help="with --policy: the account in resource ARNs")
    test.add_argument("--endpoint-url", help="AWS IoT endpoint (the embedded IoT's URL); default: the real account")
    test.add_argument("--region", help="AWS region (default: AWS_DEFAULT_REGION or us-east-1)")
    test.add_argument("--json", action="store_true", help="print machine-readable JSON")
    test.set_defaults(run=_policy_test)

    serve = commands.add_parser(
        "serve", help="the embedded AWS IoT as a local service: MQTT over mutual TLS and the HTTP API, on 127.0.0.1"
    )
    serve.add_argument("--config", help="a configuration file, as `cdk deploy -c jitr:configFile=...` takes")
    serve.add_argument("--port", type=port, default=8883, help="MQTT over mutual TLS (default 8883; 0: any)")
    serve.add_argument("--api-port", type=port, default=4566, help="the HTTP API (default 4566; 0: any)")
    serve.add_argument(
        "--state", type=Path, help="keep the account in this folder between runs (and the server CA, the handler log)"
    )
    serve.add_argument(
        "--crl-port",
        type=port,
        default=pki_revocations.CRL_PORT,
        help=f"the development CA's CRL, where `jitr pki devices` points (default {pki_revocations.CRL_PORT}; 0: any)",
    )
    serve.add_argument(
        "--sync-seconds",
        type=number(minimum=0, exclusive=True),
        default=30.0,
        help="how often the revocation sync runs (30)",
    )
    serve.add_argument(
        "--hook",
        action="append",
        default=[],
        metavar="FUNCTION=FILE.py:HANDLER",
        help="a product's decision hook: the Lambda handler (event, context) in FILE.py runs as FUNCTION",
    )
    serve.set_defaults(run=_serve)

    revocation_commands.add_parser(commands)
    enroll_commands.add_parser(commands)

    demo = commands.add_parser("demo", help="the main job on the embedded AWS IoT, no account needed")
    demo.set_defaults(run=_demo)

    init = commands.add_parser("init", help="a new CDK app with jitr's construct in it, for a team that has none")
    init.add_argument("dir", type=Path, metavar="DIR", help="the folder to write the app into (new or empty)")
    init.add_argument("--stack", default="Devices", help="the app's stack name (default: Devices)")
    init.set_defaults(run=_init)
    return parser


def _verify_parser(commands: Any) -> None:
    verify = commands.add_parser("verify", help="why was this device refused? check a certificate as the handler does")
    verify.add_argument(
        "--cert", type=Path, required=True, help="device certificate PEM (a chain file: the first, then its chain)"
    )
    verify.add_argument(
        "--ca",
        type=Path,
        required=True,
        help="the registered CA certificate PEM (a file with its chain up to the root: the first is the registered CA)",
    )
    verify.add_argument("--intermediate", type=Path, action="append", default=[], help="an intermediate PEM")
    verify.add_argument("--root", type=Path, help="a root above the registered CA, used as the trust anchor")
    verify.add_argument("--at", type=moment, help="ISO-8601 time to verify at (default: now, UTC)")
    verify.add_argument("--profile", default="strict", choices=sorted(PROFILES), help="device profile")
    verify.add_argument("--cn-pattern", type=regular_expression, help="regular expression the common name must match")
    verify.add_argument("--max-validity-days", type=positive_int, help="longest validity period allowed")
    verify.add_argument("--json", action="store_true", help="print machine-readable JSON")
    revocation = verify.add_argument_group(
        "revocation",
        "has the issuer revoked it? (exit 1 with REJECTED REVOKED_BY_ISSUER, HELD CERTIFICATE_ON_HOLD"
        " or RETRY REVOCATION_UNKNOWN)",
    )
    revocation.add_argument(
        "--crl",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a CRL (DER or PEM) of an issuer on the path, read offline; repeat for each issuer",
    )
    revocation.add_argument(
        "--crl-url",
        type=crl_url,
        action="append",
        default=[],
        metavar="URL",
        help="fetch the device's CA's CRL as the handler fetches a configured source (http(s):// or s3://bucket/key)",
    )
    revocation.add_argument(
        "--crl-from-certificate",
        action="store_true",
        help="fetch the CRL the device certificate names (its CRL distribution point), on a host --allow-host allows",
    )
    revocation.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="a host the certificate's CRL distribution point may name (the configuration's certificateHosts)",
    )
    revocation.add_argument(
        "--allow-loopback", action="store_true", help="fetch from 127.0.0.1 (a CRL jitr serve or a test serves)"
    )
    revocation.add_argument(
        "--crl-grace",
        type=crl_grace,
        default=DEFAULT_CRL_GRACE_SECONDS,
        metavar="SECONDS",
        help=f"a CRL this long past its nextUpdate is still current ({DEFAULT_CRL_GRACE_SECONDS}, as graceSeconds)",
    )
    verify.set_defaults(run=_verify)


def _print_problems(problems: Sequence[Problem], as_json: bool, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        print(json.dumps({**(extra or {}), "problems": [p.to_dict() for p in problems]}, indent=2))
        return
    for problem in problems:
        print(problem, file=sys.stderr if problem.severity == "error" else sys.stdout)


def _template_check(args: argparse.Namespace) -> int:
    problems = check_template(read_text(args.file), for_jitr=args.jitr)
    errors = [p for p in problems if p.severity == "error"]
    _print_problems(problems, args.json, {"file": str(args.file), "ok": not errors})
    if not args.json:
        verdict = f"{len(errors)} error(s)" if errors else "OK"
        print(f"{args.file}: {verdict}, {len(problems) - len(errors)} warning(s)")
    return EXIT_REJECTED if errors else EXIT_OK


def _template_render(args: argparse.Namespace) -> int:
    facts = _render_facts(args)
    parameters = dict(_pairs(args.param, "--param"))
    shown = {"certificate": {"facts": facts.values, "unreadable": facts.unreadable}} if args.cert else {}
    if args.cert and not args.json:
        _print_facts(facts)
    try:
        template = parse_template(read_text(args.file))
        unreadable = facts.unreadable_in(template.parameters)
        if unreadable:  # as the handler refuses it: MISSING_CERTIFICATE_FIELD
            raise TemplateError(Problem("$.Parameters", "MISSING_CERTIFICATE_FIELD", why) for why in unreadable)
        plan = render_template(template, {**facts.given(template.parameters), **parameters})
    except TemplateError as exc:
        _print_problems(exc.problems, args.json, {"file": str(args.file), "ok": False, **shown})
        return EXIT_REJECTED
    if args.json:
        print(json.dumps({"file": str(args.file), "ok": True, **shown, "plan": plan.to_dict()}, indent=2))
    else:
        for resource in plan.resources:
            print(f"{resource.type} {resource.logical_name}")
            for name, value in resource.properties.items():
                print(f"  {name}: {json.dumps(value)}")
            for name, action in resource.overrides.items():
                print(f"  override {name}: {action}")
    return EXIT_OK


def _render_facts(args: argparse.Namespace) -> CertificateFacts:
    """The facts of `--cert`, with the extensions `--extension` declares (checked as certificateExtensions is)."""
    extensions = dict(_pairs(args.extension, "--extension"))
    for name, oid in extensions.items():
        if problem := extension_problem(name, oid):
            raise UsageError(f"--extension: {problem}")
    if not args.cert:
        if extensions:
            raise UsageError("--extension names an extension of the certificate: add --cert")
        return CertificateFacts({})
    return certificate_facts(load_certificate(one_certificate(args.cert, "--cert")), extensions)


def _pairs(items: Sequence[str], option: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"{option} takes NAME=VALUE, got {item!r}")
        pairs.append((name, value))
    return pairs


def _print_facts(facts: CertificateFacts) -> None:
    print("certificate facts:")
    for name, value in facts.values.items():
        print(f"  {name}: {json.dumps(value)}")
    for name, why in facts.unreadable.items():
        print(f"  {name}: unreadable: {why}")


def _verify(args: argparse.Namespace) -> int:
    """Exit 0: ACCEPTED (and, when asked, no issuer on the path revoked or held it); 1: REJECTED, HELD or RETRY, the
    verdict's first word says which; 2: bad input."""
    profile = PROFILES[args.profile].with_options(args.cn_pattern, args.max_validity_days)
    cert, cert_chain = chain_file(args.cert, "--cert")
    ca, ca_chain = chain_file(args.ca, "--ca", ca=True)  # the registered CA is the anchor, as in AWS IoT
    root = one_certificate(args.root, "--root", ca=True) if args.root else None
    crl_files = [read_crl_file(path) for path in args.crl]
    source = _verify_source(args, load_certificate(cert))
    # the chains the files carry are candidates for the path, as --intermediate is
    intermediates = [*cert_chain, *(_intermediate(p) for p in args.intermediate), *ca_chain]
    try:
        verified = verify_device_certificate(cert, ca, intermediates, args.at, profile=profile, root_pem=root)
    except (CertificateRejected, Undecided) as exc:
        # REJECTED: the certificate's own fault (the handler revokes it); RETRY: not the device's fault (the handler
        # leaves it pending and retries, and the dead-letter queue and an alarm keep it)
        verdict = "REJECTED" if isinstance(exc, CertificateRejected) else "RETRY"
        _print_refusal(args.json, verdict, exc.reason, exc.message, [])
        return EXIT_REJECTED
    answers = _revocation_answers(args, verified.chain, crl_files, source)
    refusal = revocation_verdict(answers)
    if refusal is not None:
        _print_refusal(args.json, str(refusal.outcome), str(refusal.reason), refusal.message, answers)
        return EXIT_REJECTED
    subjects = [c.subject.rfc4514_string() for c in verified.chain]
    if args.json:
        asked = {"revocation": [a.to_dict() for a in answers]} if crl_files or source else {}
        print(json.dumps({"accepted": True, "profile": verified.profile, "chain": subjects, **asked}))
    else:
        print(f"ACCEPTED ({verified.profile} profile): {' <- '.join(subjects)}")
        for answer in answers:
            print(answer.line())
    return EXIT_OK


def _print_refusal(as_json: bool, verdict: str, reason: str, message: str, answers: Sequence[Answer]) -> None:
    if as_json:
        asked = {"revocation": [a.to_dict() for a in answers]} if answers else {}
        print(json.dumps({"accepted": False, "verdict": verdict, "reason": reason, "message": message, **asked}))
        return
    print(f"{verdict} {reason}: {message}")
    for answer in answers:
        print(answer.line())


def _verify_source(args: argparse.Namespace, leaf: x509.Certificate) -> RevocationSource | None:
    """The source `--crl-url` and `--crl-from-certificate` configure for the device's CA, as JITR_REVOCATION would."""
    if args.allow_host and not args.crl_from_certificate:
        raise UsageError("--allow-host allows a host for --crl-from-certificate; add it, or leave --allow-host out")
    if args.crl_from_certificate:
        certificate_source_urls(leaf, args.allow_host)  # a host to allow is bad input, not an unknown status
    elif not args.crl_url:
        return None
    hosts = tuple(args.allow_host) if args.crl_from_certificate else ()
    return RevocationSource(crl=tuple(args.crl_url), certificate_hosts=hosts, grace_seconds=args.crl_grace)


def _revocation_answers(
    args: argparse.Namespace,
    chain: Sequence[x509.Certificate],
    crl_files: Sequence[CrlFile],
    source: RevocationSource | None,
) -> list[Answer]:
    grace, skew = timedelta(seconds=args.crl_grace), timedelta(seconds=CLOCK_SKEW_SECONDS)
    answers = from_files(crl_files, chain, args.at, grace, skew)
    if source is not None:
        import boto3

        crls = CrlSources(loopback_ok=args.allow_loopback, s3_client=lambda: boto3.session.Session().client("s3"))
        answers += from_sources(crls, source, chain, args.at, skew)
    return answers


def _intermediate(path: Path) -> bytes:
    """An --intermediate file: PEM holding at least one certificate."""
    certificates(path, "--intermediate")
    return read_bytes(path)


def _simulate(args: argparse.Namespace) -> int:
    from jitr_tools import terminal
    from jitr_tools.rehearsing.simulate import DEFAULT_REVOKED, Options, good_devices, report, simulate

    options = Options(
        devices=args.devices,
        invalid_fraction=args.invalid_fraction,
        quota=args.quota,
        seed=args.seed,
        latency_ms=args.latency_ms,
        wiring=args.wiring,
        timeout_s=args.timeout,
        aws_quotas=args.aws_quotas,
        absorb_duplicates=args.absorb_duplicates,
        defects=tuple(args.defects.split(",")) if args.defects else tuple(pki.DEFECTS),
        revoked=args.revoked or 0,
        products=args.products,
        progress=not args.json and sys.stderr.isatty(),
    )
    if args.revoked is None and not args.products:
        options.revoked = min(DEFAULT_REVOKED, good_devices(options))
    try:
        result = simulate(options)
    except ValueError as exc:
        print(f"jitr: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        terminal.show(terminal.console(), *report(result))
    return EXIT_OK if result.lost == 0 and not result.unexpected and result.queue_drained else EXIT_REJECTED


def _invoke(args: argparse.Namespace) -> int:
    from jitr_tools.operating.invoke import EventError, check_event, invoke, stack_environment

    try:
        check_event(read_json(args.event, "a JSON event (a registration event, or an SQS batch of them)"))
    except EventError as exc:
        raise UsageError(f"{args.event}: {exc}") from None
    extra = dict(item.split("=", 1) for item in args.env if "=" in item)
    environment = stack_environment(
        template_name=args.template_name, endpoint_url=args.endpoint_url, region=args.region, extra=extra
    )
    try:
        result, logs = invoke(args.event, environment, asset=args.asset)
    except RuntimeError as exc:  # the handler's process failed before answering: its last line says why
        last = [line for line in str(exc).splitlines() if line.strip()][-1]
        raise UsageError(f"the handler process failed: {last}") from None
    sys.stderr.write(logs + ("\n" if logs and not logs.endswith("\n") else ""))
    print(json.dumps(result, indent=2))
    return EXIT_OK if "response" in result else EXIT_REJECTED


def _region(args: argparse.Namespace) -> str:
    return str(args.region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")


def _aws(args: argparse.Namespace) -> Callable[[str], Any]:
    """Clients for the account the command line names (--region, --endpoint-url), with botocore's standard retries."""
    import boto3

    from jitr.iot import client_config

    session = boto3.session.Session(region_name=_region(args))
    config = client_config(3)
    return lambda service: session.client(service, config=config, endpoint_url=args.endpoint_url)


def _explain(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from jitr.hook import Hooks, lambda_clients
    from jitr.iot import IoTError
    from jitr.settings import Settings, SettingsError
    from jitr_tools.operating.explain import explain

    client = _aws(args)
    try:
        if args.function:
            configuration = client("lambda").get_function_configuration(FunctionName=args.function)
            variables = dict(configuration.get("Environment", {}).get("Variables", {}))
        else:
            variables = {Settings.variable("template_name"): args.template_name}
            if args.decision_table:
                variables[Settings.variable("decision_table")] = args.decision_table
        for item in args.env:
            name, sep, value = item.partition("=")
            if not sep:
                raise UsageError(f"--env takes NAME=VALUE, got {item!r}")
            variables[name] = value
        settings = Settings.from_environment(variables)
        crls = CrlSources(loopback_ok=settings.revocation_allow_loopback, s3_client=lambda: client("s3"))
        hooks = Hooks(lambda_clients(args.endpoint_url, _region(args)))  # a product's decision hook is asked
        result = explain(
            args.certificate_id, settings, client("iot"), dynamodb_client=client("dynamodb"), crls=crls, hooks=hooks
        )
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    except IoTError as exc:
        raise UsageError(f"AWS IoT: {exc}") from None
    except (BotoCoreError, ClientError) as exc:
        raise UsageError(f"AWS: {exc}") from None
    print(json.dumps(result.to_dict(), indent=2) if args.json else "\n".join(result.lines()))
    return EXIT_OK


def _doctor(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from jitr_tools import terminal
    from jitr_tools.operating.doctor import Level, OutputsError, diagnose, outputs_from_file, outputs_from_stack, report

    if not args.stack and not args.outputs:
        raise UsageError("name the stack (--stack NAME) or its outputs file (--outputs cdk-outputs.json)")
    client = _aws(args)
    clients = {name: client(name) for name in ("iot", "sqs", "lambda", "cloudformation", "dynamodb", "s3")}
    try:
        if args.outputs:
            try:
                outputs = outputs_from_file(read_json(args.outputs, "JSON"), args.stack)
            except OutputsError as exc:
                raise UsageError(f"{args.outputs}: {exc}") from None
        else:
            outputs = outputs_from_stack(clients["cloudformation"], args.stack)
        findings = diagnose(outputs, clients, pending_after=timedelta(minutes=args.pending_minutes))
    except (BotoCoreError, ClientError) as exc:
        raise UsageError(f"AWS: {exc}") from None
    if args.json:
        print(json.dumps(report(findings), indent=2))
    else:
        say = terminal.line_printer(sys.stdout, terminal.LEVEL_STYLES)
        for finding in findings:
            say(finding.line())
    return EXIT_REJECTED if any(f.level == Level.FAIL for f in findings) else EXIT_OK


def _policy_test(args: argparse.Namespace) -> int:
    from jitr_tools.iot.authorization import (
        Connection,
        PolicyError,
        action_name,
        evaluate,
        principal_view,
        resource_arn,
    )

    action = action_name(args.action)
    if action != "iot:Connect" and not args.topic:
        raise UsageError(f"--action {args.action} needs --topic")
    name = args.client_id if action == "iot:Connect" else args.topic
    if args.policy:
        document = read_json(args.policy, "a policy document (JSON)")
        if not isinstance(document, dict):
            raise UsageError(f"{args.policy}: a policy document is a JSON object")
        policies = [(args.policy.name, document)]
        connection = Connection(args.client_id, args.thing if args.thing == args.client_id else None)
        region, account = _region(args), args.account
    else:
        from botocore.exceptions import BotoCoreError, ClientError

        from jitr.certificates import certificate_id

        cert_id = args.certificate_id or certificate_id(load_certificate(one_certificate(args.cert, "--cert")))
        try:
            policies, connection, arn = principal_view(_aws(args)("iot"), cert_id, args.client_id)
        except (BotoCoreError, ClientError) as exc:
            raise UsageError(f"AWS: {exc}") from None
        except PolicyError as exc:
            raise UsageError(str(exc)) from None
        region, account = arn.split(":")[3], arn.split(":")[4]
    resource = resource_arn(action, name, region, account)
    try:
        verdict = evaluate(policies, action, resource, connection)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(
            json.dumps(
                {
                    "action": action,
                    "resource": resource,
                    "decision": str(verdict.decision),
                    "policy": verdict.policy,
                    "statement": verdict.statement,
                    "notes": list(verdict.notes),
                    "missing": list(verdict.missing),
                }
            )
        )
    else:
        print(f"{action} {resource}: {verdict.describe()}")
        for note in verdict.notes:
            print(f"  note: {note}")
    return EXIT_OK if verdict.allowed else EXIT_REJECTED


def _serve(args: argparse.Namespace) -> int:
    from jitr_config.model import CONFIG_FILE_KEY, CONTEXT_KEY, DEFAULTS, ConfigError, load_config, raw_settings
    from jitr_tools import terminal
    from jitr_tools.endpoint.serve import DEFAULT_FOLDER, ServeOptions, Service, serve_until_interrupted
    from jitr_tools.pki import development_ca_pem
    from jitr_tools.rehearsing import local_hooks

    try:
        hooks = {name: local_hooks.load(where) for name, where in map(local_hooks.parse, args.hook)}
    except local_hooks.HookError as exc:
        raise UsageError(str(exc)) from None
    root = Path.cwd()
    context: dict[str, Any] = {}
    if (root / "cdk.json").is_file():
        cdk_json = read_json(root / "cdk.json", "JSON")
        context = dict(cdk_json.get("context") or {}) if isinstance(cdk_json, dict) else {}
    if args.config:
        context[CONFIG_FILE_KEY] = args.config
    try:
        settings = raw_settings({k: context.get(k) for k in (CONTEXT_KEY, CONFIG_FILE_KEY)}, root)
        config = load_config(settings, root, development_ca=development_ca_pem)
    except ConfigError as exc:
        raise UsageError(f"configuration error: {exc}") from exc
    for note in config.notes:
        print(f"jitr: {note}", file=sys.stderr)
    options = ServeOptions(
        folder=args.state or DEFAULT_FOLDER,
        keep=args.state is not None,
        mqtt_port=args.port,
        api_port=args.api_port,
        dev_pki=Path(str(settings.get("developmentPki", DEFAULTS["developmentPki"]))),  # under the working folder
        crl_port=args.crl_port,
        sync_seconds=args.sync_seconds,
        hooks=hooks,
    )
    say = terminal.line_printer(sys.stdout)  # kept: while the service runs, standard output is the handler's log
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per HTTP API request would bury the devices'

    with contextlib.ExitStack() as running:
        try:
            service = running.enter_context(Service(config, options, say=say))
        except local_hooks.HookError as exc:  # a product's hook with no local function
            raise UsageError(str(exc)) from None
        say(service.banner())
        serve_until_interrupted()
        say("jitr serve: stopping")
    return EXIT_OK


def _init(args: argparse.Namespace) -> int:
    from jitr_tools.scaffold import ScaffoldError, scaffold

    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,127}", args.stack):
        raise UsageError(f"--stack {args.stack!r}: a stack name is letters, digits and hyphens, starting with a letter")
    try:
        written = scaffold(args.dir, args.stack)
    except ScaffoldError as exc:
        raise UsageError(str(exc)) from None
    for path in written:
        print(f"wrote {path}")
    print(f"next: cd {args.dir} and follow its README.md (install, synth, deploy)")
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from jitr_tools.rehearsing.demo import run_demo

    return run_demo()


if __name__ == "__main__":
    raise SystemExit(main())
