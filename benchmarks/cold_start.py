"""Cold import of the handler module in fresh processes, as a ratio to `import boto3` measured in the same run."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

RUNS = 9
PROBE = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def _median_import_s(module: str) -> float:
    env = {**os.environ, "JITR_TEMPLATE_NAME": "jitr-device", "AWS_DEFAULT_REGION": "us-east-1"}
    samples = []
    for _ in range(RUNS):
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True, check=True, env=env
        )
        samples.append(float(out.stdout.strip()))
    return statistics.median(samples)


def run() -> dict[str, float]:
    boto3_s = _median_import_s("boto3")
    handler_s = _median_import_s("jitr_handlers.registration")
    return {
        "import_ratio": round(handler_s / boto3_s, 3),
        "handler_import_ms": round(handler_s * 1000, 2),
        "boto3_import_ms": round(boto3_s * 1000, 2),
        "runs": RUNS,
    }
