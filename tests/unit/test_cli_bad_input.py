"""The command line answers bad input with one line on standard error and a non-zero exit, never a traceback."""

from __future__ import annotations

import base64
import json
import re
import socket
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitr_config.model import KNOWN_KEYS
from jitr_tools import pki
from jitr_tools.cli import main
from jitr_tools.endpoint import serve
from jitr_tools.pki import revocations as pki_revocations
from tests.support import REPO


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
        "stack_not_object": tmp_path / "cdk-outputs.json",
        "device_dp": tmp_path / "device-with-crl-url.pem",
    }
    paths["device_dp"].write_text(pki.make_device(ca, "bad-input-dp", crl_urls=["http://crl.maker.example/ca.crl"]).pem)
    paths["stack_not_object"].write_text('{"Jitr": ["CaCertificateIds"]}')
    paths["ca"].write_text(ca.pem)
    paths["device"].write_text(device.pem)
    paths["fullchain"].write_text(device.pem + ca.pem)  # device first, then the CA: what servers ship
    paths["binary"].write_bytes(bytes(range(256)) * 4)
    paths["latin1"].write_bytes('{"Resources": {"t": "caf\xe9"}}'.encode("latin-1"))
    paths["directory"].mkdir()
    paths["devpki"] = tmp_path / "devpki"
    pki.development_ca(paths["devpki"])
    return paths


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


