"""Stacks synthesized once per configuration (see `tests.infra.support`)."""

from __future__ import annotations

import pytest

from jitr_tools import pki
from tests.infra.support import REGISTRATION_CODE, Synthesized, synthesize


@pytest.fixture(scope="session")
def second_ca(root_ca: pki.Issued) -> pki.Issued:
    return pki.make_ca("test second issuing CA", issuer=root_ca)


@pytest.fixture(scope="session")
def jitr_stack(
    tmp_path_factory: pytest.TempPathFactory, issuing_ca: pki.Issued, second_ca: pki.Issued, root_ca: pki.Issued
) -> Synthesized:
    """Validated mode, DEFAULT certificate mode with two CAs, alarm e-mail, a device profile and trust root."""
    return synthesize(
        {
            "caCertificates": [
                {"pem": ca.pem, "verificationCertificate": pki.make_verification_certificate(ca, REGISTRATION_CODE).pem}
                for ca in (issuing_ca, second_ca)
            ],
            "certificateMode": "DEFAULT",
            "alarmEmail": "iot-ops@example.com",
            "cnPattern": "^sensor-[0-9]+$",
            "maxValidityDays": 825,
            "trustRoot": root_ca.pem,
            "registerThingTps": 40,
        },
        tmp_path_factory.mktemp("jitr"),
    )


@pytest.fixture(scope="session")
def jitp_stack(tmp_path_factory: pytest.TempPathFactory, issuing_ca: pki.Issued) -> Synthesized:
    return synthesize({"caCertificates": [issuing_ca.pem], "provisioningMode": "jitp"}, tmp_path_factory.mktemp("jitp"))


@pytest.fixture(scope="session")
def development_stack(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    folder = tmp_path_factory.mktemp("dev")
    return synthesize({"developmentPki": str(folder / ".dev-pki")}, folder)
