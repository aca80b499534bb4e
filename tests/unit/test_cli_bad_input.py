"""The command line answers bad input with one line on standard error and a non-zero exit, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from jitr_tools import pki
from jitr_tools.cli import main


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    ca = pki.make_ca("bad input CA")
    device = pki.make_device(ca, "bad-input-1")
    paths = {
        "ca": tmp_path / "ca.pem",
        "device": tmp_path / "device.pem",
        "fullchain": tmp_path / "fullchain.pem",
        "binary": tmp_path / "binary.bin",
        "latin1": tmp_path / "latin1.json",
        "directory": tmp_path / "a-directory",
        "missing": tmp_path / "missing.json",
    }
    paths["ca"].write_text(ca.pem)
    paths["device"].write_text(device.pem)
    paths["fullchain"].write_text(device.pem + ca.pem)  # device first, then the CA: what servers ship
    paths["binary"].write_bytes(bytes(range(256)) * 4)
    paths["latin1"].write_bytes('{"Resources": {"t": "caf\xe9"}}'.encode("latin-1"))
    paths["directory"].mkdir()
    return paths


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


CASES = {
    "template check, binary": (["template", "check", "{binary}"], "not UTF-8 text"),
    "template check, latin-1": (["template", "check", "{latin1}"], "not UTF-8 text"),
    "template render, binary": (["template", "render", "{binary}"], "not UTF-8 text"),
    "template check, directory": (["template", "check", "{directory}"], "Is a directory"),
    "template check, missing": (["template", "check", "{missing}"], "No such file"),
    "verify --at notadate": (["verify", "--cert", "{device}", "--ca", "{ca}", "--at", "notadate"], "--at"),
    "verify --cn-pattern [": (["verify", "--cert", "{device}", "--ca", "{ca}", "--cn-pattern", "["], "--cn-pattern"),
    "verify --ca fullchain": (["verify", "--cert", "{device}", "--ca", "{fullchain}"], "one certificate"),
    "verify --ca device": (["verify", "--cert", "{device}", "--ca", "{device}"], "not a CA certificate"),
    "verify --cert binary": (["verify", "--cert", "{binary}", "--ca", "{ca}"], "not a readable PEM"),
    "verify --max-validity-days 0": (
        ["verify", "--cert", "{device}", "--ca", "{ca}", "--max-validity-days", "0"],
        "--max-validity-days",
    ),
    "invoke, missing": (["invoke", "{missing}"], "No such file"),
    "invoke, directory": (["invoke", "{directory}"], "Is a directory"),
    "invoke, binary": (["invoke", "{binary}"], "not a JSON event"),
    "simulate --quota inf": (["simulate", "--quota", "inf"], "--quota"),
    "simulate --quota nan": (["simulate", "--quota", "nan"], "--quota"),
    "simulate --latency-ms -5": (["simulate", "--latency-ms", "-5"], "--latency-ms"),
    "simulate --invalid-fraction 2": (["simulate", "--invalid-fraction", "2"], "--invalid-fraction"),
    "simulate --timeout 0": (["simulate", "--timeout", "0"], "--timeout"),
    "simulate --devices 0": (["simulate", "--devices", "0"], "--devices"),
    "serve --port 70000": (["serve", "--port", "70000"], "--port"),
    "serve --api-port x": (["serve", "--api-port", "x"], "--api-port"),
    "serve --config missing": (["serve", "--config", "{missing}"], "does not exist"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_a_nonzero_exit(
    case: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv, expected = CASES[case]
    code, err = _run([part.format(**files) for part in argv], capsys)
    assert code != 0
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert expected in err
    assert err.startswith("jitr: ")


@pytest.mark.parametrize("option", ["--port", "--api-port"])
def test_serve_on_a_port_in_use_is_one_line(
    option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no cdk.json: the development CA and the server CA are made here
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        other = "--api-port" if option == "--port" else "--port"
        code, err = _run(["serve", option, port, other, "0"], capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if "development CA" not in line]  # the configuration's note
    assert len(lines) == 1, err
    assert port in lines[0]
    assert "in use" in lines[0]
