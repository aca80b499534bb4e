"""Alarms an operator can act on, a dashboard of the fleet's onboarding, and an optional e-mail topic.

The handler publishes its decisions as CloudWatch metrics in the `jitr` namespace with the dimension service = stack
name: PROVISIONED, REJECTED, ALREADY_ACTIVE, SKIPPED, RETRY, MALFORMED, ProvisioningLatency, and
REJECTEDByReason / RETRYByReason / MALFORMEDByReason with a Reason dimension; DecisionEventsFailed (the handler and the
revocation sync) when decision events are on. With revocation configured, the revocation sync's metrics (see
`jitr_cdk.revocation_sync`) have alarms and a dashboard row too.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from jitr_config.model import JitrConfig

from .revocation_sync import RevocationSyncFunction

NAMESPACE = "jitr"
PERIOD = cdk.Duration.minutes(5)
ALARM_METRICS_MAX = 10  # CloudWatch's limit on the metrics one alarm's math expression reads
UNKNOWN_PERIODS = 3  # RETRY REVOCATION_UNKNOWN in this many 5-minute periods in a row: a source stays unusable
# The revocation sync's metrics with a CA dimension that have an alarm, and what the alarm tells the operator.
PER_CA_ALARMS = {
    "RevocationSyncFailed": (
        "The revocation sync could not finish a CA's run (the sync's log and jitr doctor say which CA and why; its"
        " lastError is in the decision table): revocations of that CA wait until a run succeeds."
    ),
    "RevocationSourceUnusable": (
        "A CA's CRL source was unreachable, stale, too large or not signed by the CA during the last sync (jitr"
        " doctor shows each source): revoked devices keep connecting until it is readable."
    ),
}


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: JitrConfig,
        service: str,
        function: aws_lambda.Function,
        queue: sqs.Queue,
        dead_letter_queue: sqs.Queue,
        rule_errors: logs.LogGroup,
        swept: cw.Metric,
        sweeper: aws_lambda.Function,
        revocation_sync: RevocationSyncFunction | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.service = service

        def decisions(name: str, statistic: str = "Sum") -> cw.Metric:
            return cw.Metric(
                namespace=NAMESPACE,
                metric_name=name,
                dimensions_map={"service": service},
                statistic=statistic,
                period=PERIOD,
            )

        def by_reason(outcome: str, label: str) -> cw.MathExpression:
            return cw.MathExpression(
                expression=(
                    f'SEARCH(\'{{{NAMESPACE},Reason,service}} MetricName="{outcome}ByReason"'
                    f" service=\"{service}\"', 'Sum', 300)"
                ),
                label=label,
                period=PERIOD,
            )

        rule_failures = cw.Metric(
            namespace="AWS/Logs",
            metric_name="IncomingLogEvents",
            dimensions_map={"LogGroupName": rule_errors.log_group_name},
            statistic="Sum",
            period=PERIOD,
        )
        at_least = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        above = cw.ComparisonOperator.GREATER_THAN_THRESHOLD
        self.alarms = {
            "DeadLetters": self._alarm(
                "DeadLetters",
                (
                    "Registration events are waiting in the dead-letter queue: they failed every delivery. Read"
                    " the handler's log for their certificate ids (outcome RETRY or MALFORMED), fix the cause, then"
                    " redrive the dead-letter queue (docs/operating/index.md: Redriving the dead-letter queue)."
                ),
                dead_letter_queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Max"),
                1,
                at_least,
            ),
            "HandlerErrors": self._alarm(
                "HandlerErrors",
                (
                    "The handler crashed (not a rejected device: those are decisions). Its log shows the exception;"
                    " the batch is redelivered by SQS, so no event is lost while you fix it."
                ),
                function.metric_errors(period=PERIOD, statistic="Sum"),
                1,
                at_least,
            ),
            "Throttling": self._alarm(
                "Throttling",
                (
                    "Lambda throttled the handler, or AWS IoT kept throttling it after botocore's retries (RETRY"
                    " AWS_UNAVAILABLE). Events wait in the queue; if it persists, raise the RegisterThing quota or"
                    " lower registerThingTps so the mapping's concurrency matches the quota."
                ),
                cw.MathExpression(
                    expression="lambda + iot",
                    using_metrics={
                        "lambda": function.metric_throttles(period=PERIOD, statistic="Sum"),
                        "iot": cw.Metric(
                            namespace=NAMESPACE,
                            metric_name="RETRYByReason",
                            dimensions_map={"service": service, "Reason": "AWS_UNAVAILABLE"},
                            statistic="Sum",
                            period=PERIOD,
                        ),
                    },
                    label="throttled",
                    period=PERIOD,
                ),
                1,
                at_least,
                periods=2,
            ),
            "QueueAge": self._alarm(
                "QueueAge",
                (
                    f"The oldest registration event has waited over {config.queue_age_alarm_seconds} s: devices"
                    " are waiting to be onboarded. Check the handler's errors and throttling; a fleet power-up drains"
                    " at the RegisterThing quota."
                ),
                queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Max"),
                config.queue_age_alarm_seconds,
                above,
            ),
            "Rejections": self._alarm(
                "Rejections",
                (
                    f"More than {config.rejection_alarm_threshold} devices were refused in 5 minutes. See the"
                    " dashboard's rejections by reason; a single reason across many devices usually means a"
                    " manufacturing or configuration change, not an attack."
                ),
                decisions("REJECTED"),
                config.rejection_alarm_threshold,
                above,
            ),
            "RuleDelivery": self._alarm(
                "RuleDelivery",
                (
                    "AWS IoT could not deliver registration events to the queue (the rule's errorAction wrote them to"
                    " the rule-errors log group, with the event). Check the rule role and the queue; affected devices"
                    " retry their connection, which publishes the event again, and the sweeper puts back the events"
                    " of devices that stopped trying."
                ),
                rule_failures,
                1,
                at_least,
            ),
            "Swept": self._alarm(
                "Swept",
                (
                    "The sweeper found certificates still pending long after they registered and put their events"
                    " on the queue again: their events were lost on the way (see RuleDelivery), or the handler keeps"
                    " retrying them (see the dead-letter queue). The handler decides them now; find out why they"
                    " were left behind."
                ),
                swept,
                1,
                at_least,
            ),
            "SweeperErrors": self._alarm(
                "SweeperErrors",
                "The sweeper failed (its log shows why): certificates whose events were lost wait for its next run.",
                sweeper.metric_errors(period=PERIOD, statistic="Sum"),
                1,
                at_least,
            ),
        }

        if revocation_sync is not None:
            self.alarms.update(self._revocation_alarms(revocation_sync, tuple(config.revocation)))
        if config.event_bus:
            self.alarms.update(self._decision_events_alarm(config.event_bus))
        if not config.implicit_products:
            self.alarms.update(self._product_alarms(config))

        self.topic: sns.Topic | None = None
        if config.alarm_email:
            key = kms.Key(
                self,
                "AlarmKey",
                enable_key_rotation=True,
                description="jitr alarm topic",
                # deleted with the stack (after KMS's waiting period): only the alarm topic, deleted too, uses it
                removal_policy=cdk.RemovalPolicy.DESTROY,
            )
            key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
            self.topic = sns.Topic(self, "AlarmTopic", master_key=key, enforce_ssl=True)
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
            for alarm in self.alarms.values():
                alarm.add_alarm_action(cw_actions.SnsAction(self.topic))

        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=cdk.Duration.hours(3))
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Devices decided",
                left=[decisions(name) for name in ("PROVISIONED", "REJECTED", "ALREADY_ACTIVE", "SKIPPED")],
                width=12,
            ),
            cw.GraphWidget(title="Rejected by reason", left=[by_reason("REJECTED", "rejected")], width=12),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Provisioning latency (ms)",
                left=[decisions("ProvisioningLatency", "p50"), decisions("ProvisioningLatency", "p99")],
                width=8,
            ),
            cw.GraphWidget(
                title="Queue depth",
                left=[
                    queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Max"),
                    queue.metric_approximate_number_of_messages_not_visible(period=PERIOD, statistic="Max"),
                    dead_letter_queue.metric_approximate_number_of_messages_visible(
                        period=PERIOD, statistic="Max", label="dead letters"
                    ),
                ],
                right=[queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Max")],
                width=8,
            ),
            cw.GraphWidget(
                title="Retries and malformed events by reason",
                left=[by_reason("RETRY", "retry"), by_reason("MALFORMED", "malformed")],
                width=8,
            ),
        )
        if not config.implicit_products:
            self.dashboard.add_widgets(*_product_widgets(service))
        if revocation_sync is not None:
            self.dashboard.add_widgets(*_revocation_widgets(service))
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=24),
        )

    def _revocation_alarms(self, sync: RevocationSyncFunction, ca_ids: tuple[str, ...]) -> dict[str, cw.Alarm]:
        """The sync failing or its sources unusable (over one run), devices cut off by it, and registrations left
        pending (or let through) because an issuer's word could not be learned."""
        at_least = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        service, period = self.service, sync.period
        alarms = {
            "RevocationSyncErrors": self._alarm(
                "RevocationSyncErrors",
                "The revocation sync crashed (its log shows why): revocations wait for its next run.",
                sync.function.metric_errors(period=PERIOD, statistic="Sum"),
                1,
                at_least,
            ),
            "RevokedBySync": self._alarm(
                "RevokedBySync",
                (
                    "For information: the revocation sync set certificates the issuers revoked to REVOKED in AWS IoT"
                    " (their devices are cut off). jitr explain <certificate id> shows which CRL listed each."
                ),
                _metric(service, "CertificatesRevokedBySync", period),
                1,
                at_least,
            ),
            "RevocationUnknown": self._alarm(
                "RevocationUnknown",
                (
                    "Registrations keep waiting (RETRY REVOCATION_UNKNOWN) because an issuer's CRL cannot be read or"
                    " is not current. The handler log names the source and why; fix the source (or its"
                    " configuration). The devices are decided when it is readable again."
                ),
                _metric(service, "RETRYByReason", PERIOD, Reason="REVOCATION_UNKNOWN"),
                1,
                at_least,
                periods=UNKNOWN_PERIODS,
            ),
            "RevocationUnknownAccepted": self._alarm(
                "RevocationUnknownAccepted",
                (
                    "For information: devices were provisioned without their issuer's word on revocation, as"
                    " onUnknown: accept allows. The handler log names the source that could not be read; the next"
                    " sync revokes any the CRL lists."
                ),
                _metric(service, "RevocationUnknownAccepted", PERIOD),
                1,
                at_least,
            ),
        }
        return alarms | self._per_ca_alarms(ca_ids, period)

    def _product_alarms(self, config: JitrConfig) -> dict[str, cw.Alarm]:
        """Each product's rejections (the stack-wide alarm's threshold, per product), and certificates no product
        claims (a product line the stack does not serve yet, or a selector that misses)."""
        above = cw.ComparisonOperator.GREATER_THAN_THRESHOLD
        alarms = {
            f"Rejections-{p.name}": self._alarm(
                f"Rejections-{p.name}",
                (
                    f"More than {config.rejection_alarm_threshold} devices of product {p.name} were refused in 5"
                    " minutes. See the dashboard's decisions by product and rejections by reason."
                ),
                _metric(self.service, "REJECTEDByProduct", PERIOD, Product=p.name),
                config.rejection_alarm_threshold,
                above,
            )
            for p in config.products
        }
        alarms["NoProduct"] = self._alarm(
            "NoProduct",
            (
                "Devices of a CA that products share matched no product's select and are held pending (HELD"
                " NO_PRODUCT; the handler's log names their subjects' CA). Add the product line they belong to, or"
                " widen a selector, and deploy: their next connect decides them again."
            ),
            _metric(self.service, "HELDByReason", PERIOD, Reason="NO_PRODUCT"),
            1,
            cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        hooked = [p.name for p in config.products if p.hook]
        if hooked:
            alarms["HookFailures"] = self._alarm(
                "HookFailures",
                (
                    f"The decision hook of {', '.join(hooked)} timed out, failed or answered what cannot be read (RETRY"
                    " HOOK_FAILED; the handler's log says which and why) in 2 consecutive 5-minute periods. Devices"
                    " wait pending and are retried, then kept in the dead-letter queue: fix the hook, then redrive."
                ),
                _metric(self.service, "RETRYByReason", PERIOD, Reason="HOOK_FAILED"),
                1,
                cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                periods=2,
            )
        return alarms

    def _decision_events_alarm(self, bus: str) -> dict[str, cw.Alarm]:
        description = (
            f"Decision events could not be published to EventBridge bus {bus} after botocore's retries (the handler's"
            " or the revocation sync's log says why: a missing bus, a bus policy, throttling). Decisions stand. The"
            " handler's events are published when SQS redelivers their records (from the dead-letter queue after a"
            " redrive); the sync's log names the certificates whose events were not published."
        )
        metric = _metric(self.service, "DecisionEventsFailed", PERIOD)
        at_least = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        return {"DecisionEventsFailed": self._alarm("DecisionEventsFailed", description, metric, 1, at_least)}

    def _per_ca_alarms(self, ca_ids: tuple[str, ...], period: cdk.Duration) -> dict[str, cw.Alarm]:
        """A sync metric with a CA dimension, summed over the configured CAs (ten per alarm), over one run."""
        at_least = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        alarms = {}
        for name, description in PER_CA_ALARMS.items():
            for part, metric in enumerate(_per_ca(self.service, name, ca_ids, period)):
                key = name if part == 0 else f"{name}{part + 1}"
                alarms[key] = self._alarm(key, description, metric, 1, at_least)
        return alarms

    def _alarm(
        self,
        name: str,
        description: str,
        metric: cw.IMetric,
        threshold: float,
        comparison: cw.ComparisonOperator,
        periods: int = 1,
    ) -> cw.Alarm:
        """An alarm that says what to do; no data (a quiet fleet) is not a breach."""
        return cw.Alarm(
            self,
            f"{name}Alarm",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=periods,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )


def _metric(service: str, name: str, period: cdk.Duration, **dimensions: str) -> cw.Metric:
    return cw.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={"service": service, **dimensions},
        statistic="Sum",
        period=period,
    )


