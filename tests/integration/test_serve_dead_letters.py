"""`jitr serve` says at Ctrl-C what the stack's dead-letter alarm would have said: events given up on."""

from __future__ import annotations

from pathlib import Path

from jitr.certificates import certificate_id
from jitr_config.model import load_config
from jitr_tools import pki
from jitr_tools.embedded.errors import InvalidRequestException
from jitr_tools.endpoint.devices import PahoDevice, write_device
from jitr_tools.endpoint.serve import ServeOptions, Service

TEMPLATE = str(Path(__file__).resolve().parents[2] / "templates" / "jitr-device.json")


def test_events_given_up_on_are_reported_when_it_stops(tmp_path: Path) -> None:
    ca, _ = pki.development_ca(tmp_path / ".dev-pki")
    settings = {"caCertificates": [".dev-pki/issuing-ca.pem"], "template": TEMPLATE, "maxReceiveCount": 2}
    config = load_config(settings, tmp_path)
    options = ServeOptions(folder=tmp_path / "serve", mqtt_port=0, api_port=0, visibility_timeout_s=0.05)
    lines: list[str] = []
    issued = pki.make_device(ca, "sensor-00001")
    files = write_device(issued, tmp_path / "devices", "sensor-00001")
    with Service(config, options, say=lines.append) as service:
        # RegisterThing refuses every request: the handler retries (PROVISIONING_REFUSED is never the device's fault)
        service.iot.inject_faults("RegisterThing", *(InvalidRequestException("refused") for _ in range(1000)))
        device = PahoDevice(files, "sensor-00001", service.endpoint.port, service.credentials.ca_file)
        assert device.connect() == "closed"
        assert device.wait_for(lambda: service.wiring is not None and service.wiring.stats().dead_letters > 0)
    summary = lines[-1]
    assert "events dead-lettered after 2 receives" in summary, summary
    assert certificate_id(issued.certificate)[:12] in summary
    assert "decided 0 certificates this run (none)" in summary  # a retry decides nothing: the certificate stays pending
