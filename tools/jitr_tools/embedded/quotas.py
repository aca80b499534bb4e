"""AWS IoT's default quotas for every operation the JITR flow calls: the table lives once, in `jitr.pacing` (the
handler paces itself to it); `EmbeddedIoT.apply_aws_quotas(factor)` enforces it, scaled by one factor."""

from jitr.pacing import AWS_DEFAULT_TPS

__all__ = ["AWS_DEFAULT_TPS"]