NOT_A_CRL_URL = "argument --crl-url: not an http(s):// or s3://bucket/key URL"
BAD_GRACE = "argument --crl-grace:"
CASES = {
    "template check, binary": (["template", "check", "{binary}"], "not UTF-8 text"),
    "template check, latin-1": (["template", "check", "{latin1}"], "not UTF-8 text"),
    "template render, binary": (["template", "render", "{binary}"], "not UTF-8 text"),
    "template check, directory": (["template", "check", "{directory}"], "Is a directory"),
    "template check, missing": (["template", "check", "{missing}"], "No such file"),
    "verify --at notadate": (["verify", "--cert", "{device}", "--ca", "{ca}", "--at", "notadate"], "--at"),
    "verify --cn-pattern [": (["verify", "--cert", "{device}", "--ca", "{ca}", "--cn-pattern", "["], "--cn-pattern"),
    "verify --ca fullchain": (["verify", "--cert", "{device}", "--ca", "{fullchain}"], "not a CA certificate"),
    "verify --root fullchain": (
        ["verify", "--cert", "{device}", "--ca", "{ca}", "--root", "{fullchain}"],
        "expected one certificate",
    ),
    "verify --ca device": (["verify", "--cert", "{device}", "--ca", "{device}"], "not a CA certificate"),
    "verify --cert binary": (["verify", "--cert", "{binary}", "--ca", "{ca}"], "not a readable PEM"),
    "verify --max-validity-days 0": (
        ["verify", "--cert", "{device}", "--ca", "{ca}", "--max-validity-days", "0"],
        "--max-validity-days",
    ),
    "verify --crl missing": (["verify", "--cert", "{device}", "--ca", "{ca}", "--crl", "{missing}"], "No such file"),
    "verify --crl directory": (
        ["verify", "--cert", "{device}", "--ca", "{ca}", "--crl", "{directory}"],
        "Is a directory",
    ),
    "verify --crl binary": (
        ["verify", "--cert", "{device}", "--ca", "{ca}", "--crl", "{binary}"],
        "the CRL cannot be decoded",
    ),
    "verify --crl a certificate": (
        ["verify", "--cert", "{device}", "--ca", "{ca}", "--crl", "{ca}"],
        "the CRL cannot be decoded",
    ),
    "verify --crl-url not a URL": (["verify", "--cert", "{device}", "--ca", "{ca}", "--crl-url", "crl"], NOT_A_CRL_URL),
    "verify --crl-url ftp": (
        ["verify", "--cert", "{device}", "--ca", "{ca}", "--crl-url", "ftp://crl.maker.example/ca.crl"],
        NOT_A_CRL_URL,
    ),
    "verify --crl-url with a password": (
        ["verify", "--cert", "{device}", "--ca", "{ca}", "--crl-url", "http://u:p@crl.maker.example/ca.crl"],
        NOT_A_CRL_URL,
    ),
    "verify --crl-url s3 without a key": (
        ["verify", "--cert", "{device}", "--ca", "{ca}", "--crl-url", "s3://bucket"],
        NOT_A_CRL_URL,
    ),
    "verify --crl-grace -1": (["verify", "--cert", "{device}", "--ca", "{ca}", "--crl-grace", "-1"], BAD_GRACE),
    "verify --crl-grace 1.5": (["verify", "--cert", "{device}", "--ca", "{ca}", "--crl-grace", "1.5"], BAD_GRACE),
    "verify --crl-grace of a year": (
        ["verify", "--cert", "{device}", "--ca", "{ca}", "--crl-grace", "31536000"],
        "argument --crl-grace: Input should be less than or equal to 604800",
    ),
    "verify --crl-from-certificate, none named": (
        ["verify", "--cert", "{device}", "--ca", "{ca}", "--crl-from-certificate"],
        "names no http(s) CRL distribution point",
    ),
    "verify --crl-from-certificate, host not allowed": (
        ["verify", "--cert", "{device_dp}", "--ca", "{ca}", "--crl-from-certificate", "--allow-host", "elsewhere"],
        "add --allow-host crl.maker.example",
    ),
    "verify --allow-host alone": (
        ["verify", "--cert", "{device_dp}", "--ca", "{ca}", "--allow-host", "crl.maker.example"],
        "--allow-host allows a host for --crl-from-certificate",
    ),
    "doctor --outputs, a stack that is not an object": (
        ["doctor", "--outputs", "{stack_not_object}"],
        "stack 'Jitr' is not an object",
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
    "serve --crl-port 70000": (["serve", "--crl-port", "70000"], "--crl-port: a port is 0 to 65535"),
    "serve --sync-seconds 0": (["serve", "--sync-seconds", "0"], "--sync-seconds: must be above 0"),
    "simulate --revoked -1": (["simulate", "--revoked", "-1"], "--revoked: must be at least 0"),
    "simulate --revoked more than the good devices": (
        ["simulate", "--devices", "4", "--invalid-fraction", "0.5", "--revoked", "3"],
        "more than the fleet's 2 good devices",
    ),
    "pki revoke --reason bogus": (["pki", "revoke", "{device}", "--reason", "bogus"], "--reason"),
    "pki revoke, another CA's device": (
        ["pki", "revoke", "{device}", "--dir", "{devpki}"],
        "not issued by the development CA",
    ),
    "pki revoke, no development CA": (["pki", "revoke", "{device}", "--dir", "{directory}"], "no development CA"),
    "pki revoke, missing": (["pki", "revoke", "{missing}", "--dir", "{devpki}"], "No such file"),
    "pki release, another CA's device": (
        ["pki", "release", "{device}", "--dir", "{devpki}"],
        "not issued by the development CA",
    ),
    "pki crl --next-update-hours 0": (["pki", "crl", "--next-update-hours", "0"], "--next-update-hours"),
    "pki crl --next-update-hours nan": (["pki", "crl", "--next-update-hours", "nan"], "--next-update-hours"),
    "pki crl, no development CA": (["pki", "crl", "--dir", "{directory}"], "no development CA"),
    "enroll import, binary": (["enroll", "import", "{binary}", "--product", "p"], "not UTF-8 text"),
    "enroll import, missing": (["enroll", "import", "{missing}", "--product", "p"], "No such file"),
    "enroll import, no product": (["enroll", "import", "{ca}"], "--product"),
    "enroll import, no table": (["enroll", "import", "{ca}", "--product", "p", "--by", "commonName"], "no commonName"),
    "enroll list, no table": (["enroll", "list", "--product", "p"], "name the enrollment table"),
    "enroll list, bad status": (["enroll", "list", "--product", "p", "--status", "ON"], "--status"),
    "enroll disable, empty product": (["enroll", "disable", "01", "--product", ""], "product name"),
    "enroll enable, bad queue": (
        ["enroll", "enable", "01", "--product", "p", "--table", "t", "--queue-url", "nope", "--by", "serialNumber"],
        "not an SQS queue URL",
    ),
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


@pytest.mark.parametrize("option", ["--port", "--api-port", "--crl-port"])
def test_serve_on_a_port_in_use_is_one_line(
    option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no cdk.json: the development CA and the server CA are made here
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        ports = {"--port": "0", "--api-port": "0", "--crl-port": "0", option: port}
        code, err = _run(["serve", *(part for item in ports.items() for part in item)], capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if "development CA" not in line]  # the configuration's note
    assert len(lines) == 1, err
    assert port in lines[0]
    assert "in use" in lines[0]


# -- every command's file inputs, fuzzed: JSON of the wrong shape, bytes that are not UTF-8, numbers too long to read,
# nesting too deep to read. `jitr policy test --policy` is tested with its evaluator.

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
NOT_OBJECTS = JSON.filter(lambda value: not isinstance(value, dict))
NOT_TEXT = JSON.filter(lambda value: not isinstance(value, str))
UNREADABLE = st.one_of(
    st.binary(max_size=40).map(lambda data: b"\xff" + data),  # never UTF-8
    st.just(b"[" * 3000 + b"]" * 3000),  # nested deeper than the JSON reader goes
    st.just(b'{"a": ' + b"9" * 5000 + b"}"),  # a number Python refuses to convert
    st.binary(max_size=40),
)


def _json_file(value: object) -> bytes:
    return json.dumps(value).encode()


OUTPUTS = st.one_of(
    NOT_OBJECTS,
    st.just({}),
    st.dictionaries(st.text(min_size=1, max_size=8), NOT_OBJECTS, min_size=1, max_size=2),
    st.builds(
        lambda key, bad, rest: {"Jitr": {**rest, key: bad}},
        st.text(max_size=8),
        NOT_TEXT,
        st.dictionaries(st.text(max_size=8), JSON, max_size=2),
    ),
).map(_json_file)

# a value no field of a registration event takes (so no generated event is sound, and none reaches AWS)
NEVER_A_FIELD = st.one_of(
    st.none(),
    st.lists(SCALARS, max_size=2),
    st.dictionaries(st.text(max_size=4), SCALARS, max_size=2),
    st.floats(allow_nan=False).filter(lambda number: not number.is_integer()),
)
EVENT_FIELDS = {
    "certificateId": "0f" * 32,
    "caCertificateId": "ab" * 32,
    "timestamp": 1767225600000,
    "certificateStatus": "PENDING_ACTIVATION",
    "awsAccountId": "123456789012",
}
EVENTS = st.one_of(
    NOT_OBJECTS,
    # a registration event with a field missing, or one field of the wrong type
    st.sampled_from(sorted(EVENT_FIELDS)).map(lambda gone: {k: v for k, v in EVENT_FIELDS.items() if k != gone}),
    st.builds(
        lambda key, bad: {**EVENT_FIELDS, key: bad},
        st.sampled_from(sorted(EVENT_FIELDS)),
        NEVER_A_FIELD,
    ),
    # an SQS batch of the wrong shape
    st.builds(
        lambda records: {"Records": records}, NOT_OBJECTS.filter(lambda v: not isinstance(v, list)) | st.just([])
    ),
    st.builds(
        lambda records: {"Records": records},
        st.lists(
            NOT_OBJECTS | st.dictionaries(st.sampled_from(["messageId", "body"]), NOT_TEXT), min_size=1, max_size=2
        ),
    ),
).map(_json_file)

TEMPLATES = st.one_of(
    NOT_OBJECTS,
    st.builds(lambda bad: {"Parameters": bad, "Resources": {}}, NOT_OBJECTS),
    st.builds(lambda bad: {"Resources": bad}, NOT_OBJECTS),
    st.builds(lambda bad: {"Resources": {"thing": bad}}, JSON),
    st.builds(lambda bad: {"Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": bad}}}, JSON),
    st.builds(lambda bad: {"Parameters": {"p": bad}, "Resources": {"thing": {"Type": "AWS::IoT::Thing"}}}, JSON),
).map(_json_file)

PEM_BLOCK = b"-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n"
PEMS = st.one_of(
    st.binary(max_size=60),
    st.binary(max_size=60).map(lambda data: PEM_BLOCK % base64.b64encode(data)),  # a PEM block that is not DER
    st.text(max_size=60).map(lambda text: (PEM_BLOCK % text.encode()).replace(b"\n", b"")),
)
CRL_BLOCK = b"-----BEGIN X509 CRL-----\n%s\n-----END X509 CRL-----\n"
CRLS = st.one_of(
    st.binary(max_size=60),
    st.binary(max_size=60).map(lambda data: CRL_BLOCK % base64.b64encode(data)),  # a PEM block that is not DER
    st.binary(max_size=60).map(lambda data: b"\x30\x82" + data),  # a DER SEQUENCE that ends too soon
)
KEYS = st.one_of(
    st.binary(max_size=60),
    st.binary(max_size=60).map(
        lambda data: b"-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n" % base64.b64encode(data)
    ),
)

# Configurations are always wrong: a known key of the wrong type (never `developmentPki`, which names a folder to
# write in), an unknown key, or not an object; so `jitr serve` stops before it starts any server.
WRONG_TYPED = st.sampled_from(sorted(KNOWN_KEYS - {"developmentPki"})).flatmap(
    lambda key: st.builds(lambda bad: {key: bad, "decisionRetentionDays": 0}, NOT_TEXT)
)
CONFIGS = st.one_of(
    NOT_OBJECTS,
    WRONG_TYPED,
    st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda k: k not in KNOWN_KEYS), JSON, min_size=1, max_size=2
    ),
).map(_json_file)

