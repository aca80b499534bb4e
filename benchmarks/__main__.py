"""Run every benchmark, print a table and write bench-results.json at the repository root."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks import cold_start, onboarding, warm

ROOT = Path(__file__).resolve().parents[1]
PLOT = ROOT / "bench-onboarding.png"


def main() -> None:
    started = time.monotonic()
    results: dict[str, Any] = {"cold_start": cold_start.run(), "warm": warm.run()}
    results["onboarding"], results["onboarding_naive"] = onboarding.run(PLOT)
    results["total_s"] = round(time.monotonic() - started, 1)
    (ROOT / "bench-results.json").write_text(json.dumps(results, indent=2) + "\n")
    queued, naive = results["onboarding"], results["onboarding_naive"]
    rows = [
        ("cold_start.import_ratio", results["cold_start"]["import_ratio"], "<= 1.5"),
        ("cold_start.handler_import_ms", results["cold_start"]["handler_import_ms"], ""),
        ("cold_start.boto3_import_ms", results["cold_start"]["boto3_import_ms"], ""),
        ("cold_start.asset_mb", results["cold_start"]["asset_mb"], ""),
        ("cold_start.asset_zip_mb", results["cold_start"]["asset_zip_mb"], ""),
        ("warm.p50_us", results["warm"]["p50_us"], "<= 1000"),
        ("warm.p99_us", results["warm"]["p99_us"], ""),
        *((f"warm.steps_us.{k}", v, "") for k, v in results["warm"]["steps_us"].items()),
        *(
            (f"onboarding.{k}", queued[k], aim)
            for k, aim in (
                ("devices", ""),
                ("provisioned", ""),
                ("rejected", ""),
                ("lost", "= 0"),
                ("register_calls", f"<= {1.05 * queued['provisioned']:.0f}"),
                ("throttles", ""),
                ("drain_s", ""),
                ("throughput_ratio", ">= 0.9"),
            )
        ),
        *(
            (f"onboarding_naive.{k}", naive[k], "")
            for k in ("devices", "provisioned", "lost", "register_calls", "throttles", "drain_s", "throughput_ratio")
        ),
    ]
    print(f"{'metric':<34} {'value':>12}  aim")
    for name, value, aim in rows:
        print(f"{name:<34} {value:>12.2f}  {aim}")
    print(f"wrote {ROOT / 'bench-results.json'} and {PLOT} in {results['total_s']} s")


if __name__ == "__main__":
    main()
