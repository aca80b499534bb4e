"""AWS IoT's default quotas for every operation the JITR flow calls: the table lives once, in `jitr.pacing` (the
handler paces itself to it); `EmbeddedIoT.apply_aws_quotas(factor)` enforces it, scaled by one factor.

The device side has limits of its own, which no API call of jitr's touches but which shape a fleet's first connects
(AWS's limits page; the project's AWS notes, "Quotas"): CONNECT requests per second per account, and certificates
auto-registered per second. AWS does not say what a device over the auto-registration rate sees; the embedded IoT
assumes the connection is closed with nothing registered and no event, so the device registers on a later reconnect.
"""

from collections.abc import Mapping
from types import MappingProxyType

from jitr.pacing import AWS_DEFAULT_TPS

CONNECT = "Connect"
AUTO_REGISTRATION = "AutoRegistration"

DEVICE_DEFAULT_TPS: Mapping[str, float] = MappingProxyType({CONNECT: 500, AUTO_REGISTRATION: 15})

__all__ = ["AUTO_REGISTRATION", "AWS_DEFAULT_TPS", "CONNECT", "DEVICE_DEFAULT_TPS"]
