"""`jitr serve` under a fleet's first power-up: every device a real paho-mqtt client over mutual TLS, all connecting
at once and reconnecting with the Device SDK v2's backoff (exponential, full jitter) scaled 10 x faster, until it is
connected or refused. The handler runs with the stack's default settings (RegisterThing paced to 10/s).

Measured: the time until every device is connected or refused, each good device's time from its first attempt to
its CONNACK 0, the attempts it took, the connection attempts the endpoint served per second, the devices lost (good
ones still trying, unconnected, at the deadline: must be 0) and good ones refused (must be 0), and apart from them
the attempts dropped before their certificate was registered (over the auto-registration rate, or a client that gave
up waiting on a busy machine), which the device simply tried again.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from jitr.certificates import certificate_id
from jitr_config.model import load_config
from jitr_tools import pki
from jitr_tools.endpoint.devices import PahoDevice, PowerUp, Tally, endpoint_judge, power_up, write_device
from jitr_tools.endpoint.serve import ServeOptions, Service
from jitr_tools.rehearsing.reconnect import Reconnect

DEVICES = 200
INVALID_FRACTION = 0.1
TIME_FACTOR = 10.0
TIMEOUT_S = 300.0
TEMPLATE = str(Path(__file__).resolve().parents[1] / "templates" / "jitr-device.json")


def run(devices: int = DEVICES) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        ca, _ = pki.development_ca(root / ".dev-pki")
        fleet = pki.make_fleet(ca, devices, invalid_fraction=INVALID_FRACTION, seed=23)
        config = load_config({"caCertificates": [".dev-pki/issuing-ca.pem"], "template": TEMPLATE}, root)
        options = ServeOptions(folder=root / "serve", mqtt_port=0, api_port=0)
        with Service(config, options, say=lambda _line: None) as service:
            return _power_up(service, fleet, root)


def _power_up(service: Service, fleet: list[pki.FleetDevice], root: Path) -> dict[str, Any]:
    backoff = Reconnect.sdk(TIME_FACTOR)
    results: dict[str, tuple[PowerUp, float]] = {}  # name -> (its power-up, seconds from its first attempt)
    lock = threading.Lock()
    started = time.monotonic()

    def device_run(device: pki.FleetDevice, seed: int) -> None:
        files = write_device(device.issued, root / "fleet", device.name)
        cert_id = certificate_id(device.issued.certificate)
        client = PahoDevice(files, device.name, service.endpoint.port, service.credentials.ca_file)
        judge = endpoint_judge(service.endpoint, cert_id)
        first = time.monotonic()
        run = power_up(client, judge, backoff, random.Random(seed), started + TIMEOUT_S)
        with lock:
            results[device.name] = (run, time.monotonic() - first)

    threads = [threading.Thread(target=device_run, args=(d, i)) for i, d in enumerate(fleet)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    good = [results[d.name] for d in fleet if d.defect is None]
    tally = Tally.of([run for run, _ in good], [results[d.name][0] for d in fleet if d.defect is not None])
    latencies = sorted(seconds for run, seconds in good if run.outcome == "connected")
    attempts = sum(run.attempts for run, _ in results.values())
    return {
        "devices": len(fleet),
        "good": tally.good,
        "connected": tally.connected,
        "refused": tally.refused,
        "good_refused": tally.good_refused,
        "lost": tally.lost,
        "dropped_attempts": tally.dropped_attempts,
        "dropped_devices": tally.dropped_devices,
        "onboard_s": round(elapsed, 2),
        "connect_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "connect_p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3) if latencies else None,
        "attempts_per_good_device": round(statistics.mean(run.attempts for run, _ in good), 2) if good else None,
        "connection_attempts": attempts,
        "attempts_per_s": round(attempts / elapsed, 1),
        "time_factor": TIME_FACTOR,
    }


if __name__ == "__main__":
    print(run(int(sys.argv[1]) if len(sys.argv) > 1 else DEVICES))