# the development PKI's revocation list, never one jitr wrote: not an object, or an entry that is not an entry
REVOCATIONS = st.one_of(
    NOT_OBJECTS,
    st.builds(lambda bad: {"revoked": [bad]}, JSON),
    st.builds(lambda bad: {"revoked": bad}, st.text(min_size=1, max_size=8) | st.integers() | st.booleans()),
).map(_json_file)

# manufacturing manifests: CSV under an identity header with any rows, or JSON of any shape
MANIFESTS = st.one_of(
    NOT_OBJECTS.map(_json_file),
    st.lists(JSON, max_size=3).map(_json_file),
    st.builds(
        lambda header, rows: (header + "\n" + "\n".join(rows)).encode(),
        st.sampled_from(["serialNumber", "commonName,batch", "publicKeySha256", "serial", ""]),
        st.lists(st.text(max_size=12), max_size=4),
    ),
)

FILE_INPUTS = {
    "enroll import FILE": (["enroll", "import", "{file}", "--product", "sensor"], MANIFESTS),
    "doctor --outputs": (["doctor", "--outputs", "{file}"], OUTPUTS),
    "invoke EVENT": (["invoke", "{file}"], EVENTS),
    "template check": (["template", "check", "{file}"], TEMPLATES),
    "template render": (["template", "render", "{file}"], TEMPLATES),
    "template render --cert": (["template", "render", "{template}", "--cert", "{file}"], PEMS),
    "verify --cert": (["verify", "--cert", "{file}", "--ca", "{ca}"], PEMS),
    "verify --ca": (["verify", "--cert", "{device}", "--ca", "{file}"], PEMS),
    "verify --intermediate": (["verify", "--cert", "{device}", "--ca", "{ca}", "--intermediate", "{file}"], PEMS),
    "verify --root": (["verify", "--cert", "{device}", "--ca", "{ca}", "--root", "{file}"], PEMS),
    "verify --crl": (["verify", "--cert", "{device}", "--ca", "{ca}", "--crl", "{file}"], CRLS),
    "pki verification --ca": (
        ["pki", "verification", "--ca", "{file}", "--ca-key", "{key}", "--registration-code", "0" * 64],
        PEMS,
    ),
    "pki verification --ca-key": (
        ["pki", "verification", "--ca", "{ca}", "--ca-key", "{file}", "--registration-code", "0" * 64],
        KEYS,
    ),
    "serve --config": (["serve", "--config", "{file}"], CONFIGS),
    "pki ca --dir (its CA certificate)": (["pki", "ca", "--dir", "{pem_pki}"], PEMS),
    "pki devices --dir (its CA key)": (["pki", "devices", "--count", "1", "--dir", "{key_pki}"], KEYS),
    "pki revoke CERT.pem": (["pki", "revoke", "{file}", "--dir", "{list_pki}"], PEMS),
    "pki release CERT.pem": (["pki", "release", "{file}", "--dir", "{list_pki}"], PEMS),
    "pki revoke --dir (its revocation list)": (["pki", "revoke", "{dev_device}", "--dir", "{list_pki}"], REVOCATIONS),
    "pki crl --dir (its revocation list)": (["pki", "crl", "--dir", "{list_pki}"], REVOCATIONS),
}
# where the fuzzed bytes go, when not in a file of their own: the development PKI's certificate, or its key
FUZZED_FILE = {
    "pki ca --dir (its CA certificate)": ("pem_pki", f"{pki.ISSUING_STEM}.pem"),
    "pki devices --dir (its CA key)": ("key_pki", f"{pki.ISSUING_STEM}.key"),
    "pki revoke --dir (its revocation list)": ("list_pki", pki_revocations.REVOCATIONS_FILE),
    "pki crl --dir (its revocation list)": ("list_pki", pki_revocations.REVOCATIONS_FILE),
}


