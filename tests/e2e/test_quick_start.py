"""The README's two quick starts, command by command, as they are written: every command shown is one that runs.

The commands are read from the `console` blocks of the README's two quick-start sections (a line ending in `\\` goes
on, `#` starts a comment), so changing one there changes what runs here.

A device team's: in a temporary folder holding what the commands need (the repository's cdk.json and templates, and
`.venv` linked to this virtual environment), `jitr pki devices` and `jitr verify` run as written; `jitr serve` runs in
the background as written plus `--port`, `--api-port` and `--crl-port` on free ports (a test must not take 8883, 4566
or the CRL's port from someone else's), and the device's connect runs twice with the MQTT port it gives replaced by
the free one: the first is closed while the handler decides, the second publishes. The connect is `mosquitto_pub`
itself when it is installed; where it is not, the same connect (host, CA file, certificate, key, client id, topic,
message, read from the command with mosquitto_pub's option names, an option it does not know failing the test) is
made with the repository's own MQTT client, `jitr_tools.endpoint.devices.PahoDevice` (paho-mqtt).

A platform team's: `make synth` runs the command tests/infra/test_cdk_cli.py runs (both read it from the Makefile);
`cdk bootstrap`, `make deploy` and `jitr doctor` need an AWS account, so they are checked to be the documented ones
(the pinned CLI, the deploy recipe writing the outputs file doctor reads, doctor's arguments parsing) and not run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from jitr.certificates import certificate_id
from jitr_tools import pki
from jitr_tools.cli import _parser as jitr_parser
from jitr_tools.endpoint.devices import Files, PahoDevice
from tests.support import REPO, make_dry_run, make_recipe

PLATFORM = "Quick start: a platform team deploying jitr"
DEVICE = "Quick start: a device team rehearsing its devices"
JITR = ".venv/bin/jitr"
DECIDED_S = 30.0
pytestmark = pytest.mark.slow


def quick_start(section: str) -> list[list[str]]:
    """The commands of the `console` block under the README's `## section` heading, each split as a shell would."""
    text = (REPO / "README.md").read_text()
    found = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert found, f"README.md has no section {section!r}"
    block = re.search(r"^```console\n(.*?)^```", found.group(1), re.M | re.S)
    assert block, f"README.md's {section!r} shows no console block"
    joined = block.group(1).replace("\\\n", " ")
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


def test_the_platform_quick_start_is_install_synth_bootstrap_deploy_doctor() -> None:
    commands = quick_start(PLATFORM)
    assert commands == [
        ["make", "install"],
        ["make", "synth"],
        ["node_modules/.bin/cdk", "bootstrap"],
        ["make", "deploy"],
        [JITR, "doctor", "--outputs", "cdk-outputs.json"],
    ], "a quick-start command changed: say here how it is run or checked"
    assert_make_target("install")
    # `make synth` is what tests/infra/test_cdk_cli.py runs (with a temporary output folder and development CA)
    assert make_recipe("synth")[:2] == ["node_modules/.bin/cdk", "synth"]
    # what the block's comment tells the reader to set
    assert "caCertificates" in json.loads((REPO / "cdk.json").read_text())["context"]["jitr"]


def test_the_platform_quick_starts_account_commands_are_the_documented_ones() -> None:
    commands = quick_start(PLATFORM)
    cdk = REPO / commands[2][0]
    assert os.access(cdk, os.X_OK), "the pinned CDK CLI: run `make install`"
    deploy = make_recipe("deploy")
    assert deploy[:2] == [commands[2][0], "deploy"]
    assert deploy[deploy.index("--outputs-file") + 1] == commands[4][3], "doctor reads the outputs deploy writes"
    jitr_parser().parse_args(commands[4][1:])  # a usage error exits
    pytest.skip("cdk bootstrap, make deploy and jitr doctor need an AWS account: checked as documented, not run")


def assert_make_target(target: str) -> None:
    dry = make_dry_run(target)
    assert dry.returncode == 0, dry.stderr


@dataclass
class Serving:
    process: subprocess.Popen[str]
    mqtt_port: int
    api_port: int
    output: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """What the device team's commands need of a checkout: its cdk.json, its templates and the virtual environment."""
    shutil.copy(REPO / "cdk.json", tmp_path / "cdk.json")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    return tmp_path


