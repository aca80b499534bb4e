"""`jitr enroll import|list|disable|enable`: the devices a product requires enrolled, in a deployed stack's enrollment
table (or the embedded one's): manufacturing manifests imported, single devices disabled (quarantined) and enabled."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jitr_tools.arguments import UsageError, number, read_bytes

EXIT_OK = 0
EXIT_FAILED = 1
TABLE_VARIABLE = "JITR_ENROLLMENT_TABLE"  # the registration function's variable naming its enrollment table
DECISION_TABLE_VARIABLE = "JITR_DECISION_TABLE"  # and its decision table (the revocation index is kept there)
MAX_PROBLEMS_SHOWN = 100
STATUSES = ("ENROLLED", "DISABLED", "NOT_ENROLLED")


def add_parser(commands: Any) -> None:
    from jitr.enrollment import BY_VALUES, DEFAULT_WRITES_PER_S

    enroll = commands.add_parser("enroll", help="devices a product requires enrolled: manifests, disable, enable")
    sub = enroll.add_subparsers(title="enroll commands")
    imports = sub.add_parser("import", help="enroll every device a manifest (CSV or JSON) lists; resumable")
    imports.add_argument("file", type=Path, help="the manifest: CSV with a header row, or JSON")
    imports.add_argument("--by", choices=BY_VALUES, help="the identity the manifest lists (default: its column)")
    imports.add_argument(
        "--writes-per-second",
        type=number(minimum=1, maximum=10_000),
        default=DEFAULT_WRITES_PER_S,
        help=f"the import's pace ({DEFAULT_WRITES_PER_S:g})",
    )
    _stack_options(imports, queue=True)
    imports.set_defaults(run=_import)
    listing = sub.add_parser("list", help="a product's devices and their status")
    listing.add_argument("--status", choices=STATUSES, help="only these (NOT_ENROLLED: held, never imported)")
    _stack_options(listing, queue=False)
    listing.set_defaults(run=_list)
    for name, run, what in (
        ("disable", _disable, "refuse a device; quarantine its certificate (INACTIVE)"),
        ("enable", _enable, "enroll a disabled device again; release its quarantine"),
    ):
        command = sub.add_parser(name, help=what)
        command.add_argument("id", help="the device's serial number, common name or public-key SHA-256")
        command.add_argument("--by", choices=BY_VALUES, help="which identity ID is (default: the one enrolled)")
        command.add_argument(
            "--event-bus", help="publish the quarantine or release to this EventBridge bus (default: --function's)"
        )
        command.add_argument("--stack", help="the stack's name in the event (default: --function's service name)")
        _stack_options(command, queue=name == "enable")
        if name == "enable":
            command.add_argument(
                "--decision-table",
                help="the stack's decision table, where the revocation sync records what the issuer holds: a"
                f" certificate its issuer holds stays INACTIVE (default: --function's {DECISION_TABLE_VARIABLE})",
            )
        command.set_defaults(run=run)


def _product(text: str) -> str:
    if not text or len(text) > 128:
        raise argparse.ArgumentTypeError("a product name is 1 to 128 characters")
    return text


def _stack_options(parser: argparse.ArgumentParser, *, queue: bool) -> None:
    parser.add_argument("--product", required=True, type=_product, help="the product, as the configuration names it")
    parser.add_argument("--table", help="the enrollment table (default: the one --function names)")
    parser.add_argument("--function", help=f"the deployed registration function: its {TABLE_VARIABLE} and queue")
    if queue:
        parser.add_argument(
            "--queue-url", help="the intake queue held devices are sent to again (default: --function's)"
        )
    parser.add_argument("--endpoint-url", help="AWS endpoint (the embedded IoT's URL); default: the real account")
    parser.add_argument("--region", help="AWS region (default: AWS_DEFAULT_REGION or us-east-1)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _clients(args: argparse.Namespace) -> Callable[[str], Any]:
    import boto3

    from jitr.enrollment import operator_config
    from jitr.iot import client_config

    region = args.region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    session = boto3.session.Session(region_name=region)

    def client(service: str) -> Any:
        config = operator_config() if service == "dynamodb" else client_config(5)
        return session.client(service, config=config, endpoint_url=args.endpoint_url)

    return client


def _stack(args: argparse.Namespace, client: Callable[[str], Any]) -> tuple[str, str | None]:
    """The enrollment table and the intake queue's URL: as given, else the registration function's."""
    table, queue_url = args.table, getattr(args, "queue_url", None)
    if args.function and not table:
        configuration = client("lambda").get_function_configuration(FunctionName=args.function)
        table = configuration.get("Environment", {}).get("Variables", {}).get(TABLE_VARIABLE)
        if not table:
            raise UsageError(f"{args.function} has no {TABLE_VARIABLE}: does its product require enrollment?")
    if args.function and hasattr(args, "queue_url") and not queue_url:
        mappings = client("lambda").list_event_source_mappings(FunctionName=args.function)["EventSourceMappings"]
        arns = [m["EventSourceArn"] for m in mappings if m.get("EventSourceArn", "").startswith("arn:aws:sqs:")]
        if len(arns) == 1:
            name, account = arns[0].split(":")[5], arns[0].split(":")[4]
            queue_url = client("sqs").get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    if not table:
        raise UsageError("name the enrollment table: --table NAME, or --function FUNCTION")
    return table, queue_url


def _revocation_index(args: argparse.Namespace, client: Callable[[str], Any]) -> Any:
    """The revocation index in the stack's decision table: as given, else the registration function's (None: neither
    names one, and `enable` cannot see what the issuer holds)."""
    from jitr.revocation_index import RevocationIndex

    table = args.decision_table
    if args.function and not table:
        configuration = client("lambda").get_function_configuration(FunctionName=args.function)
        table = configuration.get("Environment", {}).get("Variables", {}).get(DECISION_TABLE_VARIABLE)
    return RevocationIndex(table, client("dynamodb")) if table else None


def _intake(queue_url: str | None, client: Callable[[str], Any]) -> Any:
    from jitr.enrollment import Intake
    from jitr.provisioning import RegistrationEvent

    if not queue_url:
        return None
    path = urlsplit(queue_url).path.strip("/").split("/")
    account = path[0] if len(path) == 2 else ""  # https://sqs.<region>.amazonaws.com/<account>/<name>
    if not (account.isdigit() and len(account) == 12):
        raise UsageError(
            f"--queue-url {queue_url!r} is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
        )
    return Intake(queue_url, client("sqs"), lambda c, ca: RegistrationEvent.payload(c, ca, account))


def _aws(run: Callable[[], int]) -> int:
    """AWS's failures as one line."""
    from botocore.exceptions import BotoCoreError, ClientError

    from jitr.enrollment import EnrollmentUnavailable, NotEnrolled, RequeueFailed
    from jitr.iot import IoTError
    from jitr.revocation_index import IndexUnavailable

    try:
        return run()
    except NotEnrolled as exc:
        raise UsageError(str(exc)) from None
    except (EnrollmentUnavailable, IoTError, IndexUnavailable, RequeueFailed, BotoCoreError, ClientError) as exc:
        raise UsageError(f"AWS: {exc}") from None