@pytest.fixture(scope="module")
def known_good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Well-formed inputs to go beside the fuzzed one, and a folder to run in (no cdk.json; `jitr serve` keeps its
    development CA there)."""
    folder = tmp_path_factory.mktemp("bad-input")
    ca = pki.make_ca("bad input CA")
    paths = {"folder": folder, "ca": folder / "ca.pem", "key": folder / "ca.key", "device": folder / "device.pem"}
    paths["ca"].write_text(ca.pem)
    paths["key"].write_bytes(ca.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    paths["device"].write_text(pki.make_device(ca, "bad-input-2").pem)
    paths["template"] = REPO / "templates" / "jitr-device.json"
    for name in ("pem_pki", "key_pki", "list_pki"):
        paths[name] = folder / name
        pki.development_ca(paths[name])
    paths["dev_device"] = pki.write_issued(
        pki.make_device(pki.development_ca(paths["list_pki"])[0], "bad-input-3"), folder, "dev-device"
    )
    return paths


def _template_problem_lines(err: str) -> bool:
    """`jitr template` lists every problem of a template, one line each."""
    return all(re.match(r"(ERROR|WARNING) \$.*: .+ \[[A-Z_]+\]$", line) for line in err.splitlines())


@pytest.mark.parametrize("case", sorted(FILE_INPUTS))
def test_malformed_files_are_one_line_and_a_nonzero_exit(
    case: str, known_good: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, contents = FILE_INPUTS[case]
    monkeypatch.chdir(known_good["folder"])
    # a configuration `jitr serve` took would start a service that runs until interrupted: fail at once instead
    monkeypatch.setattr(serve, "serve_until_interrupted", lambda: pytest.fail(f"jitr serve started ({case})"))
    folder, name = FUZZED_FILE.get(case, ("folder", "fuzzed"))
    path = known_good[folder] / name

    @given(contents | UNREADABLE)
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    def check(data: bytes) -> None:
        path.write_bytes(data)
        code, err = _run([part.format(file=path, **known_good) for part in argv], capsys)
        assert code != 0, (case, data[:200])
        assert "Traceback" not in err
        assert "unrecognized arguments" not in err  # the command read the fuzzed file
        if case.startswith("template") and not case.endswith("--cert") and code == 1:
            assert err
            assert _template_problem_lines(err), err
        elif case.startswith("enroll") and code == 1:  # a refused manifest: a line, then one per malformed row
            assert err.startswith("jitr: ")
            assert all(line.startswith("  ") for line in err.splitlines()[1:]), err
        else:
            assert len(err.splitlines()) == 1, (case, data[:200], err)
            assert err.startswith("jitr: ")

    check()
