"""The provisioning-template engine: the documentation examples, every error path, and properties."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jitr.templates import TemplateError, check_template, parse_template, render_template
from jitr.templates.limits import TEMPLATE_BODY_MAX_CHARS
from tests.support import data

CERT_ID = "ab" * 32


def codes(body: Any, **kwargs: Any) -> list[str]:
    return [p.code for p in check_template(body, **kwargs) if p.severity == "error"]


def template(resources: dict[str, Any], parameters: dict[str, Any] | None = None, **sections: Any) -> dict[str, Any]:
    return {"Parameters": parameters or {}, "Resources": resources, **sections}


def thing(**props: Any) -> dict[str, Any]:
    return {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "t1", **props}}


# -- the documentation examples ---


def test_intrinsics_example_renders_every_documented_function() -> None:
    plan = render_template(
        data("intrinsics.json"), {"SerialNumber": "0042", "Model": "X1_pro", "CertificateId": CERT_ID}
    )

    assert plan.thing is not None
    assert plan.thing.properties == {
        "ThingName": "X1_pro-0042",
        "AttributePayload": {"family": "X1", "label": "X1_pro@lab"},
        "ThingGroups": ["lab-devices"],
    }
    assert plan.parameters["Site"] == "lab"  # the Default applied
    assert plan.certificate is not None
    assert plan.certificate.properties == {"CertificateId": CERT_ID, "Status": "ACTIVE"}
    assert json.loads(plan.policies[0].properties["PolicyDocument"])["Version"] == "2012-10-17"


def test_intrinsics_example_with_other_site_uses_the_mapping() -> None:
    plan = render_template(
        data("intrinsics.json"), {"SerialNumber": "1", "Model": "M", "CertificateId": CERT_ID, "Site": "plant"}
    )
    assert plan.thing is not None
    assert plan.thing.properties["ThingGroups"] == ["plant-devices"]


def test_intrinsics_example_with_unknown_site_names_the_missing_mapping_key() -> None:
    with pytest.raises(TemplateError) as caught:
        render_template(
            data("intrinsics.json"), {"SerialNumber": "1", "Model": "M", "CertificateId": CERT_ID, "Site": "moon"}
        )
    assert caught.value.codes == ("MAPPING_KEY_NOT_FOUND",)
    assert "'moon'" in str(caught.value)


def test_jitr_device_example_is_valid_but_its_status_override_fails_the_jitr_rules() -> None:
    assert codes(data("jitr-device.json")) == []
    problems = check_template(data("jitr-device.json"), for_jitr=True)
    assert [p.code for p in problems] == ["JITR_STATUS_OVERRIDE"]
    assert problems[0].path == "$.Resources.certificate.OverrideSettings.Status"


def test_jitr_device_example_renders_from_certificate_parameters() -> None:
    plan = render_template(
        data("jitr-device.json"),
        {
            "AWS::IoT::Certificate::CommonName": "dev-1",
            "AWS::IoT::Certificate::SerialNumber": "S1",
            "AWS::IoT::Certificate::Id": CERT_ID,
        },
    )
    assert plan.thing is not None
    assert plan.thing.properties["AttributePayload"] == {"serial": "S1", "maker": "unknown-org"}
    assert plan.thing.overrides == {"AttributePayload": "MERGE", "ThingGroups": "MERGE"}
    assert plan.certificate is not None
    assert plan.certificate.overrides == {"Status": "DO_NOTHING"}


def test_project_template_passes_the_jitr_rules() -> None:
    from tests.support import REPO

    assert check_template((REPO / "templates" / "jitr-device.json").read_text(), for_jitr=True) == []


def test_seed_register_thing_example_checks_and_normalises_status() -> None:
    seed = json.loads(data("register-thing-seed.json"))
    assert codes(seed["templateBody"]) == []
    plan = render_template(seed["templateBody"], {**seed["parameters"], "AWS::IoT::Certificate::Id": CERT_ID})
    assert plan.certificate is not None
    assert plan.certificate.properties["Status"] == "ACTIVE"  # the example writes "Active"
    assert plan.thing is not None
    assert plan.thing.overrides == {
        "AttributePayload": "MERGE",
        "ThingGroups": "DO_NOTHING",
        "ThingTypeName": "REPLACE",
    }


def test_seed_example_certificate_id_placeholder_is_refused() -> None:
    seed = json.loads(data("register-thing-seed.json"))
    with pytest.raises(TemplateError) as caught:
        render_template(seed["templateBody"], seed["parameters"])
    assert caught.value.problems[0].path == "$.Resources.certificate.Properties.CertificateId"
    assert "64 hexadecimal" in caught.value.problems[0].message


# -- static errors, each with its path ------------------------------------------------------------------------------

CERT = {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "Id"}}}
ID_PARAM = {"Id": {"Type": "String"}}


@pytest.mark.parametrize(
    ("body", "code", "path"),
    [
        ("{not json", "INVALID_JSON", "$"),
        ("[]", "NOT_AN_OBJECT", "$"),
        ({"Resources": {}}, "NO_RESOURCES", "$.Resources"),
        (template({"t": thing()}, Conditions={}), "UNSUPPORTED_SECTION", "$.Conditions"),
        (template({"t": thing()}, Extra={}), "UNKNOWN_SECTION", "$.Extra"),
        (template({"t": thing()}, {"P": {"Type": "Number"}}), "BAD_PARAMETER", "$.Parameters.P.Type"),
        (template({"t": thing()}, {"P": {"Type": "String", "Default": 3}}), "BAD_PARAMETER", "$.Parameters.P.Default"),
        (template({"t": {"Type": "AWS::IoT::Widget"}}), "UNKNOWN_RESOURCE_TYPE", "$.Resources.t.Type"),
        (template({"t": thing(Colour="red")}), "UNKNOWN_PROPERTY", "$.Resources.t.Properties.Colour"),
        (
            template({"t": {"Type": "AWS::IoT::Thing", "Properties": {}}}),
            "MISSING_PROPERTY",
            "$.Resources.t.Properties.ThingName",
        ),
        (
            template({"t": thing(ThingName={"Ref": "Nope"})}),
            "UNDECLARED_PARAMETER",
            "$.Resources.t.Properties.ThingName.Ref",
        ),
        (
            template({"t": thing(ThingName={"Fn::If": ["c", "a", "b"]})}),
            "UNSUPPORTED_INTRINSIC",
            "$.Resources.t.Properties.ThingName['Fn::If']",
        ),
        (
            template({"t": thing(ThingName={"Fn::GetAtt": ["a", "b"]})}),
            "UNSUPPORTED_INTRINSIC",
            "$.Resources.t.Properties.ThingName['Fn::GetAtt']",
        ),
        (
            template({"t": thing(ThingName={"Fn::Join": "-"})}),
            "BAD_INTRINSIC",
            "$.Resources.t.Properties.ThingName['Fn::Join']",
        ),
        (
            template({"t": thing(ThingName={"Fn::Split": ["-", "a-b"]})}),
            "TYPE_MISMATCH",
            "$.Resources.t.Properties.ThingName",
        ),
        (
            template({"t": thing(ThingName={"Fn::Select": [5, ["a"]]})}),
            "SELECT_OUT_OF_RANGE",
            "$.Resources.t.Properties.ThingName['Fn::Select']",
        ),
        (
            template({"t": thing(ThingName={"Fn::FindInMap": ["M", "a", "b"]})}),
            "UNKNOWN_MAPPING",
            "$.Resources.t.Properties.ThingName['Fn::FindInMap'][0]",
        ),
        (
            template({"t": thing(ThingName={"Fn::Sub": "${Nope}"})}),
            "UNDECLARED_PARAMETER",
            "$.Resources.t.Properties.ThingName['Fn::Sub']",
        ),
        (template({"t": thing(ThingName="dev.example.com")}), "INVALID_NAME", "$.Resources.t.Properties.ThingName"),
        (
            template({"t": thing(AttributePayload={"bad name": "v"})}),
            "INVALID_NAME",
            "$.Resources.t.Properties.AttributePayload['bad name']",
        ),
        (
            template({"t": thing(AttributePayload={"a": "has space"})}),
            "INVALID_VALUE",
            "$.Resources.t.Properties.AttributePayload.a",
        ),
        (
            template({"t": thing(AttributePayload={"a": "1", "b": "2", "c": "3", "d": "4"})}),
            "TOO_MANY_ATTRIBUTES",
            "$.Resources.t.Properties.AttributePayload",
        ),
        (
            template({"t": thing(ThingGroups=[f"g{i}" for i in range(11)])}),
            "TOO_MANY_THING_GROUPS",
            "$.Resources.t.Properties.ThingGroups",
        ),
        (template({"t": thing(ThingGroups=["bad group"])}), "INVALID_NAME", "$.Resources.t.Properties.ThingGroups[0]"),
        (
            template({"t": {**thing(), "OverrideSettings": {"ThingTypeName": "MERGE"}}}),
            "BAD_OVERRIDE",
            "$.Resources.t.OverrideSettings.ThingTypeName",
        ),
        (
            template({"t": {**thing(), "OverrideSettings": {"ThingName": "REPLACE"}}}),
            "BAD_OVERRIDE",
            "$.Resources.t.OverrideSettings.ThingName",
        ),
        (
            template({"c": {**CERT, "OverrideSettings": {"Status": "MERGE"}}}, ID_PARAM),
            "BAD_OVERRIDE",
            "$.Resources.c.OverrideSettings.Status",
        ),
        (
            template(
                {
                    "p": {
                        "Type": "AWS::IoT::Policy",
                        "Properties": {"PolicyName": "p"},
                        "OverrideSettings": {"PolicyName": "REPLACE"},
                    }
                }
            ),
            "BAD_OVERRIDE",
            "$.Resources.p.OverrideSettings",
        ),
        (
            template({"c": {"Type": "AWS::IoT::Certificate", "Properties": {}}}),
            "CERTIFICATE_SOURCE",
            "$.Resources.c.Properties",
        ),
        (
            template(
                {
                    "c": {
                        "Type": "AWS::IoT::Certificate",
                        "Properties": {"CertificateId": CERT_ID, "CertificatePem": "x"},
                    }
                }
            ),
            "CERTIFICATE_SOURCE",
            "$.Resources.c.Properties",
        ),
        (
            template(
                {
                    "c": {
                        "Type": "AWS::IoT::Certificate",
                        "Properties": {"CertificateId": CERT_ID, "CACertificatePem": "x"},
                    }
                }
            ),
            "CERTIFICATE_SOURCE",
            "$.Resources.c.Properties.CACertificatePem",
        ),
        (
            template(
                {
                    "c": {
                        "Type": "AWS::IoT::Certificate",
                        "Properties": {"CertificateId": CERT_ID, "Status": "PENDING_ACTIVATION"},
                    }
                }
            ),
            "BAD_STATUS",
            "$.Resources.c.Properties.Status",
        ),
        (
            template({"p": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "p", "PolicyDocument": "{}"}}}),
            "POLICY_SOURCE",
            "$.Resources.p.Properties",
        ),
        (template({"p": {"Type": "AWS::IoT::Policy", "Properties": {}}}), "POLICY_SOURCE", "$.Resources.p.Properties"),
        (
            template({"p": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": "{oops"}}}),
            "BAD_POLICY_DOCUMENT",
            "$.Resources.p.Properties.PolicyDocument",
        ),
        (template({"a": thing(), "b": thing()}), "TOO_MANY_RESOURCES", "$.Resources"),
    ],
)
def test_static_errors_are_named_with_their_path(body: Any, code: str, path: str) -> None:
    problems = [p for p in check_template(body) if p.severity == "error"]
    assert (code, path) in [(p.code, p.path) for p in problems], problems


def test_oversized_template_is_refused_before_parsing() -> None:
    body = json.dumps(template({"t": thing(AttributePayload={"a": "x" * TEMPLATE_BODY_MAX_CHARS})}))
    assert codes(body) == ["TEMPLATE_TOO_LARGE"]


def test_every_problem_is_reported_in_one_pass() -> None:
    body = template({"t": thing(ThingName="a b", Colour="red", ThingGroups=["x y"])}, Conditions={})
    assert sorted(codes(body)) == ["INVALID_NAME", "INVALID_NAME", "UNKNOWN_PROPERTY", "UNSUPPORTED_SECTION"]


def test_parse_template_raises_with_every_error() -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(template({"t": thing(ThingName="a b")}, Conditions={}))
    assert set(caught.value.codes) == {"INVALID_NAME", "UNSUPPORTED_SECTION"}


# -- rendering ---


def test_missing_parameter_is_named() -> None:
    body = template({"t": thing(ThingName={"Ref": "Name"})}, {"Name": {"Type": "String"}})
    with pytest.raises(TemplateError) as caught:
        render_template(body, {})
    assert caught.value.codes == ("MISSING_PARAMETER",)
    assert "'Name'" in str(caught.value)


def test_resolved_common_name_with_a_dot_is_not_a_thing_name() -> None:
    body = template({"t": thing(ThingName={"Ref": "CN"})}, {"CN": {"Type": "String"}})
    with pytest.raises(TemplateError) as caught:
        render_template(body, {"CN": "dev.example.com"})
    assert caught.value.codes == ("INVALID_NAME",)
    assert "thing name 'dev.example.com'" in str(caught.value)


def test_oversized_parameter_value_is_refused() -> None:
    body = template({"t": thing(ThingName={"Ref": "CN"})}, {"CN": {"Type": "String"}})
    with pytest.raises(TemplateError) as caught:
        render_template(body, {"CN": "a" * 4097})
    assert "PARAMETER_TOO_LONG" in caught.value.codes


def test_sub_with_variable_map_and_escape() -> None:
    body = template(
        {
            "t": thing(
                AttributePayload={"x": {"Fn::Sub": ["${A}-${B}", {"B": {"Ref": "P"}}]}, "y": {"Fn::Sub": "${!A}"}}
            )
        },
        {"A": {"Type": "String"}, "P": {"Type": "String"}},
    )
    with pytest.raises(TemplateError):  # "${A}" is not a valid attribute value: '$', '{' and '}' are not allowed
        render_template(body, {"A": "1", "P": "2"})
    body["Resources"]["t"]["Properties"]["AttributePayload"].pop("y")
    plan = render_template(body, {"A": "1", "P": "2"})
    assert plan.thing is not None
    assert plan.thing.properties["AttributePayload"] == {"x": "1-2"}


def test_select_accepts_a_string_index_from_a_parameter() -> None:
    body = template(
        {"t": thing(ThingName={"Fn::Select": [{"Ref": "I"}, {"Fn::Split": [",", "a,b,c"]}]})}, {"I": {"Type": "String"}}
    )
    plan = render_template(body, {"I": "2"})
    assert plan.thing is not None
    assert plan.thing.properties["ThingName"] == "c"


def test_thing_groups_may_come_from_split() -> None:
    body = template({"t": thing(ThingGroups={"Fn::Split": [",", {"Ref": "G"}]})}, {"G": {"Type": "String"}})
    plan = render_template(body, {"G": "a,b"})
    assert plan.thing is not None
    assert plan.thing.properties["ThingGroups"] == ["a", "b"]


# -- properties ---

NAME_CHARS = string.ascii_letters + string.digits + ":_-"
valid_names = st.text(alphabet=NAME_CHARS, min_size=1, max_size=128)


@given(valid_names)
def test_any_valid_thing_name_renders_unchanged(name: str) -> None:
    body = template({"t": thing(ThingName={"Ref": "N"})}, {"N": {"Type": "String"}})
    plan = render_template(body, {"N": name})
    assert plan.thing is not None
    assert plan.thing.properties["ThingName"] == name


@given(st.text(min_size=1, max_size=40).filter(lambda s: any(c not in NAME_CHARS for c in s)))
def test_any_name_with_a_foreign_character_is_refused(name: str) -> None:
    body = template({"t": thing(ThingName={"Ref": "N"})}, {"N": {"Type": "String"}})
    with pytest.raises(TemplateError) as caught:
        render_template(body, {"N": name})
    assert caught.value.codes == ("INVALID_NAME",)


@given(
    st.lists(st.text(alphabet=NAME_CHARS.replace("-", ""), min_size=1, max_size=8), min_size=1, max_size=6), st.data()
)
def test_select_of_split_of_join_is_the_original_part(parts: list[str], draw: st.DataObject) -> None:
    index = draw.draw(st.integers(min_value=0, max_value=len(parts) - 1))
    joined = {"Fn::Join": ["-", [{"Ref": f"P{i}"} for i in range(len(parts))]]}
    body = template(
        {"t": thing(ThingName={"Fn::Select": [index, {"Fn::Split": ["-", joined]}]})},
        {f"P{i}": {"Type": "String"} for i in range(len(parts))},
    )
    plan = render_template(body, {f"P{i}": p for i, p in enumerate(parts)})
    assert plan.thing is not None
    assert plan.thing.properties["ThingName"] == parts[index]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "Parameters",
                    "Resources",
                    "Type",
                    "Properties",
                    "Ref",
                    "Fn::Join",
                    "Fn::Sub",
                    "Fn::If",
                    "ThingName",
                    "AWS::IoT::Thing",
                    "OverrideSettings",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(json_values)
def test_check_never_crashes_and_render_agrees_with_check(document: Any) -> None:
    problems = check_template(json.dumps(document))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        with pytest.raises(TemplateError):
            parse_template(json.dumps(document))
    else:
        parse_template(json.dumps(document))


# -- jitr's certificate facts (Jitr::Certificate::*) ---

SAN_DNS = "Jitr::Certificate::SubjectAlternativeName::DNS"
POLICY_PREFIX = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "'


def jitr_template(policy: dict[str, Any], *facts: str) -> dict[str, Any]:
    """A JITR template naming its thing from the first DNS subjectAltName, with `policy` and `facts` declared."""
    return template(
        {
            "thing": thing(ThingName={"Ref": SAN_DNS}),
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": policy},
        },
        {name: {"Type": "String"} for name in ("AWS::IoT::Certificate::Id", SAN_DNS, *facts)},
    )


FACT_LEAKS = {
    "DNS in Fn::Sub": (
        {"PolicyDocument": {"Fn::Sub": POLICY_PREFIX + "client/${" + SAN_DNS + "}" + '"}]}'}},
        SAN_DNS,
    ),
    "second URI in Fn::Join": (
        {
            "PolicyDocument": {
                "Fn::Join": ["", [POLICY_PREFIX, {"Ref": "Jitr::Certificate::SubjectAlternativeName::URI::2"}, '"}]}']]
            }
        },
        "Jitr::Certificate::SubjectAlternativeName::URI::2",
    ),
    "extension as PolicyName": (
        {"PolicyName": {"Ref": "Jitr::Certificate::Extension::Batch"}},
        "Jitr::Certificate::Extension::Batch",
    ),
    "notAfter split": (
        {"PolicyName": {"Fn::Select": [0, {"Fn::Split": ["T", {"Ref": "Jitr::Certificate::NotAfter"}]}]}},
        "Jitr::Certificate::NotAfter",
    ),
}


@pytest.mark.parametrize("how", sorted(FACT_LEAKS))
def test_a_jitr_fact_reaching_a_policy_is_refused_for_jitr(how: str) -> None:
    policy, fact = FACT_LEAKS[how]
    document = jitr_template(policy, fact)
    assert codes(document) == []  # AWS would run it...
    problems = check_template(document, for_jitr=True)  # ...jitr refuses it
    assert [p.code for p in problems] == ["JITR_CERTIFICATE_FIELD_IN_POLICY"], problems
    assert fact in problems[0].message
    assert problems[0].path.startswith("$.Resources.policy.Properties.Policy")


def test_jitr_facts_in_names_and_attributes_pass_the_jitr_rules() -> None:
    document = jitr_template({"PolicyName": "jitr-device"}, "Jitr::Certificate::Extension::Batch")
    document["Resources"]["thing"]["Properties"]["AttributePayload"] = {
        "batch": {"Ref": "Jitr::Certificate::Extension::Batch"}
    }
    assert check_template(document, for_jitr=True) == []


@pytest.mark.parametrize(
    "name",
    [
        "Jitr::Certificate::SubjectAltName::DNS",
        "Jitr::Certificate::SubjectAlternativeName::DNS::0",
        "Jitr::Certificate::NotBefore",
        "Jitr::Certificate::Extension::has space",
    ],
)
def test_a_jitr_fact_no_certificate_gives_is_refused_for_jitr(name: str) -> None:
    document = jitr_template({"PolicyName": "jitr-device"}, name)
    assert codes(document) == []
    problems = check_template(document, for_jitr=True)
    assert [(p.code, p.path) for p in problems] == [("JITR_UNKNOWN_CERTIFICATE_FIELD", f"$.Parameters[{name!r}]")]


def test_a_template_renders_with_jitr_facts_like_any_parameter() -> None:
    document = jitr_template({"PolicyName": "jitr-device"})
    plan = render_template(document, {"AWS::IoT::Certificate::Id": CERT_ID, SAN_DNS: "sensor-7"})
    assert plan.thing is not None
    assert plan.thing.properties["ThingName"] == "sensor-7"
    with pytest.raises(TemplateError) as caught:
        render_template(document, {"AWS::IoT::Certificate::Id": CERT_ID})
    (missing,) = caught.value.problems
    assert (missing.code, missing.parameters) == ("MISSING_PARAMETER", frozenset({SAN_DNS}))