def _manifest(args: argparse.Namespace) -> Any:
    from jitr.enrollment import ManifestError, read_manifest

    data = read_bytes(args.file)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{args.file}: not UTF-8 text (byte {exc.start}); a manifest is a CSV or JSON file") from None
    try:
        return read_manifest(args.file.name, text, args.by)
    except ManifestError as exc:
        raise UsageError(f"{args.file}: {exc}; nothing imported") from None


def _import(args: argparse.Namespace) -> int:
    from jitr.enrollment import Enrollments, import_manifest
    from jitr.pacing import Pacer

    manifest = _manifest(args)
    if manifest.problems:
        return _refused(args, manifest)
    client = _clients(args)

    def run() -> int:
        table, queue_url = _stack(args, client)
        report = import_manifest(
            Enrollments(table, client("dynamodb")),
            args.product,
            manifest,
            intake=_intake(queue_url, client),
            pacer=Pacer(args.writes_per_second),
        )
        if args.json:
            print(json.dumps(report.to_dict(), indent=2))
        else:
            print(
                f"{manifest.name}: {report.rows} rows: imported {report.imported}, skipped {report.skipped} (already"
                f" enrolled or disabled), refused {report.refused}; {report.requeued} held certificates sent again"
            )
        if report.error:
            print(f"jitr: {report.error}; run it again to go on", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK

    return _aws(run)


def _refused(args: argparse.Namespace, manifest: Any) -> int:
    """A manifest with malformed rows: nothing is imported; each row named on a line of its own."""

    if args.json:
        print(
            json.dumps(
                {
                    "manifest": manifest.name,
                    "rows": manifest.total,
                    "refused": len(manifest.problems),
                    "problems": list(manifest.problems),
                },
                indent=2,
            )
        )
    print(
        f"jitr: {args.file}: refused, nothing imported: {len(manifest.problems)} malformed of {manifest.total} rows",
        file=sys.stderr,
    )
    for problem in manifest.problems[:MAX_PROBLEMS_SHOWN]:
        print(f"  {problem}", file=sys.stderr)
    if len(manifest.problems) > MAX_PROBLEMS_SHOWN:
        print(f"  ... and {len(manifest.problems) - MAX_PROBLEMS_SHOWN} more", file=sys.stderr)
    return EXIT_FAILED


def _list(args: argparse.Namespace) -> int:
    from jitr.enrollment import Enrollments, Status

    client = _clients(args)

    def run() -> int:
        table, _ = _stack(args, client)
        found = Enrollments(table, client("dynamodb")).list(args.product, Status(args.status) if args.status else None)
        if args.json:
            for enrollment in found:
                print(json.dumps(enrollment.to_dict(), separators=(",", ":")))
            return EXIT_OK
        from jitr_tools import terminal

        terminal.show(terminal.console(), enrollment_table(found))
        return EXIT_OK

    return _aws(run)


STATUS_STYLES = {"ENROLLED": "green", "DISABLED": "red"}


def enrollment_table(found: Iterable[Any]) -> Any:
    """`jitr enroll list`: one row per enrolled identity (a `rich` table: coloured on a terminal, plain off one)."""
    from rich.table import Table

    table = Table(box=None, padding=(0, 2), collapse_padding=True, pad_edge=False, header_style="bold")
    for column in ("identity", "status", "manifest", "batch", "certificate", "held"):
        table.add_column(column, justify="right" if column == "held" else "left")
    for enrollment in found:
        certificate = enrollment.provisioned_certificate_id or "-"
        table.add_row(
            f"{enrollment.by}={enrollment.value}",
            f"[{STATUS_STYLES.get(str(enrollment.status), '')}]{enrollment.status}",
            f"{enrollment.manifest}:{enrollment.line}" if enrollment.manifest else "-",
            enrollment.batch or "-",
            certificate + (" (quarantined)" if enrollment.quarantined else ""),
            str(len(enrollment.waiting)),
        )
    return table


def _target(args: argparse.Namespace, enrollments: Any) -> tuple[str, str]:
    """The identity ID names: of the given kind, or the one enrolled (a serial and a name may look alike)."""
    from jitr.enrollment import normalized

    if args.by:
        try:
            return args.by, normalized(args.by, args.id)
        except ValueError as exc:
            raise UsageError(f"{args.id!r} is not a {args.by}: {exc}") from None
    found = enrollments.find(args.product, args.id)
    if len(found) > 1:
        kinds = ", ".join(e.by for e in found)
        raise UsageError(f"{args.id!r} is enrolled in {args.product} as {kinds}: say which with --by")
    if not found:
        raise UsageError(f"{args.id!r} is not enrolled in product {args.product} (import its manifest first)")
    return found[0].by, found[0].value


def _change(args: argparse.Namespace, act: Callable[..., Any]) -> int:
    from jitr.enrollment import Enrollments
    from jitr.iot import IoT

    client = _clients(args)

    def run() -> int:
        table, queue_url = _stack(args, client)
        enrollments = Enrollments(table, client("dynamodb"))
        by, value = _target(args, enrollments)
        extra: dict[str, Any] = {}
        if hasattr(args, "queue_url"):
            extra["intake"] = _intake(queue_url, client)
        if hasattr(args, "decision_table"):
            extra["index"] = _revocation_index(args, client)
        change = act(enrollments, IoT(client("iot"), template_ttl_s=0), args.product, by, value, **extra)
        if args.json:
            print(json.dumps(change.to_dict(), indent=2))
            return _announce(args, client, change, f"{by} {value}")
        done = {None: "", "QUARANTINED": "; its certificate set INACTIVE", "RELEASED": "; its certificate ACTIVE again"}
        kept = ""
        if change.certificate_id and not change.action:
            kept = f"; its certificate left {change.certificate_status or 'as it is (not found in AWS IoT)'}"
        if change.issuer_hold:
            kept = (
                "; its certificate left INACTIVE: its issuer holds it (certificateHold), and the revocation sync sets"
                " it ACTIVE when the hold is lifted"
            )
        requeued = f"; {change.requeued} held certificates sent again" if change.requeued else ""
        print(f"{by} {value} of {args.product}: {change.enrollment.status}{done[change.action]}{kept}{requeued}")
        return _announce(args, client, change, f"{by} {value}")

    return _aws(run)


def _announce(args: argparse.Namespace, client: Callable[[str], Any], change: Any, device: str) -> int:
    """Publish a quarantine or a release as a decision event, where the stack publishes them. The change stands
    either way; a failed publish is said, with a non-zero exit, for the operator to report it."""
    from jitr.events import EventBus, NotPublished, enrollment_entries

    bus, stack = args.event_bus, args.stack
    if args.function and not (bus and stack):
        variables = client("lambda").get_function_configuration(FunctionName=args.function)
        environment = variables.get("Environment", {}).get("Variables", {})
        bus, stack = bus or environment.get("JITR_EVENT_BUS"), stack or environment.get("POWERTOOLS_SERVICE_NAME")
    if not (bus and change.action and change.certificate_id):
        return EXIT_OK
    entries = enrollment_entries(
        str(change.action), args.product, change.certificate_id, change.ca_certificate_id, device, stack=stack or "Jitr"
    )
    try:
        EventBus(bus, lambda: client("events")).put(entries)
    except NotPublished as exc:
        print(f"jitr enroll: done, but its event was not published: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _disable(args: argparse.Namespace) -> int:
    from jitr.enrollment import disable

    return _change(args, disable)


def _enable(args: argparse.Namespace) -> int:
    from jitr.enrollment import enable

    return _change(args, enable)
