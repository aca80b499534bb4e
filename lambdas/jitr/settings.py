"""The handler's settings: read once, lazily, from the environment the stack sets, into one typed object."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .certificates import PROFILES, DeviceProfile
from .pacing import share

REJECTION_ACTIONS = ("REVOKED", "INACTIVE", "NONE")
# What a new certificate does to a thing that already has another ACTIVE certificate: refuse it (one thing, one
# owner), or replace the thing's certificates from the same CA (fleets that re-issue certificates).
EXISTING_THING_ACTIONS = ("refuse", "replace")
CLOCK_SKEW_SECONDS = 300  # a notBefore at most this far ahead is retried, not refused (device and CA clocks drift)


class SettingsError(ValueError):
    """The function is misconfigured; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    template_name: str
    rejection_action: str = "REVOKED"
    profile: DeviceProfile = field(default_factory=DeviceProfile)
    trust_root_pem: str | None = None
    extra_parameters: dict[str, str] = field(default_factory=dict)
    template_cache_seconds: float = 300.0
    max_attempts: int = 5
    endpoint_url: str | None = None
    register_thing_tps: float | None = None  # the account's RegisterThing quota
    max_concurrency: int | None = None  # the event source mapping's maximum concurrency
    existing_thing: str = "refuse"
    clock_skew_seconds: float = CLOCK_SKEW_SECONDS

    @property
    def register_rate_per_s(self) -> float | None:
        """This environment's share of the quota (None: unpaced)."""
        return share(self.register_thing_tps, self.max_concurrency)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        name = env.get("JITR_TEMPLATE_NAME", "")
        if not name:
            raise SettingsError("JITR_TEMPLATE_NAME must name the stored provisioning template")
        action = env.get("JITR_REJECTION_ACTION", "REVOKED").upper()
        if action not in REJECTION_ACTIONS:
            raise SettingsError(f"JITR_REJECTION_ACTION must be one of {', '.join(REJECTION_ACTIONS)}, got {action!r}")
        profile_name = env.get("JITR_DEVICE_PROFILE", "strict")
        if profile_name not in PROFILES:
            raise SettingsError(f"JITR_DEVICE_PROFILE must be one of {', '.join(PROFILES)}, got {profile_name!r}")
        existing_thing = env.get("JITR_EXISTING_THING", "refuse")
        if existing_thing not in EXISTING_THING_ACTIONS:
            raise SettingsError(
                f"JITR_EXISTING_THING must be one of {', '.join(EXISTING_THING_ACTIONS)}, got {existing_thing!r}"
            )
        max_days = env.get("JITR_MAX_VALIDITY_DAYS")
        try:
            extras = json.loads(env.get("JITR_EXTRA_PARAMETERS", "{}"))
            profile = PROFILES[profile_name].with_options(
                cn_pattern=env.get("JITR_CN_PATTERN") or None, max_validity_days=int(max_days) if max_days else None
            )
            cache = float(env.get("JITR_TEMPLATE_CACHE_SECONDS", "300"))
            attempts = int(env.get("JITR_MAX_ATTEMPTS", "5"))
            tps = float(env["JITR_REGISTER_THING_TPS"]) if env.get("JITR_REGISTER_THING_TPS") else None
            concurrency = int(env["JITR_MAX_CONCURRENCY"]) if env.get("JITR_MAX_CONCURRENCY") else None
            skew = float(env.get("JITR_CLOCK_SKEW_SECONDS", str(CLOCK_SKEW_SECONDS)))
        except ValueError as exc:
            raise SettingsError(f"a JITR_* setting is not valid: {exc}") from exc
        if not isinstance(extras, dict) or not all(isinstance(v, str) for v in extras.values()):
            raise SettingsError("JITR_EXTRA_PARAMETERS must be a JSON object of string values")
        if not 0 <= skew <= 86400:
            raise SettingsError(f"JITR_CLOCK_SKEW_SECONDS must be from 0 to 86400, got {skew}")
        return cls(
            template_name=name,
            rejection_action=action,
            profile=profile,
            trust_root_pem=env.get("JITR_TRUST_ROOT_PEM") or None,
            extra_parameters=extras,
            template_cache_seconds=cache,
            max_attempts=attempts,
            endpoint_url=env.get("JITR_IOT_ENDPOINT_URL") or None,
            register_thing_tps=tps if tps and tps > 0 else None,
            max_concurrency=concurrency if concurrency and concurrency > 0 else None,
            existing_thing=existing_thing,
            clock_skew_seconds=skew,
        )
