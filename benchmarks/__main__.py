"""Run every benchmark, print a table and write bench-results.json at the repository root."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks import cold_start, onboarding, products, revocation, serve, sweeper, warm

ROOT = Path(__file__).resolve().parents[1]
PLOT = ROOT / "docs" / "bench-onboarding.png"  # the benchmarks page shows it


def main() -> None:
    started = time.monotonic()
    results: dict[str, Any] = {"cold_start": cold_start.run(), "warm": warm.run()}
    results.update(onboarding.run(PLOT))
    results["serve"] = serve.run()
    results["sweeper"] = sweeper.run()
    results["revocation"] = revocation.run()
    results["products"] = products.run()
    results["total_s"] = round(time.monotonic() - started, 1)
    (ROOT / "bench-results.json").write_text(json.dumps(results, indent=2) + "\n")
    rows = [
        ("cold_start.import_ratio", results["cold_start"]["import_ratio"], "<= 1.5"),
        ("cold_start.handler_import_ms", results["cold_start"]["handler_import_ms"], ""),
        ("cold_start.boto3_import_ms", results["cold_start"]["boto3_import_ms"], ""),
        ("cold_start.asset_mb", results["cold_start"]["asset_mb"], ""),
        ("cold_start.asset_zip_mb", results["cold_start"]["asset_zip_mb"], ""),
        ("warm.p50_us", results["warm"]["p50_us"], "<= 1000"),
        ("warm.p99_us", results["warm"]["p99_us"], ""),
        *((f"warm.steps_us.{k}", v, "") for k, v in results["warm"]["steps_us"].items()),
    ]
    aims = {
        "lost": "= 0",
        "throughput_ratio": ">= 0.9",
        "drain_ratio": "<= 1.15",
        "iot_calls_per_provisioned": "<= 2.2",
        "throttled_share": "<= 0.01",
    }
    for name in ("onboarding_aws_defaults", "onboarding_no_decision_table", "onboarding_naive"):
        run = results[name]
        for key in (
            "devices",
            "provisioned",
            "rejected",
            "lost",
            "unfinished",
            "events",
            "duplicates_absorbed",
            "iot_calls",
            "iot_calls_per_provisioned",
            "throttled_share",
            "drain_s",
            "ideal_drain_s",
            "drain_ratio",
            "throughput_ratio",
        ):
            aim = aims.get(key, "") if name == "onboarding_aws_defaults" else ""
            rows.append((f"{name}.{key}", float(run[key] or 0), aim))
    serve_aims = {"lost": "= 0", "good_refused": "= 0"}
    for key in (
        "devices",
        "connected",
        "refused",
        "good_refused",
        "lost",
        "dropped_attempts",
        "onboard_s",
        "connect_p50_s",
        "connect_p95_s",
        "attempts_per_good_device",
        "attempts_per_s",
    ):
        rows.append((f"serve.{key}", float(results["serve"][key] or 0), serve_aims.get(key, "")))
    sweep_aims = {"runs_until_spread_lost_swept": "<= bound_runs", "late_runs_after_stale": "<= bound_runs"}
    for key in (
        "certificates",
        "lost",
        "pending_on_purpose",
        "per_run_capacity",
        "bound_runs",
        "runs_until_spread_lost_swept",
        "late_runs_after_stale",
        "sent_not_lost",
        "run_s_max",
        "ms_per_page",
    ):
        rows.append((f"sweeper.{key}", float(results["sweeper"][key] or 0), sweep_aims.get(key, "")))
    for key, value in results["revocation"].items():
        rows.append((f"revocation.{key}", float(value), "<= 0.05" if key == "check_share_of_p50" else ""))
    for key, value in results["products"].items():
        rows.append((f"products.{key}", float(value or 0), ""))
    print(f"{'metric':<56} {'value':>12}  aim")
    for name, value, aim in rows:
        print(f"{name:<56} {value:>12.6g}  {aim}")
    print(f"wrote {ROOT / 'bench-results.json'} and {PLOT} in {results['total_s']} s")


if __name__ == "__main__":
    main()