def _per_ca(service: str, name: str, ca_ids: tuple[str, ...], period: cdk.Duration) -> list[cw.MathExpression]:
    """The sum over the CAs of a metric with a CA dimension: one expression per ten CAs (an alarm reads ten)."""
    groups = [ca_ids[i : i + ALARM_METRICS_MAX] for i in range(0, len(ca_ids), ALARM_METRICS_MAX)]
    return [
        cw.MathExpression(
            expression=f"SUM([{', '.join(f'ca{i}' for i in range(len(group)))}])",
            using_metrics={f"ca{i}": _metric(service, name, period, CA=ca_id) for i, ca_id in enumerate(group)},
            label=name,
            period=period,
        )
        for group in groups
    ]


def _product_widgets(service: str) -> list[cw.IWidget]:
    def by_product(outcome: str) -> cw.MathExpression:
        return cw.MathExpression(
            expression=(
                f'SEARCH(\'{{{NAMESPACE},Product,service}} MetricName="{outcome}ByProduct" service="{service}"\','
                " 'Sum', 300)"
            ),
            label=outcome.lower(),
            period=PERIOD,
        )

    return [
        cw.GraphWidget(title=f"{outcome.title()} by product", left=[by_product(outcome)], width=6)
        for outcome in ("PROVISIONED", "REJECTED", "HELD", "RETRY")
    ]


