"""Run every benchmark, print a table and write bench-results.json at the repository root."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import cold_start, warm

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    results = {"cold_start": cold_start.run(), "warm": warm.run()}
    (ROOT / "bench-results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'metric':<32} {'value':>12}  aim")
    rows = [
        ("cold_start.import_ratio", results["cold_start"]["import_ratio"], "<= 1.5"),
        ("cold_start.handler_import_ms", results["cold_start"]["handler_import_ms"], ""),
        ("cold_start.boto3_import_ms", results["cold_start"]["boto3_import_ms"], ""),
        ("warm.p50_us", results["warm"]["p50_us"], "<= 1000"),
        ("warm.p99_us", results["warm"]["p99_us"], ""),
        *((f"warm.steps_us.{k}", v, "") for k, v in results["warm"]["steps_us"].items()),
    ]
    for name, value, aim in rows:
        print(f"{name:<32} {value:>12.2f}  {aim}")
    print(f"wrote {ROOT / 'bench-results.json'}")


if __name__ == "__main__":
    main()
