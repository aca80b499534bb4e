"""`jitr serve` under a fleet's first power-up: every device a real paho-mqtt client over mutual TLS, all connecting
at once and reconnecting with the Device SDK v2's backoff (exponential, full jitter) scaled 10 x faster, until it is
connected or refused. The handler runs with the stack's default settings (RegisterThing paced to 10/s).

Measured: the time until every device is connected or refused, each good device's time from its first attempt to
its CONNACK 0, the attempts it took, the connection attempts the endpoint served per second, and the devices lost
(good ones never connected, which must be 0).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from infra.config import load_config
from jitr.certificates import certificate_id
from jitr_tools import pki
from jitr_tools.devices import PahoDevice, power_up, write_device
from jitr_tools.reconnect import Reconnect
from jitr_tools.serve import ServeOptions, Service

DEVICES = 200
INVALID_FRACTION = 0.1
TIME_FACTOR = 10.0
TIMEOUT_S = 300.0
TEMPLATE = str(Path(__file__).resolve().parents[1] / "templates" / "jitr-device.json")


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        ca, _ = pki.development_ca(root / ".dev-pki")
        fleet = pki.make_fleet(ca, DEVICES, invalid_fraction=INVALID_FRACTION, seed=23)
        config = load_config({"caCertificates": [".dev-pki/issuing-ca.pem"], "template": TEMPLATE}, root)
        options = ServeOptions(folder=root / "serve", mqtt_port=0, api_port=0)
        with Service(config, options, say=lambda _line: None) as service:
            return _power_up(service, fleet, root)


def _power_up(service: Service, fleet: list[pki.FleetDevice], root: Path) -> dict[str, Any]:
    backoff = Reconnect.sdk(TIME_FACTOR)
    results: dict[str, tuple[str, float, int]] = {}  # name -> (outcome, seconds from its first attempt, attempts)
    lock = threading.Lock()
    started = time.monotonic()

    def device_run(device: pki.FleetDevice, seed: int) -> None:
        files = write_device(device.issued, root / "fleet", device.name)
        cert_id = certificate_id(device.issued.certificate)
        client = PahoDevice(files, device.name, service.endpoint.port, service.credentials.ca_file)

        def refused() -> bool:  # never registered (AWS's TLS would refuse it) or revoked by the handler
            with service.iot.state.lock:
                record = service.iot.backend.certificates.get(cert_id)
                return record is None or record.status == "REVOKED"

        first = time.monotonic()
        outcome, attempts = power_up(client, refused, backoff, random.Random(seed), started + TIMEOUT_S)
        with lock:
            results[device.name] = (outcome, time.monotonic() - first, attempts)

    threads = [threading.Thread(target=device_run, args=(d, i)) for i, d in enumerate(fleet)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    good = [results[d.name] for d in fleet if d.defect is None]
    connected = [r for r in good if r[0] == "connected"]
    latencies = sorted(r[1] for r in connected)
    attempts = sum(r[2] for r in results.values())
    return {
        "devices": len(fleet),
        "good": len(good),
        "connected": len(connected),
        "refused": sum(1 for r in results.values() if r[0] == "refused"),
        "lost": len(good) - len(connected),
        "onboard_s": round(elapsed, 2),
        "connect_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "connect_p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3) if latencies else None,
        "attempts_per_good_device": round(statistics.mean(r[2] for r in good), 2),
        "connection_attempts": attempts,
        "attempts_per_s": round(attempts / elapsed, 1),
        "time_factor": TIME_FACTOR,
    }


if __name__ == "__main__":
    print(run())
