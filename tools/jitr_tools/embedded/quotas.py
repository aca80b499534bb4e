"""AWS IoT's default quotas, in calls per second, for every operation the JITR flow calls: one table, from AWS's
limits page (see the project's AWS notes, "Quotas"). `EmbeddedIoT.apply_aws_quotas(factor)` enforces them all,
scaled by one factor.

Where AWS publishes no figure, the value is an assumption, marked below: DescribeProvisioningTemplate (not in the
2019 table) and DetachThingPrincipal (not listed) are taken as 10, the figure of their neighbours. CreateThing and
AttachThingPrincipal use the 2019 table's 15 (a later dump of Service Quotas says 100): the stricter one.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

AWS_DEFAULT_TPS: Mapping[str, float] = MappingProxyType(
    {
        "RegisterThing": 10,
        "DescribeCertificate": 10,
        "DescribeCACertificate": 10,
        "UpdateCertificate": 10,
        "ListThingPrincipals": 10,
        "DescribeProvisioningTemplate": 10,  # assumed: not in AWS's 2019 table
        "DetachThingPrincipal": 10,  # assumed: not listed
        "AttachPolicy": 15,
        "AttachThingPrincipal": 15,
        "CreateThing": 15,
        "DescribeThing": 350,
    }
)
