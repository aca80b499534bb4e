"""The reference pages generated from the code, so they cannot drift: the configuration keys (`jitr_config.model`), the
reasons and outcomes (`jitr.outcomes`) and the command line (`jitr_tools.cli`'s argparse parser).

MkDocs runs this file as a hook (`hooks:` in mkdocs.yml): a page line `<!-- generated: NAME -->` is replaced by the
table NAME makes from the code at build time. A configuration key with no meaning below (or a meaning for a key the
code does not know) raises `ReferenceDrift`, which fails `mkdocs build`; `tests/unit/test_docs_reference.py` runs the
same generators in `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)


class ReferenceDrift(Exception):
    """The hand-written part of a reference and the code disagree."""


# What each top-level configuration key means (the defaults are read from `jitr_config.model.DEFAULTS`). A row may name
# several keys; `a[].b` or `a.b` names a key nested in the known key `a`.
CONFIGURATION: dict[tuple[str, ...], str] = {
    ("caCertificates",): 'PEM files (or inline PEM) of the CAs that **sign** your devices; objects `{"pem", '
    '"verificationCertificate", "retired", "revocation"}` (the verification certificate in DEFAULT mode; '
    '`"retired": true` keeps the CA registered INACTIVE, see [Upgrading](../operating/upgrading.md#upgrading))',
    ("certificateMode",): "`SNI_ONLY` (devices send SNI; no verification certificate; several accounts may register "
    "the CA) or `DEFAULT`",
    ("provisioningMode",): "`jitr`: the handler validates every device, then provisions. `jitp`: the template is "
    "attached to the CA and AWS provisions every device it signed **without any of jitr's checks**; no handler, queue "
    "or rule is deployed",
    ("template", "templateName"): "the provisioning template and, optionally, its name (none: generated)",
    ("devicePolicyParameter",): "the template parameter the stack sets to the device policy's name; null (or a "
    "parameter the template does not declare): no device policy is created, the template names its own",
    ("deviceProfile", "cnPattern", "maxValidityDays", "trustRoot"): "the handler's device profile (see "
    "[The device profile](../decisions/index.md#the-device-profile)); `trustRoot` is a root above a registered "
    "intermediate",
    ("rejectionAction",): "what a refused certificate becomes: `REVOKED`, `INACTIVE` or `NONE`",
    ("existingThing",): "a new certificate for a thing another ACTIVE certificate holds: `refuse` it "
    "(`THING_ALREADY_CLAIMED`), or `replace` the thing's certificates from the same CA (see "
    "[One thing, one owner](../decisions/index.md#one-thing-one-owner))",
    ("decisionRetentionDays",): "how long the decision table remembers what was decided for a certificate id "
    "(1 to 3650)",
    ("clockSkewSeconds",): "a certificate whose `notBefore` is at most this far in the future is retried, not "
    "refused (0 to 3600)",
    ("extraParameters",): 'values for template parameters that are not certificate fields (`{"Site": "plant-7"}`)',
    ("existingResources",): "policies, thing types, thing groups and billing groups the template names that the "
    'stack does not create: `{"policies": [...], "thingTypes": [...], "thingGroups": [...], "billingGroups": [...]}`',
    ("registerThingTps",): "your account's RegisterThing quota; sets the mapping's maximum concurrency and each "
    "environment's share (the handler paces itself to quota / concurrency)",
    ("maxReceiveCount",): "deliveries before an event goes to the dead-letter queue",
    ("alarmEmail", "rejectionAlarmThreshold", "queueAgeAlarmSeconds", "logRetentionDays"): "monitoring",
    ("sweepIntervalMinutes", "sweepMinAgeMinutes", "sweepMaxPerRun"): "the sweeper: how often it runs, how long a "
    "certificate must have been pending, how many events one run puts back",
    ("caCertificates[].revocation", "trustRoot.revocation"): "the issuer's CRL and OCSP sources, checked at "
    "registration and synced daily (see [Configuring revocation](../deploying/revocation.md): `crl`, `ocsp`, "
    "`certificateHosts`, `graceSeconds`, `onUnknown`, ...)",
    ("revocationSync",): "the revocation sync's schedule and its share of UpdateCertificate",
    ("decisionEvents",): "every final decision published to EventBridge (see [Decision events](decision-events.md))",
    ("products",): "the product lines, each with its CAs, a `select` where products share a CA, and its own template "
    "and rules (see [Products](../deploying/products.md)); none: one product of every CA",
    ("certificateExtensions",): "certificate extensions a template may read as "
    "`Jitr::Certificate::Extension::<Name>`: name -> dotted OID (see "
    "[Certificate facts a template can read](templates.md#certificate-facts-a-template-can-read))",
    ("developmentPki",): "where synth (and `jitr pki ca`) makes the development CA when there are no `caCertificates`",
}

# What the keys only a product may set mean; every other product key is a top-level key above.
PRODUCT_ONLY: dict[str, str] = {
    "caCertificates": "its CAs: PEM files or text as in the top-level `caCertificates`, or their certificate ids; "
    "each must be registered there",
    "select": "where products share a CA: subject attributes mapped to regular expressions the value must match "
    "**in full**",
    "templateName": "its stored template's name (else `jitr-<product>`)",
    "enrollment": "provision only enrolled devices (see [Enrollment](../deploying/enrollment.md))",
    "hook": "the product's decision hook (see [The decision hook](../deploying/decision-hook.md))",
}


def _nested_in(key: str) -> str | None:
    head = re.split(r"\[\]|\.", key, maxsplit=1)
    return head[0] if len(head) > 1 else None


def _default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return f"`{value}`"
    return f"`{json.dumps(value)}`"


def configuration_table() -> str:
    """Every top-level key, its default from `DEFAULTS` and its meaning; raises `ReferenceDrift` on any mismatch."""
    from jitr_config.model import DEFAULTS, KNOWN_KEYS

    described = [key for keys in CONFIGURATION for key in keys if _nested_in(key) is None]
    nested_in = {outer for keys in CONFIGURATION for key in keys if (outer := _nested_in(key)) is not None}
    missing, unknown = KNOWN_KEYS - set(described), (set(described) | nested_in) - KNOWN_KEYS
    if missing or unknown or len(described) != len(set(described)):
        raise ReferenceDrift(
            "docs/gen_reference.py CONFIGURATION and jitr_config.model.KNOWN_KEYS disagree: "
            f"undocumented {sorted(missing)}, unknown {sorted(unknown)}, or a key described twice"
        )
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for keys, meaning in CONFIGURATION.items():
        defaults = ", ".join(_default(DEFAULTS.get(key)) for key in keys)
        rows.append(f"| {', '.join(f'`{key}`' for key in keys)} | {defaults} | {meaning} |")
    return "\n".join(rows)


def product_keys_table() -> str:
    """Every key a product may set (`PRODUCT_KEYS`), and whether it is taken from the top level when unset."""
    from jitr_config.model import INHERITED_KEYS, KNOWN_KEYS, PRODUCT_KEYS

    own = set(PRODUCT_KEYS) - set(INHERITED_KEYS)
    if own != set(PRODUCT_ONLY) or not set(INHERITED_KEYS) <= KNOWN_KEYS:
        raise ReferenceDrift(
            f"docs/gen_reference.py PRODUCT_ONLY {sorted(PRODUCT_ONLY)} and jitr_config.model's product keys "
            f"(a product's own: {sorted(own)}) disagree"
        )
    rows = ["| product key | when the product does not set it | meaning |", "| --- | --- | --- |"]
    for key in PRODUCT_KEYS:
        if key in INHERITED_KEYS:
            rows.append(f"| `{key}` | the top-level `{key}` | as the top-level key ([above](#every-key)) |")
        else:
            rows.append(f"| `{key}` | none: a product's alone | {PRODUCT_ONLY[key]} |")
    return "\n".join(rows)


_THE_CERTIFICATE = {
    "REJECTED": "set to the rejection status",
    "RETRY": "left `PENDING_ACTIVATION`; the record fails and is delivered again",
    "HELD": "left `PENDING_ACTIVATION`; the record is done",
    "SKIPPED": "left as AWS IoT holds it",
    "DUPLICATE": "as decided before",
    "MALFORMED": "none: not a registration event",
}


def reasons_table() -> str:
    """Every reason code (`jitr.outcomes.Reason`) with the outcome it means, in the one map `OUTCOME`."""
    from jitr.outcomes import ABOUT_THE_EVENT, NOT_THE_DEVICE, OUTCOME, Outcome, Reason, remembered

    if set(_THE_CERTIFICATE) != {str(outcome) for outcome in Outcome if outcome not in _WITHOUT_REASON}:
        raise ReferenceDrift("docs/gen_reference.py _THE_CERTIFICATE does not name every outcome a reason can mean")
    rows = ["| reason | outcome | the certificate | remembered by the decision table |", "| --- | --- | --- | --- |"]
    for outcome in Outcome:
        for reason in (r for r in Reason if OUTCOME[r] is outcome):
            certificate = "left as it is" if reason in NOT_THE_DEVICE else _THE_CERTIFICATE[str(outcome)]
            if reason in ABOUT_THE_EVENT:
                certificate += " (a decision about the event)"
            kept = "yes" if remembered(outcome, reason) else "no"
            rows.append(f"| `{reason}` | `{outcome}` | {certificate} | {kept} |")
    return "\n".join(rows)


# Outcomes no reason code means (the certificate was provisioned, now or earlier).
_WITHOUT_REASON = {"PROVISIONED", "ALREADY_ACTIVE"}


def _commands(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{path} {name}")


def cli_reference() -> str:
    """`jitr --help` and every subcommand's help, from the parser `jitr` itself builds (100 columns wide)."""
    from jitr_tools import cli

    width, os.environ["COLUMNS"] = os.environ.get("COLUMNS"), "100"
    try:
        sections = [
            f"## `{path}`\n\n```text\n{parser.format_help().rstrip()}\n```"
            for path, parser in _commands(cli._parser(), "jitr")
        ]
    finally:
        if width is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = width
    return "\n\n".join(sections)


GENERATORS: dict[str, Callable[[], str]] = {
    "configuration": configuration_table,
    "product-keys": product_keys_table,
    "reasons": reasons_table,
    "cli": cli_reference,
}


def expand(markdown: str) -> str:
    """The page with every `<!-- generated: NAME -->` line replaced by what NAME's generator makes."""

    def generated(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ReferenceDrift(f"no generator named {name!r}; known: {', '.join(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(generated, markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs' hook: called with each page's Markdown before it is rendered."""
    return expand(markdown)
