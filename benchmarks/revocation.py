"""What checking the issuer's CRL costs: per event on a warm execution environment (the CRL already fetched and
indexed), for a 10-entry and a 100,000-entry CRL, against the same handler without revocation; and reading
(parse, signature, index) a 100,000-entry CRL once, in time and memory. The CRL is served on 127.0.0.1 and fetched
by the handler's own sources, once, before the measured events. OCSP: one round trip to a responder on 127.0.0.1
(the request built, POSTed, the response parsed and checked; the responder signs in this process), and the per-event
cost once the answer is kept."""

from __future__ import annotations

import statistics
import time
import tracemalloc
from typing import Any

from cryptography.hazmat.primitives import serialization

from benchmarks import warm
from jitr.certificates import certificate_id
from jitr.revocation import read_crl
from jitr.revocation_sources import CrlSources
from jitr.settings import RevocationSource, Settings
from jitr_tools import pki
from jitr_tools.pki.crl_server import CrlServer
from jitr_tools.pki.ocsp_responder import OcspResponder

LARGE = 100_000


def _crl(ca: pki.Issued, entries: int) -> bytes:
    revoked: list[pki.RevokedEntry] = [(n, None) for n in range(1, entries + 1)]
    return pki.make_crl(ca, revoked).public_bytes(serialization.Encoding.DER)


def _warm_with(ca: pki.Issued, server: CrlServer, der: bytes, path: str) -> dict[str, Any]:
    url = server.publish(path, der)
    source = RevocationSource(crl=(url,))
    settings = Settings(
        template_name="jitr-device",
        revocation={certificate_id(ca.certificate): source},
        revocation_allow_loopback=True,
    )
    crls = CrlSources(loopback_ok=True)
    crls.crl(url, ca.certificate, source)  # fetched and indexed once, as the first event of an environment does
    return warm.run(settings, crls, ca)


def _read_once(ca: pki.Issued, der: bytes) -> dict[str, float]:
    tracemalloc.start()
    start = time.perf_counter()
    crl = read_crl(der, ca.certificate, "bench")
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(crl) == LARGE
    return {"read_s": round(elapsed, 3), "read_peak_mb": round(peak / 2**20, 1), "der_mb": round(len(der) / 2**20, 2)}


def _ocsp(ca: pki.Issued, server: CrlServer, round_trips: int = 50) -> dict[str, Any]:
    url = server.answer("/ocsp", OcspResponder(ca))
    source = RevocationSource(ocsp=(url,))
    device = pki.make_device(ca, "ocsp bench device")
    samples = []
    for _ in range(round_trips):
        crls = CrlSources(loopback_ok=True)  # nothing kept: every status is a round trip
        start = time.perf_counter()
        crls.status(device.certificate, ca.certificate, source)
        samples.append(time.perf_counter() - start)
    settings = Settings(
        template_name="jitr-device",
        revocation={certificate_id(ca.certificate): source},
        revocation_allow_loopback=True,
    )
    cached = warm.run(settings, CrlSources(loopback_ok=True), ca)  # the warm-up's first event asks the responder
    return {
        "ocsp_round_trip_ms": round(statistics.median(samples) * 1000, 2),
        "ocsp_p50_us_cached": cached["p50_us"],
        "ocsp_check_us_cached": cached["steps_us"]["revocation"],
    }


def run() -> dict[str, Any]:
    ca = pki.make_ca("bench CA")
    large = _crl(ca, LARGE)
    without = warm.run(ca=ca)
    with CrlServer() as server:
        small = _warm_with(ca, server, _crl(ca, 10), "/small.crl")
        big = _warm_with(ca, server, large, "/large.crl")
        ocsp = _ocsp(ca, server)
    base = without["p50_us"]
    return {
        "p50_us_without": base,
        "p50_us_10_entries": small["p50_us"],
        "p50_us_100k_entries": big["p50_us"],
        "check_us_10_entries": small["steps_us"]["revocation"],
        "check_us_100k_entries": big["steps_us"]["revocation"],
        "check_share_of_p50": round(big["steps_us"]["revocation"] / base, 4),
        **{f"large_crl_{k}": v for k, v in _read_once(ca, large).items()},
        **ocsp,
    }


if __name__ == "__main__":
    print(run())
