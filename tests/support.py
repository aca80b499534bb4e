"""What every test tier shares: the repository's paths and data, the device policy, and an embedded account."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jitr.policy import account_arn, device_policy_document
from jitr_tools import pki
from jitr_tools.embedded import EmbeddedIoT

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
# the device policy the stack deploys, in the embedded account
DEVICE_POLICY = json.dumps(device_policy_document(account_arn("us-east-1", "123456789012")))


def make_dry_run(*arguments: str) -> subprocess.CompletedProcess[str]:
    """`make --dry-run ARGUMENTS` in the repository: what make would run, running nothing. Run from `make test`, this
    is a sub-make: it would print "Entering directory" lines, and inherit the outer make's flags; it does neither."""
    make = shutil.which("make")
    assert make, "make is not installed"
    environment = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    return subprocess.run(
        [make, "--dry-run", "--no-print-directory", *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env=environment,
    )


def make_recipe(target: str) -> list[str]:
    """What `make TARGET` runs (its recipe's one command, as make expands it), leaving out the `install` it depends
    on: a test runs this in the target's place, so that the target and the test cannot drift apart."""
    dry = make_dry_run("--old-file", "install", target)
    assert dry.returncode == 0, dry.stderr
    (command,) = dry.stdout.splitlines()
    return shlex.split(command)


def data(name: str) -> str:
    return (DATA / name).read_text()


@dataclass
class Account:
    """The embedded IoT of one test, its boto3 client and the registration events it published."""

    iot: EmbeddedIoT
    client: Any
    events: list[dict[str, Any]] = field(default_factory=list)

    def register_ca(self, ca: pki.Issued, *, auto: bool = True, **extra: Any) -> str:
        code = self.client.get_registration_code()["registrationCode"]
        verification = pki.make_verification_certificate(ca, code)
        return str(
            self.client.register_ca_certificate(
                caCertificate=ca.pem,
                verificationCertificate=verification.pem,
                setAsActive=True,
                allowAutoRegistration=auto,
                **extra,
            )["certificateId"]
        )
