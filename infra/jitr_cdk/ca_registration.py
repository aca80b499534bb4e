"""The device makers' CAs, registered ACTIVE with auto-registration ENABLE; a CA marked `retired` stays registered
INACTIVE with auto-registration DISABLE: no new device registers under it, and devices already provisioned keep
connecting (AWS: deactivating a CA does not deactivate the certificates already registered).

The trap: a CA with auto-registration *and* a RegistrationConfig is JITP; AWS then activates every device by itself and
jitr's checks never run. So a RegistrationConfig is attached only when the configuration asks for `jitp`.
"""

from __future__ import annotations

from aws_cdk import aws_iot as iot
from constructs import Construct

from jitr_config.model import CaCertificate, JitrConfig

from .stored_template import iot_arn


class CaRegistration(Construct):
    """One `CfnCACertificate` per configured CA. Certificate ids are known at synth (SHA-256 of the DER)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: JitrConfig, jitp_template_name: str) -> None:
        super().__init__(scope, construct_id)
        self.cas: list[tuple[CaCertificate, iot.CfnCACertificate]] = []
        for index, ca in enumerate(config.cas):
            resource = iot.CfnCACertificate(
                self,
                f"Ca{index}",
                ca_certificate_pem=ca.pem,
                status="INACTIVE" if ca.retired else "ACTIVE",
                auto_registration_status="DISABLE" if ca.retired else "ENABLE",
                certificate_mode=config.certificate_mode,
                verification_certificate_pem=ca.verification_pem,
                registration_config=(
                    None
                    if config.validated
                    else iot.CfnCACertificate.RegistrationConfigProperty(template_name=jitp_template_name)
                ),
            )
            self.cas.append((ca, resource))

    @property
    def certificate_ids(self) -> list[str]:
        return [ca.certificate_id for ca, _ in self.cas]

    @property
    def arns(self) -> list[str]:
        return [iot_arn(f"cacert/{ca.certificate_id}") for ca, _ in self.cas]