def _revocation_widgets(service: str) -> list[cw.IWidget]:
    def by_ca(name: str) -> cw.MathExpression:
        return cw.MathExpression(
            expression=f"SEARCH('{{{NAMESPACE},CA,service}} MetricName=\"{name}\" service=\"{service}\"', 'Sum', 300)",
            label=name,
            period=PERIOD,
        )

    return [
        cw.GraphWidget(
            title="Revocation sync",
            left=[
                _metric(service, name, PERIOD)
                for name in ("CertificatesRevokedBySync", "CertificatesHeldBySync", "CertificatesReleasedBySync")
            ],
            width=8,
        ),
        cw.GraphWidget(
            title="Revocation sources by CA",
            left=[by_ca(name) for name in ("RevocationsFound", "RevocationSyncFailed", "RevocationSourceUnusable")],
            width=8,
        ),
        cw.GraphWidget(
            title="Revocation at registration",
            left=[
                _metric(service, "REJECTEDByReason", PERIOD, Reason="REVOKED_BY_ISSUER"),
                _metric(service, "HELD", PERIOD),
                _metric(service, "RETRYByReason", PERIOD, Reason="REVOCATION_UNKNOWN"),
                _metric(service, "RevocationUnknownAccepted", PERIOD),
            ],
            width=8,
        ),
    ]
