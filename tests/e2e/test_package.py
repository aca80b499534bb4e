"""jitr as a team uses it: the wheel this checkout builds, installed into a new virtual environment in a temporary
folder (nothing of the checkout on its path), gives the `jitr` command and the construct, and carries the Lambda code
the construct bundles. A consumer CDK app of a few lines adds the construct beside its own queue and is synthesized by
the pinned CDK CLI under cdk-nag; `jitr init` scaffolds an app that synthesizes the same way."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from jitr_cdk import bundling
from jitr_tools import pki
from tests.support import REPO

pytestmark = pytest.mark.slow

CDK = REPO / "node_modules" / ".bin" / "cdk"
# what the wheel is built from: pyproject.toml's package folders and the files they link to
SOURCES = ("pyproject.toml", "README.md", "requirements.txt", "constraints.txt")
FOLDERS = ("lambdas", "tools", "infra", "jitr_config", "templates")

CONSUMER_APP = """
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks

from jitr_cdk import JustInTimeRegistration

app = cdk.App()
stack = cdk.Stack(app, "Orders")
dead_letters = sqs.Queue(stack, "OrderDeadLetters", enforce_ssl=True)
dead_letter_queue = sqs.DeadLetterQueue(max_receive_count=3, queue=dead_letters)
sqs.Queue(stack, "Orders", enforce_ssl=True, dead_letter_queue=dead_letter_queue)
JustInTimeRegistration.from_settings(stack, "Devices", {"caCertificates": ["ca.pem"]}, Path(__file__).parent)
cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel .` of a copy of this checkout (the build writes build/ and *.egg-info beside its sources)."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        shutil.copy(REPO / name, source / name)
    for folder in FOLDERS:  # symbolic links (the package's pins and template) are copied as the files they name
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = tmp_path_factory.mktemp("dist")
    pip_wheel = ["-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dist)]
    subprocess.run([sys.executable, *pip_wheel, str(source)], check=True, timeout=300)
    (built,) = dist.glob("jitr-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with `jitr[cdk]` from the wheel (its dependencies at this checkout's pins)."""
    folder = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300)
    install = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [folder / "bin" / "python", *install, f"{wheel}[cdk]", "-c", str(REPO / "constraints.txt")],
        cwd=folder,  # `python -m` reads its working folder first: a checkout there holds jitr.egg-info, "installed"
        env={**_environment(folder), "PIP_NO_INDEX": "0"},  # the dependencies come from the index (or pip's cache)
        check=True,
        timeout=900,
    )
    return folder


def _environment(venv: Path) -> dict[str, str]:
    """What an activated virtual environment gives, and nothing of this checkout."""
    environment = {
        key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    return {
        **environment,
        "VIRTUAL_ENV": str(venv),
        "PATH": f"{venv / 'bin'}{os.pathsep}{environment.get('PATH', '')}",
        # the wheel house `make install` filled: the same pins, so the consumer's synth needs no network
        "JITR_CACHE": str(bundling.Sources.here().cache),
        "PIP_NO_INDEX": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }


def _run(command: list[str | Path], cwd: Path, venv: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=_environment(venv),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _synth(app: Path, venv: Path) -> dict[str, dict[str, object]]:
    """`cdk synth` of the app in `app` with the pinned CLI; its templates by stack."""
    result = _run([CDK, "synth", "--quiet", "--no-notices", "--output", "cdk.out"], app, venv)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "AwsSolutions-" not in result.stdout + result.stderr  # cdk-nag found nothing unacknowledged
    return {
        path.name.removesuffix(".template.json"): json.loads(path.read_text())
        for path in (app / "cdk.out").glob("*.template.json")
    }


def _types(template: dict[str, object]) -> Counter[str]:
    resources = template["Resources"]
    assert isinstance(resources, dict)
    return Counter(resource["Type"] for resource in resources.values())


def _bundled_asset(app: Path, template: dict[str, object]) -> Path:
    resources = template["Resources"]
    assert isinstance(resources, dict)
    (function,) = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"]["Handler"] == bundling.HANDLER
    ]
    return app / "cdk.out" / function["Metadata"]["aws:asset:path"]


def test_the_wheel_carries_the_code_the_pins_and_the_template_and_no_infra_module(wheel: Path) -> None:
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names if not name.startswith("jitr-")}
    assert top == {"jitr", "jitr_handlers", "jitr_tools", "jitr_config", "jitr_cdk"}  # nothing named `infra`, `tests`
    assert "jitr_cdk/pins/requirements.txt" in names
    assert "jitr_config/templates/jitr-device.json" in names
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/METADATA"))).decode()
    assert "Provides-Extra: cdk" in metadata
    assert "Provides-Extra: serve" in metadata
    assert "aws-cdk-lib" not in [
        line for line in metadata.splitlines() if "extra ==" not in line and "Requires-Dist" in line
    ]


def test_a_consumer_app_synthesizes_the_construct_beside_its_queue_under_cdk_nag(
    venv: Path, tmp_path: Path, issuing_ca: pki.Issued
) -> None:
    app = tmp_path / "orders"
    app.mkdir()
    (app / "app.py").write_text(CONSUMER_APP)
    (app / "cdk.json").write_text(json.dumps({"app": "python app.py", "context": {"cli-telemetry": False}}))
    (app / "ca.pem").write_text(issuing_ca.pem)

    templates = _synth(app, venv)
    types = _types(templates["Orders"])
    assert types["AWS::SQS::Queue"] == 2 + 2  # the team's two, and jitr's intake queue and its dead letters
    assert types["AWS::IoT::CACertificate"] == 1
    assert types["AWS::IoT::ProvisioningTemplate"] == 1
    assert types["AWS::IoT::TopicRule"] == 1
    assert types["AWS::Lambda::Function"] == 2
    # the asset is built from the installed package: the decision code and its pinned dependencies, for the function
    asset = _bundled_asset(app, templates["Orders"])
    top = {path.name for path in asset.iterdir()}
    assert {"jitr", "jitr_handlers", "aws_lambda_powertools", "pydantic_core"} <= top
    assert not top & {"jitr_tools", "jitr_cdk", "jitr_config", "aws_cdk", "moto"}
    assert (asset / "jitr" / "provisioning.py").read_bytes() == (
        REPO / "lambdas" / "jitr" / "provisioning.py"
    ).read_bytes()


def test_the_command_line_of_the_installed_package_verifies_and_checks_templates(
    venv: Path, tmp_path: Path, issuing_ca: pki.Issued
) -> None:
    (tmp_path / "ca.pem").write_text(issuing_ca.pem)
    (tmp_path / "device.pem").write_text(pki.make_device(issuing_ca, "sensor-0001").pem)
    jitr = venv / "bin" / "jitr"
    verified = _run([jitr, "verify", "--cert", "device.pem", "--ca", "ca.pem"], tmp_path, venv)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    template = tmp_path / "template.json"
    shutil.copy(REPO / "templates" / "jitr-device.json", template)
    checked = _run([jitr, "template", "check", template], tmp_path, venv)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # the embedded AWS IoT is an extra this environment did not install: one line naming it
    served = _run([jitr, "serve"], tmp_path, venv)
    assert served.returncode == 2
    assert served.stderr.strip().splitlines() == [served.stderr.strip()]
    assert "pip install 'jitr[serve]'" in served.stderr


def test_jitr_init_scaffolds_an_app_that_synthesizes_with_the_development_ca(venv: Path, tmp_path: Path) -> None:
    app = tmp_path / "fleet"
    result = _run([venv / "bin" / "jitr", "init", app], tmp_path, venv)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in app.iterdir()) == [
        ".gitignore",
        "README.md",
        "app.py",
        "cdk.json",
        "requirements.txt",
        "templates",
    ]
    assert len((app / "README.md").read_text().splitlines()) <= 12
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert (app / "requirements.txt").read_text() == f"jitr[cdk]=={version}\n"  # an upgrade is a version bump
    templates = _synth(app, venv)
    types = _types(templates["Devices"])
    assert types["AWS::IoT::CACertificate"] == 1
    assert types["AWS::Lambda::Function"] == 2
    assert "DevelopmentCaOptIn" in templates["Devices"]["Parameters"]  # the development CA is opted in at deploy
    assert (app / ".dev-pki" / "issuing-ca.pem").is_file()
    again = _run([venv / "bin" / "jitr", "init", app], tmp_path, venv)
    assert again.returncode == 2
    assert "not an empty folder" in again.stderr
