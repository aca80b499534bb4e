"""`jitr serve`: the embedded AWS IoT as a local service a device team can point real clients at.

On 127.0.0.1 only: the HTTP API boto3 and the AWS CLI use (`--endpoint-url`), and MQTT over mutual TLS (`broker`)
with a server certificate for localhost and 127.0.0.1 from a local CA written out for devices to trust. Behind it,
what `cdk deploy` leaves in an account, from the same configuration (cdk.json, or `--config`): the CAs, the device
policy, the stored template, and the wiring (topic rule -> queue -> the real handler with the stack's settings), so a
device's first connect is decided as in the account.

When the development CA (`jitr pki ca`) is one of the CAs, its CRL is published on 127.0.0.1 (`--crl-port`, made
afresh from `.dev-pki/` on each request, so `jitr pki revoke` counts at the next fetch), the handler checks its
devices against it, and the revocation sync runs every `sync_seconds`, as the stack's schedule runs it.

Decision events (`decisionEvents`, on by default) go to the configured bus in the embedded account; a rule forwards
them to a queue, and each is printed as it arrives (`EVENT <detail-type> ...`), as a subscriber would receive it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import pickle
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import boto3
from moto.dynamodb.models import dynamodb_backends
from moto.iot.models import iot_backends
from rich.table import Table

from jitr.certificates import certificate_id
from jitr.outcomes import Outcome
from jitr.policy import account_arn, device_policy_document
from jitr.provisioning import Decision
from jitr.revocation_sync import SyncReport
from jitr.settings import RevocationSource, Settings
from jitr_config.model import JitrConfig
from jitr_tools import embedded, pki, terminal
from jitr_tools.embedded import EmbeddedIoT
from jitr_tools.endpoint.broker import MqttEndpoint, running
from jitr_tools.endpoint.tls import ServerCredentials, server_credentials
from jitr_tools.iot.topics import REGISTERED_TOPIC
from jitr_tools.pki import revocations as pki_revocations
from jitr_tools.pki import write_private
from jitr_tools.pki.crl_server import CrlServer
from jitr_tools.rehearsing.event_tap import EventPrinter, EventTap, local_bus
from jitr_tools.rehearsing.local_hooks import LambdaHandler, install, local_settings
from jitr_tools.rehearsing.rehearsal import (
    DECISION_TABLE,
    DEVICE_POLICY,
    ENROLLMENT_TABLE,
    create_decision_table,
    create_enrollment_table,
    deploy_products,
    handler_environment,
    template_names,
)
from jitr_tools.rehearsing.wiring import QueueWiring

# The stack's intake, as infra/jitr_cdk/intake.py and infra/jitr_cdk/handler.py set it (a test holds them together).
BATCH_SIZE = 10
HANDLER_TIMEOUT_S = 30
VISIBILITY_TIMEOUT_S = 6 * HANDLER_TIMEOUT_S
STATE_FILE = "account.pickle"
HANDLER_LOG = "handler.log"
DEFAULT_FOLDER = Path(".jitr-serve")
DECIDING = (Outcome.PROVISIONED, Outcome.REJECTED)

Say = Callable[[str], None]
_ONE_PER_PROCESS = threading.Lock()


@dataclass(frozen=True)
class ServeOptions:
    folder: Path = DEFAULT_FOLDER  # the server CA and certificate, the handler's log; the account too with `keep`
    keep: bool = False  # `--state`: load the account from the folder at start, save it there at stop
    host: str = "127.0.0.1"
    mqtt_port: int = 8883
    api_port: int = 4566
    visibility_timeout_s: float = VISIBILITY_TIMEOUT_S  # how long a failed batch waits in the queue before redelivery
    dev_pki: Path | None = None  # the development PKI: when its issuing CA is configured, its CRL is published
    crl_port: int = pki_revocations.CRL_PORT
    sync_seconds: float = 30.0  # the revocation sync's period
    hooks: Mapping[str, LambdaHandler] = field(default_factory=dict)  # products' hooks: function name -> its handler


class Service:
    """Everything `jitr serve` runs, started by `__enter__` and stopped (the account saved with `keep`) by
    `__exit__`. `say` gets one line per thing that happens (connects, decisions, refusals). While it runs, standard
    output is the handler log (where the handler's EMF lines belong): `say` should write to the console it kept."""

    def __init__(self, config: JitrConfig, options: ServeOptions, say: Say = print) -> None:
        self.config = config
        self.options = options
        self.say = say
        self.iot: EmbeddedIoT
        self.endpoint: MqttEndpoint
        self.credentials: ServerCredentials
        self.api_url = ""
        self.restored = False
        self.decisions: dict[str, Decision] = {}  # per certificate id, this run: PROVISIONED or REJECTED
        self.held: dict[str, Decision] = {}  # per certificate id, this run: the last HELD (enrollment, hook, product)
        self.wiring: QueueWiring | None = None
        self.settings: Settings | None = None  # the handler's (and the revocation sync's)
        self.crl_server: CrlServer | None = None  # the development CA's CRL, when that CA is configured
        self.crl_url = ""
        self._exit = contextlib.ExitStack()
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._sync_errors: dict[str, str | None] = {}  # per CA, the last failure said (said once, not every run)
        self.revoked_by_sync = 0  # certificates the revocation sync set REVOKED this run
        self.events: EventPrinter | None = None  # says the decision events a subscriber to the bus receives

    # -- start and stop -------------------------------------------------------------------------------------------

    def __enter__(self) -> Service:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def _start(self) -> None:
        if not _ONE_PER_PROCESS.acquire(blocking=False):
            raise RuntimeError("one jitr serve per process: the embedded AWS IoT's accounts are the process's own")
        self._exit.callback(_ONE_PER_PROCESS.release)
        options = self.options
        options.folder.mkdir(parents=True, exist_ok=True)
        self.credentials = server_credentials(options.folder)
        self._exit.enter_context(embedded.mock())
        self.iot = EmbeddedIoT()
        self.restored = options.keep and self._restore()
        region = self.iot.region
        self._register_cas()
        if not self.restored:
            self._deploy()
        install(self.iot.functions, self.config.products, options.hooks)  # functions are the process's, not saved
        self.api_url = self._exit.enter_context(embedded.serve(options.host, options.api_port))
        if options.keep:
            self._exit.callback(self._save)  # runs after the wiring and the endpoint have stopped (exit order)
        log = self._exit.enter_context((options.folder / HANDLER_LOG).open("a", encoding="utf-8"))
        # The handler's log lines and its EMF metric lines (standard output, as in Lambda) go to the handler log.
        self._exit.enter_context(contextlib.redirect_stdout(log))
        if self.config.validated:
            enrollment_table = ENROLLMENT_TABLE if self.config.enrollment else None
            settings = self.config.handler_settings(self.template_names, DECISION_TABLE, enrollment_table)
            settings = self._with_revocation(local_settings(settings))
            settings = self._with_events(settings)
            self.settings = settings
            new_environment = self._exit.enter_context(
                handler_environment(
                    region, log, function_name="jitr-serve", on_decision=self._decided, settings=settings
                )
            )
            wiring = QueueWiring(
                new_environment,
                concurrency=settings.max_concurrency or 1,
                batch_size=BATCH_SIZE,
                visibility_timeout_s=options.visibility_timeout_s,
                max_receive_count=self.config.max_receive_count,
            )
            self.wiring = wiring
            self._exit.callback(self._summary, wiring)  # after the wiring has stopped (exit order)
            self._exit.callback(wiring.stop)
            for ca in self.config.cas:
                if not ca.retired:  # the stack routes each active CA's topic to the intake queue
                    self.iot.subscribe(
                        REGISTERED_TOPIC.format(ca_id=ca.certificate_id),
                        lambda _topic, event: wiring.send(json.dumps(event)),
                    )
            if settings.revocation:
                self._start_sync()
        endpoint = MqttEndpoint(self.iot, self.credentials, self.say, host=options.host, port=options.mqtt_port)
        self.endpoint = self._exit.enter_context(running(endpoint))

    @property
    def template_names(self) -> dict[str, str]:
        """Each product's stored template name."""
        return template_names(self.config)

    def _register_cas(self) -> None:
        """Each configured CA not registered yet, as the stack registers it. The proof of possession (DEFAULT mode's
        verification certificate) is between the CA's owner and AWS, made for a real account's registration code:
        serve registers what the configuration names without it."""
        backend = self.iot.backend
        for ca in self.config.cas:
            if ca.certificate_id not in backend.ca_certificates:
                backend.register_as_deployed(ca.pem, self.config.certificate_mode, retired=ca.retired)

    def _deploy(self) -> None:
        """What `cdk deploy` leaves in the account, from the configuration."""
        config = self.config
        iot = boto3.client("iot", region_name=self.iot.region)
        existing = config.existing_resources  # resources the template names that an account already has
        for name in existing.get("thingTypes", ()):
            iot.create_thing_type(thingTypeName=name)
        for name in existing.get("thingGroups", ()):
            iot.create_thing_group(thingGroupName=name)
        for name in existing.get("billingGroups", ()):
            iot.create_billing_group(billingGroupName=name)
        if config.validated:
            deploy_products(iot, config, self.iot.account_id)
            dynamodb = boto3.client("dynamodb", region_name=self.iot.region)
            create_decision_table(dynamodb)
            if config.enrollment:
                create_enrollment_table(dynamodb)
            return
        # jitp: AWS IoT provisions with the CA's registrationConfig, nobody is asked
        document = copy.deepcopy(config.template.document)
        if config.device_policy_parameter:
            policy = device_policy_document(account_arn(self.iot.region, self.iot.account_id))
            iot.create_policy(policyName=DEVICE_POLICY, policyDocument=json.dumps(policy))
            document["Parameters"][config.device_policy_parameter]["Default"] = DEVICE_POLICY
        role = f"arn:aws:iam::{self.iot.account_id}:role/jitr-provisioning"
        for ca in config.cas:
            iot.update_ca_certificate(
                certificateId=ca.certificate_id,
                registrationConfig={"templateBody": json.dumps(document), "roleArn": role},
            )

    # -- decision events ---------------------------------------------------------------------------------------------

    def _with_events(self, settings: Settings) -> Settings:
        """The handler's settings with the configured bus as the embedded account names it, and a subscriber to it
        whose events are printed as they arrive (and once more at the stop: none is missed)."""
        if not settings.event_bus:
            return settings
        bus = local_bus(settings.event_bus)
        self.events = EventPrinter(EventTap(bus, self.iot.region), self.say).start()
        self._exit.callback(self.events.stop)  # the summary stops it first, once the handler has stopped
        return settings.model_copy(update={"event_bus": bus})

    # -- the development CA's revocations --------------------------------------------------------------------------

    def _with_revocation(self, settings: Settings) -> Settings:
        """The handler's settings, with the development CA's CRL (served here) as its revocation source when the
        development CA is a configured CA. Read afresh on each decision (cacheSeconds 0) so a `jitr pki revoke`
        counts at once: a deployment keeps a CRL until its nextUpdate."""
        folder = self.options.dev_pki
        if folder is None or not (folder / f"{pki.ISSUING_STEM}.pem").exists():
            return settings
        revocations = pki_revocations.Revocations(folder)
        ca_id = certificate_id(revocations.ca.certificate)
        if ca_id not in {ca.certificate_id for ca in self.config.cas}:
            return settings
        port = self.options.crl_port
        try:
            server = self._exit.enter_context(CrlServer(port))
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot serve the CRL on 127.0.0.1:{port}: {exc.strerror} (another --crl-port?)"
            ) from None
        self.crl_server = server
        self.crl_url = server.publish_live(pki_revocations.CRL_PATH, lambda: revocations.crl().der)
        source = RevocationSource(crl=(self.crl_url,), cache_seconds=0)
        return settings.model_copy(
            update={"revocation": {ca_id: source, **settings.revocation}, "revocation_allow_loopback": True}
        )

    def _start_sync(self) -> None:
        stop = threading.Event()

        def every_period() -> None:
            while not stop.wait(self.options.sync_seconds):
                try:
                    self.sync_once()
                except Exception as exc:  # the schedule runs again next period, as EventBridge's would
                    self.say(
                        f"SYNC: the run failed ({type(exc).__name__}: {exc}); the next runs in"
                        f" {self.options.sync_seconds:g} s"
                    )

        thread = threading.Thread(target=every_period, name="jitr-revocation-sync", daemon=True)
        thread.start()
        self._exit.callback(thread.join, 60)  # a run in progress finishes while the account is still there
        self._exit.callback(stop.set)

    def sync_once(self) -> SyncReport:
        """One run of the revocation sync against this account, as the scheduled function runs it; says what it
        revoked, held and released, and a failure once (until it changes)."""
        from jitr_handlers.revocation_sync import run

        assert self.settings is not None
        with self._sync_lock:
            report = run(self.settings)
        for ca in report.cas:
            self.revoked_by_sync += len(ca.revoked)
            where = f"CRL #{ca.crl_number} of CA {ca.ca_id[:12]}"
            for done, certificates in (
                ("REVOKED", ca.revoked),
                ("INACTIVE (certificateHold)", ca.held),
                ("ACTIVE again (hold lifted)", ca.released),
            ):
                for certificate in certificates:
                    self.say(f"SYNC certificate {certificate[:12]}: {done} by the revocation sync ({where})")
            if ca.error != self._sync_errors.get(ca.ca_id):
                if ca.error:
                    self.say(f"SYNC CA {ca.ca_id[:12]}: FAILED, nothing revoked: {ca.error}")
                elif ca.ca_id in self._sync_errors:
                    self.say(f"SYNC CA {ca.ca_id[:12]}: the CRL is usable again ({where})")
                self._sync_errors[ca.ca_id] = ca.error
        return report

    # -- the account between runs (`--state`) ----------------------------------------------------------------------

    def _restore(self) -> bool:
        path = self.options.folder / STATE_FILE
        if not path.exists():
            return False
        with path.open("rb") as file:
            # The state file is this tool's own, written 0600 in a folder the user named; nothing else is unpickled.
            saved = pickle.load(file)  # noqa: S301
        iot_backends[self.iot.account_id][self.iot.region] = saved["iot"]
        dynamodb_backends[self.iot.account_id][self.iot.region] = saved["dynamodb"]
        return True

    def _save(self) -> None:
        account, region = self.iot.account_id, self.iot.region
        data = pickle.dumps({"iot": iot_backends[account][region], "dynamodb": dynamodb_backends[account][region]})
        path = self.options.folder / STATE_FILE
        partial = path.with_suffix(".partial")
        write_private(partial, data)
        partial.replace(path)  # a run stopped mid-write leaves the last saved account whole

    # -- what the operator sees ------------------------------------------------------------------------------------

    def decided(self, certificate_id: str, timeout_s: float = 10.0) -> Decision | None:
        """The decision this run made for the certificate, waiting up to `timeout_s` for it: a decision is recorded
        after its effects, so a status seen changed in the account may come a moment before it."""
        deadline = time.monotonic() + timeout_s
        while (decision := self.decisions.get(certificate_id)) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return decision

    def _decided(self, decision: Decision) -> None:
        thing = f" as thing {decision.thing_name}" if decision.thing_name else ""
        reason = f" {decision.reason}: {decision.message}" if decision.reason else ""
        certificate = (decision.certificate_id or "?")[:12]
        if decision.product and not self.config.implicit_products:
            certificate += f" ({decision.product})"
        with self._lock:
            if decision.certificate_id and decision.outcome in DECIDING:  # not a retry, nor a later duplicate's skip
                self.decisions[decision.certificate_id] = decision
            elif decision.certificate_id and decision.outcome == Outcome.HELD:
                self.held[decision.certificate_id] = decision
            self.say(f"HANDLER certificate {certificate}: {decision.outcome}{thing}{reason}")

    def _summary(self, wiring: QueueWiring) -> None:
        """What the run decided, and what the stack's alarms would have said: events dead-lettered after
        `maxReceiveCount` receives (the dead-letter queue's alarm) and events still queued at the stop."""
        if self.events is not None:
            self.events.stop()  # says the events still on their way
        final = [*self.decisions.values(), *(d for c, d in self.held.items() if c not in self.decisions)]
        outcomes = Counter(str(decision.outcome) for decision in final)
        stats = wiring.stats()
        counts = ", ".join(f"{outcome} {count}" for outcome, count in sorted(outcomes.items())) or "none"
        decided = sum(outcomes.values())
        line = f"jitr serve: decided {decided} certificate{'' if decided == 1 else 's'} this run ({counts})"
        if self.revoked_by_sync:
            line += f"; the revocation sync revoked {self.revoked_by_sync}"
        if self.events is not None:
            line += f"; decision events {self.events.heard}"
        if stats.dead_letters:
            certificates = sorted({str(json.loads(body).get("certificateId", "?"))[:12] for body in stats.given_up})
            line += (
                f"; {stats.dead_letters} events dead-lettered after {self.config.max_receive_count} receives, the"
                f" dead-letter alarm's case (certificates {', '.join(certificates)}; see {HANDLER_LOG})"
            )
        if wiring.depth:
            line += f"; {wiring.depth} events still queued, not kept"
        self.say(line)
        if not self.config.implicit_products and final:
            for row in terminal.plain(outcome_table(final)).splitlines():
                self.say(row)

    def _product_lines(self) -> list[str]:
        """The products, each with its stored template, and its enrollment or hook (none for a configuration that
        names no products)."""
        if self.config.implicit_products:
            return []
        names = self.template_names
        lines = ["  products"]
        for product in self.config.products:
            checks = [f"template {names[product.name]}"]
            if product.enrollment is not None:
                checks.append(f"enrollment by {product.enrollment.by} (table {ENROLLMENT_TABLE})")
            if product.hook is not None:
                checks.append(f"hook {product.hook.function} (a local function)")
            lines.append(f"    {product.name:<26} {', '.join(checks)}")
        if self.config.enrollment:
            lines.append(
                f"  jitr enroll import MANIFEST --product PRODUCT --table {ENROLLMENT_TABLE}"
                f" --endpoint-url {self.api_url}   # held devices are decided again at their next connect"
            )
        return lines

    def banner(self) -> str:
        """What is where, and what to try first."""
        folder, port, url, ca_file = self.options.folder, self.endpoint.port, self.api_url, self.credentials.ca_file
        mode = self.config.certificate_mode
        lines = [
            "jitr serve: an embedded AWS IoT account" + (f" (restored from {folder})" if self.restored else ""),
            f"  MQTT 3.1.1 over mutual TLS   localhost:{port}  (devices trust {ca_file})",
            f"  HTTP API                     {url}  (aws ... --endpoint-url {url} --region {self.iot.region})",
            f"  handler log                  {folder / HANDLER_LOG}",
            f"  CAs ({mode}"
            + (": devices must send SNI, so connect to localhost, not 127.0.0.1)" if mode == "SNI_ONLY" else ")"),
            *(f"    {ca.certificate_id}" for ca in self.config.cas),
        ]
        if self.crl_url:
            lines.append(
                f"  development CA's CRL         {self.crl_url}  (the handler checks it; synced every"
                f" {self.options.sync_seconds:g} s)"
            )
        lines += self._product_lines()
        lines += ["", "Try:"]
        device = "sensor-00001"
        pki_folder = ".dev-pki" if self.config.development_ca else "<your CA's folder>"
        if self.config.development_ca:
            lines.append(
                "  jitr pki devices --count 3   # device certificates from the development CA registered above"
            )
        cert, key = f"{pki_folder}/devices/{device}.pem", f"{pki_folder}/devices/{device}.key"
        lines += [
            f"  mosquitto_pub -h localhost -p {port} --cafile {ca_file} --cert {cert} --key {key} \\",
            f"      -i {device} -t things/{device}/telemetry -m hello   # twice: the first connect is dropped",
            f"  python pubsub.py --endpoint localhost --port {port} --root-ca {ca_file} \\",
            f"      --cert {cert} --key {key} --client-id {device} --topic things/{device}/telemetry",
            "      # the Device SDK v2's MQTT 3.1.1 sample; jitr serve speaks MQTT 3.1.1, not 5",
            f"  aws iot list-things --endpoint-url {url} --region {self.iot.region}",
            *(
                [
                    f"  jitr pki revoke {self.options.dev_pki}/devices/sensor-00002.pem --reason keyCompromise"
                    "   # refused at its first connect; REVOKED by the next sync once provisioned"
                ]
                if self.crl_url
                else []
            ),
            "Ctrl-C stops it" + (f"; the account is saved in {folder}." if self.options.keep else "."),
        ]
        return "\n".join(lines)


def outcome_table(decisions: list[Decision]) -> Table:
    """The run's final decisions by product: one row per product, one column per outcome (none: no product)."""
    counts = Counter((str(d.product or "none"), str(d.outcome)) for d in decisions)
    outcomes = sorted({outcome for _, outcome in counts})
    table = Table(box=None, padding=(0, 2), collapse_padding=True, pad_edge=False)
    table.add_column("by product")
    for outcome in outcomes:
        table.add_column(outcome, justify="right")
    for product in sorted({product for product, _ in counts}):
        table.add_row(product, *(str(counts[product, outcome]) for outcome in outcomes))
    return table


def serve_until_interrupted(stop: threading.Event | None = None) -> None:
    """Run until Ctrl-C (SIGINT) or SIGTERM, or until `stop` is set."""
    stop = stop or threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