def test_the_device_team_quick_start_runs_as_written(folder: Path) -> None:
    commands = quick_start(DEVICE)
    assert [c[:2] for c in commands] == [
        ["make", "install"],
        [JITR, "pki"],
        [JITR, "verify"],
        [JITR, "serve"],
        ["mosquitto_pub", "-h"],
    ], "a quick-start command changed: say here how it is run"
    install, devices, verify, serve, connect = commands
    assert_make_target(install[1])
    ran = run(devices, folder)
    assert re.match(r"wrote \d+ devices", ran.stdout), ran.stdout
    ran = run(verify, folder)
    assert ran.stdout.startswith("ACCEPTED "), ran.stdout
    assert jitr_parser().parse_args(serve[1:]).port == 8883, "the connect's port is serve's default"
    with serving(serve, folder) as service:
        connect_twice(connect, folder, service)
    assert service.process.returncode == 0, "".join(service.output)
    assert "Traceback" not in "".join(service.output)


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    ran = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, f"{shlex.join(command)}: {ran.stderr}"
    return ran


@contextlib.contextmanager
def serving(command: list[str], cwd: Path) -> Iterator[Serving]:
    """`jitr serve` as written, on free ports, until it listens; Ctrl-C (SIGINT) at the end, as its banner says."""
    mqtt_port, api_port = free_port(), free_port()
    ports = ["--port", str(mqtt_port), "--api-port", str(api_port), "--crl-port", str(free_port())]
    process = subprocess.Popen(
        [*command, *ports],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    service = Serving(process, mqtt_port, api_port)
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: service.output.extend(process.stdout or ()), daemon=True)
    reader.start()
    try:
        wait_listening(service)
        yield service
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=10)


def wait_listening(service: Serving) -> None:
    deadline = time.monotonic() + DECIDED_S
    while time.monotonic() < deadline:
        assert service.process.poll() is None, "jitr serve stopped: " + "".join(service.output)
        try:
            for port in (service.mqtt_port, service.api_port):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.1)
            continue
        return
    raise AssertionError("jitr serve does not listen: " + "".join(service.output))


def mosquitto_options(command: list[str]) -> argparse.Namespace:
    """The options of a `mosquitto_pub` command the connect uses, by mosquitto_pub's names."""
    options = argparse.ArgumentParser(prog="mosquitto_pub", add_help=False, exit_on_error=False)
    for short, long in (("-h", "--host"), ("-p", "--port"), ("-i", "--id"), ("-t", "--topic"), ("-m", "--message")):
        options.add_argument(short, long, required=True)
    for long in ("--cafile", "--cert", "--key"):
        options.add_argument(long, type=Path, required=True)
    parsed, unknown = options.parse_known_args(command[1:])
    assert not unknown, f"mosquitto_pub options this test does not make: {unknown}"
    return parsed


def connect_twice(command: list[str], cwd: Path, service: Serving) -> None:
    """The device's connect, as written but on the served port: closed while pending, then accepted."""
    options = mosquitto_options(command)
    device = pki.load_certificates_file(cwd / options.cert)[0]
    on_port = [service.mqtt_port if word == options.port else word for word in command]
    if shutil.which("mosquitto_pub"):
        first = subprocess.run(on_port, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
        assert first.returncode != 0, "the first connect registers the certificate and is closed"
        wait_active(service, certificate_id(device))
        run([str(word) for word in on_port], cwd)
        return
    paho = PahoDevice(
        Files(cwd / options.cert, cwd / options.key), options.id, service.mqtt_port, cwd / options.cafile, options.host
    )
    assert paho.connect() == "closed", "the first connect registers the certificate and is closed"
    wait_active(service, certificate_id(device))
    assert paho.connect() == "CONNACK 0"
    try:
        message = paho.publish(options.topic, options.message.encode())
        assert paho.wait_for(lambda: message in paho.acknowledged), "the device policy lets it publish"
    finally:
        paho.stop()


def wait_active(service: Serving, certificate: str) -> None:
    """Until the handler, behind `jitr serve`, has made the certificate ACTIVE (asked through serve's HTTP API)."""
    api = boto3.client(
        "iot",
        endpoint_url=f"http://127.0.0.1:{service.api_port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    deadline, status = time.monotonic() + DECIDED_S, None
    while time.monotonic() < deadline and status != "ACTIVE":
        try:
            status = api.describe_certificate(certificateId=certificate)["certificateDescription"]["status"]
        except (ClientError, EndpointConnectionError):
            status = None
        time.sleep(0.1)
    assert status == "ACTIVE", "".join(service.output)
