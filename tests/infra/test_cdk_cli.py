"""`make synth`'s command, as the Makefile says it (the README's platform quick start runs `make synth`): the pinned CDK
CLI synthesizes the app offline and bundles the Lambda asset without Docker, with only what runs in AWS inside."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from jitr_cdk import bundling
from tests.support import REPO, make_recipe

CDK = REPO / "node_modules" / ".bin" / "cdk"


@pytest.mark.slow
def test_the_pinned_cli_synthesizes_offline_and_the_asset_holds_only_the_lambda_code(tmp_path: Path) -> None:
    assert CDK.exists(), "node_modules is missing: run `make install` (npm ci pins the CDK CLI)"
    bundling.prefetch(bundling.FUNCTION_TARGET)  # what `make install` did; a no-op when the wheel house is current
    out = tmp_path / "cdk.out"
    environment = {
        **os.environ,
        "PIP_NO_INDEX": "1",  # pip may not reach an index: the wheel house must be enough
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }
    # The development CA goes to a temporary folder, so the checkout's own .dev-pki is left alone.
    context = json.dumps(
        {**json.loads((REPO / "cdk.json").read_text())["context"]["jitr"], "developmentPki": str(tmp_path / "pki")}
    )
    result = subprocess.run(
        [*make_recipe("synth"), "--output", str(out), "--context", f"jitr={context}"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "using the development CA" in result.stderr

    template = json.loads((out / "Jitr.template.json").read_text())
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    (function,) = [f for f in functions if f["Properties"]["Handler"] == bundling.HANDLER]
    asset = out / f"asset.{function['Metadata']['aws:asset:path'].removeprefix('asset.')}"
    top = {path.name for path in asset.iterdir()}
    assert {"jitr", "jitr_handlers", "aws_lambda_powertools", "cryptography", "pydantic_core", "boto3"} <= top
    assert not top & {"jitr_tools", "moto", "aws_cdk", "tests", "infra", "hypothesis", "pytest", "cdk_nag"}
    # built for the function's platform, not this machine's
    native = [p.name for p in asset.rglob("*.so")]
    assert any("aarch64" in name for name in native)
    assert not any("x86_64" in name for name in native)
    assert any(name.startswith("_pydantic_core.cpython-314") for name in native)
