"""jitr's closed vocabulary: what a decision can be (`Outcome`), every reason it can give (`Reason`), and, in one
place, which outcome each reason means (`OUTCOME`). That table is the blame rule: a reason is REJECTED (the
certificate is set to the rejection status) only when the fault is the certificate's own."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class Outcome(StrEnum):
    PROVISIONED = "PROVISIONED"  # RegisterThing succeeded: thing, policy, ACTIVE
    ALREADY_ACTIVE = "ALREADY_ACTIVE"  # a duplicate: an earlier delivery did the work
    REJECTED = "REJECTED"  # refused with a reason; the certificate set to the rejection status
    SKIPPED = "SKIPPED"  # nothing to do: certificate unknown, REVOKED or INACTIVE
    RETRY = "RETRY"  # not the device's fault: the record fails and is delivered again, then kept in the DLQ
    DUPLICATE = "DUPLICATE"  # decided already, or being decided elsewhere: acknowledged with no AWS IoT call
    HELD = "HELD"  # not provisioned for now, nobody's fault: left PENDING_ACTIVATION, decided again on its next event
    MALFORMED = "MALFORMED"  # not a registration event


class Reason(StrEnum):
    # -- the certificate's own faults: REJECTED ---
    UNTRUSTED_CHAIN = "UNTRUSTED_CHAIN"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    VALIDITY_TOO_LONG = "VALIDITY_TOO_LONG"
    WEAK_KEY = "WEAK_KEY"
    UNSUPPORTED_KEY = "UNSUPPORTED_KEY"
    WEAK_SIGNATURE = "WEAK_SIGNATURE"
    NOT_CLIENT_AUTH = "NOT_CLIENT_AUTH"
    CN_MISMATCH = "CN_MISMATCH"
    EMPTY_SUBJECT = "EMPTY_SUBJECT"
    LEGACY_V1_CERTIFICATE = "LEGACY_V1_CERTIFICATE"
    MALFORMED_CERTIFICATE = "MALFORMED_CERTIFICATE"
    MISSING_CERTIFICATE_FIELD = "MISSING_CERTIFICATE_FIELD"
    INVALID_DEVICE_NAME = "INVALID_DEVICE_NAME"
    TEMPLATE_RENDER_FAILED = "TEMPLATE_RENDER_FAILED"
    THING_ALREADY_CLAIMED = "THING_ALREADY_CLAIMED"
    CA_NOT_ACTIVE = "CA_NOT_ACTIVE"  # the certificate's CA was deactivated: its devices are refused
    UNKNOWN_CA = "UNKNOWN_CA"
    REVOKED_BY_ISSUER = "REVOKED_BY_ISSUER"  # the issuer's CRL lists it (any reason but certificateHold)
    DENIED_BY_HOOK = (
        "DENIED_BY_HOOK"  # the product's decision hook denied it: the fleet's own decision, its reason kept
    )
    # -- the event's: REJECTED, the certificate left as it is ---
    CA_MISMATCH = "CA_MISMATCH"
    # -- not the device's fault: RETRY ---
    CA_UNUSABLE = "CA_UNUSABLE"
    CLOCK_SKEW = "CLOCK_SKEW"
    CONFIGURATION = "CONFIGURATION"
    PROVISIONING_REFUSED = "PROVISIONING_REFUSED"
    AWS_UNAVAILABLE = "AWS_UNAVAILABLE"
    CONFLICT = "CONFLICT"
    REJECTION_NOT_RECORDED = "REJECTION_NOT_RECORDED"
    OWNERSHIP_NOT_SETTLED = "OWNERSHIP_NOT_SETTLED"  # a call settling who keeps a thing failed: finished on redelivery
    DECISION_STORE_UNAVAILABLE = "DECISION_STORE_UNAVAILABLE"
    REVOCATION_UNKNOWN = "REVOCATION_UNKNOWN"  # the issuer's revocation status could not be learned
    ENROLLMENT_UNAVAILABLE = "ENROLLMENT_UNAVAILABLE"  # the enrollment table could not be read or written
    HOOK_FAILED = "HOOK_FAILED"  # the decision hook timed out, failed or answered what cannot be read
    # -- held: HELD ---
    CERTIFICATE_ON_HOLD = "CERTIFICATE_ON_HOLD"  # the issuer's CRL lists it as certificateHold
    NO_PRODUCT = "NO_PRODUCT"  # no product's selector matches it: the stack does not (yet) know what it is
    NOT_ENROLLED = "NOT_ENROLLED"  # its product needs enrollment and its manifest is not imported (yet)
    DEVICE_DISABLED = "DEVICE_DISABLED"  # an operator disabled its enrollment: refused while disabled, reversible
    HELD_BY_HOOK = "HELD_BY_HOOK"  # the product's decision hook answered hold
    # -- a duplicate: DUPLICATE ---
    ALREADY_DECIDED = "ALREADY_DECIDED"
    BEING_DECIDED = "BEING_DECIDED"
    # -- nothing to do: SKIPPED ---
    UNKNOWN_CERTIFICATE = "UNKNOWN_CERTIFICATE"
    CERTIFICATE_REVOKED = "CERTIFICATE_REVOKED"
    CERTIFICATE_INACTIVE = "CERTIFICATE_INACTIVE"
    CERTIFICATE_PENDING_TRANSFER = "CERTIFICATE_PENDING_TRANSFER"
    CERTIFICATE_REGISTER_INACTIVE = "CERTIFICATE_REGISTER_INACTIVE"
    CERTIFICATE_NOT_PENDING = "CERTIFICATE_NOT_PENDING"  # a status AWS IoT may add later
    # -- not a registration event: MALFORMED ---
    INVALID_EVENT = "INVALID_EVENT"
    OVERSIZED = "OVERSIZED"


_REJECTED = (
    Reason.UNTRUSTED_CHAIN,
    Reason.EXPIRED,
    Reason.NOT_YET_VALID,
    Reason.VALIDITY_TOO_LONG,
    Reason.WEAK_KEY,
    Reason.UNSUPPORTED_KEY,
    Reason.WEAK_SIGNATURE,
    Reason.NOT_CLIENT_AUTH,
    Reason.CN_MISMATCH,
    Reason.EMPTY_SUBJECT,
    Reason.LEGACY_V1_CERTIFICATE,
    Reason.MALFORMED_CERTIFICATE,
    Reason.MISSING_CERTIFICATE_FIELD,
    Reason.INVALID_DEVICE_NAME,
    Reason.TEMPLATE_RENDER_FAILED,
    Reason.THING_ALREADY_CLAIMED,
    Reason.CA_NOT_ACTIVE,
    Reason.UNKNOWN_CA,
    Reason.REVOKED_BY_ISSUER,
    Reason.DENIED_BY_HOOK,
    Reason.CA_MISMATCH,
)
_RETRY = (
    Reason.CA_UNUSABLE,
    Reason.CLOCK_SKEW,
    Reason.CONFIGURATION,
    Reason.PROVISIONING_REFUSED,
    Reason.AWS_UNAVAILABLE,
    Reason.CONFLICT,
    Reason.REJECTION_NOT_RECORDED,
    Reason.OWNERSHIP_NOT_SETTLED,
    Reason.DECISION_STORE_UNAVAILABLE,
    Reason.REVOCATION_UNKNOWN,
    Reason.ENROLLMENT_UNAVAILABLE,
    Reason.HOOK_FAILED,
)
_HELD = (
    Reason.CERTIFICATE_ON_HOLD,
    Reason.NO_PRODUCT,
    Reason.NOT_ENROLLED,
    Reason.DEVICE_DISABLED,
    Reason.HELD_BY_HOOK,
)
_DUPLICATE = (Reason.ALREADY_DECIDED, Reason.BEING_DECIDED)
_SKIPPED = (
    Reason.UNKNOWN_CERTIFICATE,
    Reason.CERTIFICATE_REVOKED,
    Reason.CERTIFICATE_INACTIVE,
    Reason.CERTIFICATE_PENDING_TRANSFER,
    Reason.CERTIFICATE_REGISTER_INACTIVE,
    Reason.CERTIFICATE_NOT_PENDING,
)
_MALFORMED = (Reason.INVALID_EVENT, Reason.OVERSIZED)

# The one map from a reason to the outcome it means.
OUTCOME: Mapping[Reason, Outcome] = MappingProxyType(
    {
        **dict.fromkeys(_REJECTED, Outcome.REJECTED),
        **dict.fromkeys(_RETRY, Outcome.RETRY),
        **dict.fromkeys(_SKIPPED, Outcome.SKIPPED),
        **dict.fromkeys(_MALFORMED, Outcome.MALFORMED),
        **dict.fromkeys(_DUPLICATE, Outcome.DUPLICATE),
        **dict.fromkeys(_HELD, Outcome.HELD),
    }
)

# Rejections the device is not to blame for: the certificate is left as it is.
NOT_THE_DEVICE = frozenset({Reason.CA_MISMATCH})

# Decisions about the event rather than the certificate: whoever can put a message on the intake queue can make them,
# so they are never remembered and never a reason to ignore the certificate's own later events.
ABOUT_THE_EVENT = frozenset({Reason.CA_MISMATCH, Reason.UNKNOWN_CERTIFICATE})

# The outcomes that are a decision about the certificate, final until the certificate itself changes.
_FINAL = frozenset({Outcome.PROVISIONED, Outcome.ALREADY_ACTIVE, Outcome.REJECTED, Outcome.SKIPPED})


def remembered(outcome: Outcome, reason: Reason | None) -> bool:
    """Whether the decision table keeps a decision (the handler's step 0): only a final decision about the
    certificate itself. A RETRY is decided again; a decision about the event is not the certificate's."""
    return outcome in _FINAL and reason not in ABOUT_THE_EVENT


def skipped_status(status: str) -> Reason:
    """The SKIPPED reason for a certificate AWS IoT holds in a status jitr does not provision from."""
    try:
        return Reason(f"CERTIFICATE_{status}")
    except ValueError:
        return Reason.CERTIFICATE_NOT_PENDING
