"""In a pipeline: `make deploy` without prompts when asked, a per-environment configuration file, outputs as JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from jitr_config.model import CONFIG_FILE_KEY, load_config, raw_settings
from jitr_tools import pki
from tests.infra.support import REGISTRATION_CODE, Synthesized
from tests.support import REPO

MAKE = shutil.which("make") or "make"
QUIET_ENV = {k: v for k, v in os.environ.items() if k not in ("CI", "JITR_YES", "CONFIG", "STACK", "MAKEFLAGS")}


def _deploy_command(*variables: str) -> str:
    # `make -n` prints the commands without running them; the last one is the deploy
    out = subprocess.run(
        [MAKE, "-n", "--no-print-directory", "deploy", *variables],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env=QUIET_ENV,  # no CI variable inherited from the machine running the tests
    ).stdout
    return out.strip().splitlines()[-1]


def test_in_ci_make_deploy_asks_nothing_and_writes_the_outputs_as_json() -> None:
    command = _deploy_command("CI=true", "CONFIG=envs/example.json", "STACK=JitrProd")
    assert "cdk deploy" in command
    assert "--require-approval never" in command
    assert "--context jitr:configFile=envs/example.json" in command
    assert "--context jitr:stackName=JitrProd" in command
    assert "--outputs-file cdk-outputs.json" in command


def test_at_a_desk_make_deploy_still_asks_before_widening_permissions() -> None:
    command = _deploy_command()
    assert "--require-approval never" not in command
    assert "--outputs-file cdk-outputs.json" in command


def test_the_example_environment_file_is_a_valid_configuration(tmp_path: Path, root_ca: pki.Issued) -> None:
    shutil.copytree(REPO / "envs", tmp_path / "envs")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    (tmp_path / "pki").mkdir()
    issuing, old = pki.make_ca("prod issuing CA", issuer=root_ca), pki.make_ca("old issuing CA", issuer=root_ca)
    (tmp_path / "pki" / "issuing-ca.pem").write_text(issuing.pem)
    (tmp_path / "pki" / "old-issuing-ca.pem").write_text(old.pem)
    for name, ca in (("verification.pem", issuing), ("old-verification.pem", old)):
        (tmp_path / "pki" / name).write_text(pki.make_verification_certificate(ca, REGISTRATION_CODE).pem)
    settings = raw_settings({"jitr": {}, CONFIG_FILE_KEY: "envs/example.json"}, tmp_path)
    config = load_config({"template": "templates/jitr-device.json", **settings}, tmp_path)
    assert [ca.retired for ca in config.cas] == [False, True]
    assert json.loads((REPO / "envs" / "example.json").read_text())["certificateMode"] == "DEFAULT"


def test_the_stack_writes_every_output_jitr_doctor_reads(jitr_stack: Synthesized) -> None:
    from jitr_tools.operating.doctor import OUTPUT_KEYS

    outputs = jitr_stack.json["Outputs"]
    assert set(OUTPUT_KEYS) <= set(outputs)
    assert outputs["RuleNames"]["Value"] == ",".join(jitr_stack.stack.intake.rule_names)


def test_the_pinned_cdk_cli_knows_every_flag_make_deploy_passes() -> None:
    command = _deploy_command("CI=true", "CONFIG=envs/example.json", "STACK=JitrProd")
    flags = {part for part in command.split() if part.startswith("--")}
    cli = REPO / "node_modules" / ".bin" / "cdk"
    assert cli.exists(), "node_modules is missing: run `make install` (npm ci pins the CDK CLI)"
    help_text = subprocess.run(
        [str(cli), "deploy", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={
            "PATH": "/usr/bin:/bin",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
            "CDK_DISABLE_CLI_TELEMETRY": "true",
        },
        timeout=120,
    ).stdout
    assert flags == {"--context", "--outputs-file", "--require-approval", "--progress", "--ci"}
    for flag in flags:
        assert flag in help_text, flag
