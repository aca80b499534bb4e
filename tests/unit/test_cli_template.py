"""`jitr template check` and `jitr template render`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jitr.certificates import certificate_id
from jitr_tools import pki
from jitr_tools.cli import main
from tests.support import DATA, REPO


def test_check_accepts_the_documentation_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("intrinsics.json", "jitr-device.json"):
        assert main(["template", "check", str(DATA / name)]) == 0
    assert "OK" in capsys.readouterr().out


def test_check_refuses_a_broken_template_with_named_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(
        json.dumps(
            {
                "Resources": {
                    "t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Fn::If": ["c", "a", "b"]}}}
                },
                "Conditions": {},
            }
        )
    )
    assert main(["template", "check", str(broken), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert {p["code"] for p in report["problems"]} == {"UNSUPPORTED_INTRINSIC", "UNSUPPORTED_SECTION"}
    assert any("Fn::If" in p["message"] for p in report["problems"])


def test_check_jitr_flags_the_status_override(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["template", "check", str(DATA / "jitr-device.json"), "--jitr"]) == 1
    assert "JITR_STATUS_OVERRIDE" in capsys.readouterr().err


def test_render_with_a_certificate(tmp_path: Path, capsys: pytest.CaptureFixture[str], issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "sensor-7", serial_number="SN7")
    pem = tmp_path / "device.pem"
    pem.write_text(device.pem)
    code = main(["template", "render", str(REPO / "templates" / "jitr-device.json"), "--cert", str(pem), "--json"])
    assert code == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert plan["resources"][0]["properties"]["ThingName"] == "sensor-7"
    assert plan["parameters"]["AWS::IoT::Certificate::Id"] == certificate_id(device.certificate)


def test_render_refuses_a_common_name_that_is_not_a_thing_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], issuing_ca: pki.Issued
) -> None:
    pem = tmp_path / "device.pem"
    pem.write_text(pki.make_device(issuing_ca, "dev.example.com").pem)
    assert main(["template", "render", str(REPO / "templates" / "jitr-device.json"), "--cert", str(pem)]) == 1
    assert "thing name 'dev.example.com' is not valid" in capsys.readouterr().err


def test_render_with_params_and_bad_param_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "template",
        "render",
        str(DATA / "intrinsics.json"),
        "--param",
        "SerialNumber=1",
        "--param",
        "Model=M",
        "--param",
        f"CertificateId={'a' * 64}",
    ]
    assert main(args) == 0
    assert '"M-1"' in capsys.readouterr().out
    assert main(["template", "render", str(DATA / "intrinsics.json"), "--param", "oops"]) == 2


def test_unreadable_certificate_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    assert main(["template", "render", str(DATA / "intrinsics.json"), "--cert", str(bad)]) == 2
    assert "not a readable PEM" in capsys.readouterr().err


# -- jitr's certificate facts ---

SAN_DNS = "Jitr::Certificate::SubjectAlternativeName::DNS"
BATCH = "Jitr::Certificate::Extension::Batch"
BATCH_OID = "1.3.6.1.4.1.55555.1.1"


def facts_template(tmp_path: Path, policy: dict[str, object] | None = None) -> Path:
    """The project's template, naming the thing from the first DNS subjectAltName, with the batch as an attribute."""
    document = json.loads((REPO / "templates" / "jitr-device.json").read_text())
    document["Parameters"] |= {SAN_DNS: {"Type": "String"}, BATCH: {"Type": "String"}}
    document["Resources"]["thing"]["Properties"] = {
        "ThingName": {"Fn::Select": [0, {"Fn::Split": [".", {"Ref": SAN_DNS}]}]},
        "AttributePayload": {"batch": {"Ref": BATCH}},
    }
    if policy is not None:
        document["Resources"]["policy"]["Properties"] = policy
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(document))
    return path


def batch_device(issuing_ca: pki.Issued, tmp_path: Path, value: bytes) -> Path:
    from cryptography import x509

    device = pki.make_device(
        issuing_ca,
        "sensor-7",
        san=["sensor-7.plant-7.example", "sensor-7.example"],
        extensions=[x509.UnrecognizedExtension(x509.ObjectIdentifier(BATCH_OID), value)],
    )
    pem = tmp_path / "device.pem"
    pem.write_text(device.pem)
    return pem


def test_render_with_a_certificate_shows_its_facts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], issuing_ca: pki.Issued
) -> None:
    pem = batch_device(issuing_ca, tmp_path, pki.der_element(0x0C, b"B-2031-07"))
    args = [
        "template",
        "render",
        str(facts_template(tmp_path)),
        "--cert",
        str(pem),
        "--extension",
        f"Batch={BATCH_OID}",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith('certificate facts:\n  AWS::IoT::Certificate::CommonName: "sensor-7"\n')
    assert f'  {SAN_DNS}::2: "sensor-7.example"\n' in out
    assert f'  {BATCH}: "B-2031-07"\n' in out
    assert '  ThingName: "sensor-7"\n' in out
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["certificate"]["facts"][SAN_DNS] == "sensor-7.plant-7.example"
    assert "Jitr::Certificate::PublicKey::SHA256" in report["certificate"]["facts"]
    assert report["plan"]["resources"][0]["properties"]["AttributePayload"] == {"batch": "B-2031-07"}


def test_render_refuses_an_extension_the_template_reads_that_is_not_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], issuing_ca: pki.Issued
) -> None:
    pem = batch_device(issuing_ca, tmp_path, pki.der_element(0x02, b"\x07"))
    args = [
        "template",
        "render",
        str(facts_template(tmp_path)),
        "--cert",
        str(pem),
        "--extension",
        f"Batch={BATCH_OID}",
    ]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert f"  {BATCH}: unreadable: the certificate's extension {BATCH_OID} (Batch) holds an INTEGER" in captured.out
    assert "MISSING_CERTIFICATE_FIELD" in captured.err


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--extension", "Batch"], "jitr: --extension takes NAME=VALUE, got 'Batch'"),
        (["--extension", "Batch=one.two"], "jitr: --extension: extension 'Batch': 'one.two' is not a dotted object"),
        (["--extension", "has space=1.2.3"], "jitr: --extension: extension name 'has space' must match"),
    ],
)
def test_render_refuses_a_bad_extension_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], issuing_ca: pki.Issued, extra: list[str], said: str
) -> None:
    pem = batch_device(issuing_ca, tmp_path, pki.der_element(0x0C, b"B"))
    assert main(["template", "render", str(facts_template(tmp_path)), "--cert", str(pem), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(said)
    assert err.count("\n") == 1


def test_render_wants_a_certificate_for_an_extension(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["template", "render", str(facts_template(tmp_path)), "--extension", f"Batch={BATCH_OID}"]) == 2
    assert "add --cert" in capsys.readouterr().err


def test_check_jitr_refuses_a_san_in_a_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = {"PolicyName": {"Fn::Join": ["-", ["device", {"Ref": SAN_DNS}]]}}
    path = facts_template(tmp_path, policy)
    assert main(["template", "check", str(path)]) == 0  # AWS would run it
    assert main(["template", "check", str(path), "--jitr"]) == 1
    err = capsys.readouterr().err
    assert "$.Resources.policy.Properties.PolicyName" in err
    assert "JITR_CERTIFICATE_FIELD_IN_POLICY" in err
