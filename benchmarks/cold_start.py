"""Cold import of the handler module in fresh processes, as a ratio to `import boto3` measured in the same run."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

RUNS = 9
PROBE = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def _median_import_s(module: str) -> float:
    # What Lambda's runtime sets (LAMBDA_TASK_ROOT makes the X-Ray SDK take its Lambda path, as it does in AWS: no
    # centralized-sampling clients), plus the settings the stack gives the function.
    env = {
        **os.environ,
        "LAMBDA_TASK_ROOT": tempfile.gettempdir(),
        "AWS_LAMBDA_FUNCTION_NAME": "jitr-bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "jitr",
        "JITR_TEMPLATE_NAME": "jitr-device",
    }
    samples = []
    for _ in range(RUNS):
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True, check=True, env=env
        )
        samples.append(float(out.stdout.strip()))
    return statistics.median(samples)


def asset_sizes() -> dict[str, float]:
    """The deployed asset (arm64, the function's Python), built by the stack's bundling code: unzipped and zipped."""
    from jitr_cdk import bundling

    with tempfile.TemporaryDirectory() as folder:
        asset = bundling.bundle(Path(folder) / "asset", bundling.FUNCTION_TARGET)
        archive = Path(folder) / "asset.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for path in sorted(asset.rglob("*")):
                if path.is_file():
                    zipped.write(path, path.relative_to(asset))
        return {
            "asset_mb": round(bundling.size_bytes(asset) / 1e6, 2),
            "asset_zip_mb": round(archive.stat().st_size / 1e6, 2),
        }


def run() -> dict[str, float]:
    boto3_s = _median_import_s("boto3")
    handler_s = _median_import_s("jitr_handlers.registration")
    return {
        "import_ratio": round(handler_s / boto3_s, 3),
        "handler_import_ms": round(handler_s * 1000, 2),
        "boto3_import_ms": round(boto3_s * 1000, 2),
        "runs": RUNS,
        **asset_sizes(),
    }
