"""AWS IoT's documented names, patterns and limits for provisioning templates and the resources they create."""

from __future__ import annotations

import re
from dataclasses import dataclass

TEMPLATE_BODY_MAX_CHARS = 10_240
PARAMETER_KEY_MAX_CHARS = 2_048
PARAMETER_VALUE_MAX_CHARS = 4_096
TEMPLATE_NAME = re.compile(r"[0-9A-Za-z_-]{1,36}")

SECTIONS = frozenset({"Parameters", "Resources", "Mappings", "DeviceConfiguration"})
# Sections that CloudFormation knows but AWS IoT provisioning templates do not document.
UNSUPPORTED_SECTIONS = frozenset(
    {"Conditions", "Outputs", "Transform", "Metadata", "Rules", "AWSTemplateFormatVersion", "Description"}
)

THING = "AWS::IoT::Thing"
CERTIFICATE = "AWS::IoT::Certificate"
POLICY = "AWS::IoT::Policy"
RESOURCE_TYPES = (THING, CERTIFICATE, POLICY)

THING_PROPERTIES = frozenset(
    {"ThingName", "AttributePayload", "ThingTypeName", "ThingGroups", "BillingGroup", "PackageVersions"}
)
CERTIFICATE_SOURCES = ("CertificateId", "CertificatePem", "CertificateSigningRequest")
CERTIFICATE_PROPERTIES = frozenset({*CERTIFICATE_SOURCES, "CACertificatePem", "Status"})
POLICY_PROPERTIES = frozenset({"PolicyName", "PolicyDocument"})
PROPERTIES = {THING: THING_PROPERTIES, CERTIFICATE: CERTIFICATE_PROPERTIES, POLICY: POLICY_PROPERTIES}
REQUIRED_PROPERTIES = {THING: ("ThingName",), CERTIFICATE: (), POLICY: ()}

CERTIFICATE_STATUSES = ("ACTIVE", "INACTIVE")

OVERRIDE_ACTIONS = ("DO_NOTHING", "REPLACE", "FAIL", "MERGE")
# Which properties take OverrideSettings, and with which actions (MERGE only for groups and attributes).
OVERRIDABLE = {
    THING: {
        "AttributePayload": frozenset(OVERRIDE_ACTIONS),
        "ThingGroups": frozenset(OVERRIDE_ACTIONS),
        "ThingTypeName": frozenset({"DO_NOTHING", "REPLACE", "FAIL"}),
    },
    CERTIFICATE: {"Status": frozenset({"DO_NOTHING", "REPLACE", "FAIL"})},
    POLICY: {},
}

DOCUMENTED_INTRINSICS = frozenset({"Ref", "Fn::Join", "Fn::Select", "Fn::Split", "Fn::Sub", "Fn::FindInMap"})

MAX_ATTRIBUTES_WITHOUT_TYPE = 3
MAX_ATTRIBUTES_WITH_TYPE = 50
MAX_THING_GROUPS = 10
MAX_POLICIES_PER_CERTIFICATE = 10

# Parameters AWS fills from the device certificate's subject in JITP (Id is the certificate id).
CERTIFICATE_PARAMETER_PREFIX = "AWS::IoT::Certificate::"


@dataclass(frozen=True)
class NamePattern:
    """A documented pattern with the sentence that explains it."""

    what: str
    regex: re.Pattern[str]
    rule: str

    def problem(self, value: str) -> str | None:
        """None when `value` matches; otherwise a sentence a person can act on."""
        if self.regex.fullmatch(value):
            return None
        return f"{self.what} {value!r} is not valid: {self.rule}"


THING_NAME = NamePattern(
    "thing name", re.compile(r"[a-zA-Z0-9:_-]{1,128}"), "use 1-128 of letters, digits, ':', '_' and '-'"
)
THING_TYPE_NAME = NamePattern(
    "thing type name", re.compile(r"[a-zA-Z0-9:_-]{1,128}"), "use 1-128 of letters, digits, ':', '_' and '-'"
)
THING_GROUP_NAME = NamePattern(
    "thing group name", re.compile(r"[a-zA-Z0-9:_-]{1,128}"), "use 1-128 of letters, digits, ':', '_' and '-'"
)
BILLING_GROUP_NAME = NamePattern(
    "billing group name", re.compile(r"[a-zA-Z0-9:_-]{1,128}"), "use 1-128 of letters, digits, ':', '_' and '-'"
)
ATTRIBUTE_NAME = NamePattern(
    "attribute name",
    re.compile(r"[a-zA-Z0-9_.,@/:#-]{1,128}"),
    "use 1-128 of letters, digits and _ . , @ / : # -",
)
ATTRIBUTE_VALUE = NamePattern(
    "attribute value",
    re.compile(r"[a-zA-Z0-9_.,@/:#=\[\]-]{0,800}"),
    "use at most 800 of letters, digits and _ . , @ / : # = [ ] -",
)
POLICY_NAME = NamePattern(
    "policy name", re.compile(r"[\w+=,.@-]{1,128}"), "use 1-128 of letters, digits and + = , . @ - _"
)
CERTIFICATE_ID = NamePattern("certificate id", re.compile(r"[0-9a-fA-F]{64}"), "expected 64 hexadecimal characters")
