"""`jitr init DIR`: a CDK app of a team's own with jitr's construct in it, for teams that have no CDK app yet.

It writes app.py (a stack of the team's with `JustInTimeRegistration` and cdk-nag's AwsSolutions checks), cdk.json
(the `jitr` configuration: the development CA until `caCertificates` names the team's), requirements.txt (jitr
pinned to this version, so an upgrade is a version bump), the device template to edit, .gitignore and a short README.
It never writes over a file: DIR must be new or empty.
"""

from __future__ import annotations

import json
import shutil
from importlib import metadata
from pathlib import Path

from jitr_config.model import SHIPPED_TEMPLATE

APP = '''#!/usr/bin/env python3
"""The team's CDK app, with jitr's just-in-time registration beside its own resources (made by `jitr init`)."""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from jitr_cdk import JustInTimeRegistration
from jitr_config.model import CONFIG_FILE_KEY, CONTEXT_KEY, ConfigError, raw_settings
from jitr_tools.pki import development_ca_pem

HERE = Path(__file__).resolve().parent

app = cdk.App()
stack = cdk.Stack(app, "{stack}")
try:
    # cdk.json's `jitr` object (or the file `jitr:configFile` names): the keys `cdk deploy` of jitr's repository reads
    settings = raw_settings({{key: app.node.try_get_context(key) for key in (CONTEXT_KEY, CONFIG_FILE_KEY)}}, HERE)
    JustInTimeRegistration.from_settings(stack, "Registration", settings, HERE, development_ca=development_ca_pem)
except ConfigError as exc:
    sys.exit(f"jitr: configuration error: {{exc}}")
# the team's own resources go here, in `stack` or stacks of their own
cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
app.synth()
'''

README = """# {stack}

A CDK app with [jitr](https://pypi.org/project/jitr/)'s just-in-time registration for AWS IoT Core (`jitr init`).

    python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt
    npx aws-cdk@2 synth                         # checks the configuration and cdk-nag; makes .dev-pki/ on first run
    npx aws-cdk@2 deploy --parameters DevelopmentCaOptIn=yes   # the development CA: for a trial account only

Name your CA in cdk.json (`"caCertificates": ["my-ca.pem"]`) and the development CA is gone; edit the device
template in templates/. Upgrade jitr by changing its version in requirements.txt.
"""

GITIGNORE = """.venv/
cdk.out/
.dev-pki/
*.key
__pycache__/
"""


class ScaffoldError(RuntimeError):
    """DIR cannot take the app (it holds files)."""


def version() -> str:
    try:
        return metadata.version("jitr")
    except metadata.PackageNotFoundError:  # read from a checkout without an install
        return "0.0.0"


def scaffold(folder: Path, stack: str = "Devices") -> list[Path]:
    """Write the app into `folder` (made if missing) and return the files written, in order."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ScaffoldError(f"{folder} is not an empty folder: jitr init writes a new app and never over files")
    cdk_json = {
        "app": "python3 app.py",
        "output": "cdk.out",
        "context": {"jitr": {"caCertificates": []}, "cli-telemetry": False},
        "notices": False,
    }
    files = {
        "app.py": APP.format(stack=stack),
        "cdk.json": json.dumps(cdk_json, indent=2) + "\n",
        "requirements.txt": f"jitr[cdk]=={version()}\n",
        "README.md": README.format(stack=stack),
        ".gitignore": GITIGNORE,
    }
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        written.append(folder / name)
    (folder / "templates").mkdir()
    written.append(Path(shutil.copyfile(SHIPPED_TEMPLATE, folder / "templates" / SHIPPED_TEMPLATE.name)))
    return written
