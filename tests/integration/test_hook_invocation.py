"""A product's decision hook asked through boto3's Lambda client over HTTP, the hook a Python function of the embedded
AWS Lambda: each answer it can give, and each way it can fail to give one (all `HookFailed`: retried, never blamed
on the device)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from jitr.certificates import certificate_id
from jitr.hook import HookDecision, HookFailed, HookRequest, Hooks, HookSettings, budget_config, lambda_clients
from jitr_tools import pki
from jitr_tools.embedded import EmbeddedIoT, EmbeddedLambda, mock, serve

REGION = "eu-west-1"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """The embedded AWS over HTTP, with the credentials boto3 signs its requests with."""
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            env.setenv(name, "testing")
        with serve() as url:
            yield url


@pytest.fixture
def functions(endpoint: str) -> EmbeddedLambda:
    return EmbeddedIoT(region=REGION).functions


@pytest.fixture
def hooks(endpoint: str) -> Hooks:
    return Hooks(lambda_clients(endpoint, REGION))


@pytest.fixture(scope="module")
def device(issuing_ca: pki.Issued) -> pki.Issued:
    return pki.make_device(issuing_ca, "sensor-7", san=["sensor-7.example.com"], serial_number="SN-7")


@pytest.fixture(scope="module")
def request_(device: pki.Issued, issuing_ca: pki.Issued) -> HookRequest:
    return HookRequest.from_certificate(
        device.certificate, certificate_id(device.certificate), certificate_id(issuing_ca.certificate), "sensor"
    )


def settings(function: str, *parameters: str, timeout: float = 5.0) -> HookSettings:
    return HookSettings(function=function, timeout_seconds=timeout, parameters=parameters)


def answering(answer: Any, seen: list[dict[str, Any]] | None = None) -> Any:
    def function(event: dict[str, Any]) -> Any:
        if seen is not None:
            seen.append(event)
        return answer

    return function


# -- answers ---


def test_an_allow_sets_the_parameters_it_may_and_the_function_is_told_the_facts_only(
    functions: EmbeddedLambda, hooks: Hooks, request_: HookRequest, device: pki.Issued
) -> None:
    seen: list[dict[str, Any]] = []
    functions.add("allow-hook", answering({"decision": "allow", "parameters": {"Site": "plant-3"}}, seen))

    answer = hooks.ask(settings("allow-hook", "Site", "Line"), request_)

    assert (answer.decision, answer.reason, answer.parameters) == (HookDecision.ALLOW, "", {"Site": "plant-3"})
    assert answer.elapsed_seconds > 0
    (event,) = seen
    assert event == json.loads(request_.payload())
    assert event["subject"]["attributes"]["CommonName"] == "sensor-7"
    assert "BEGIN CERTIFICATE" not in json.dumps(event)
    assert device.pem.split("\n")[1] not in json.dumps(event)  # not the DER in base64 either


def test_the_function_is_found_by_its_arn(functions: EmbeddedLambda, hooks: Hooks, request_: HookRequest) -> None:
    arn = functions.add("arn-hook", answering({"decision": "allow"}))

    assert hooks.ask(settings(arn), request_).decision is HookDecision.ALLOW


@pytest.mark.parametrize("decision", [HookDecision.DENY, HookDecision.HOLD])
def test_a_deny_or_a_hold_carries_its_reason(
    functions: EmbeddedLambda, hooks: Hooks, request_: HookRequest, decision: HookDecision
) -> None:
    functions.add(f"{decision}-hook", answering({"decision": decision, "reason": "unit returned for repair"}))

    answer = hooks.ask(settings(f"{decision}-hook"), request_)

    assert (answer.decision, answer.reason, answer.parameters) == (decision, "unit returned for repair", {})


# -- no usable answer: HookFailed ---


def test_a_function_that_raises_fails_naming_its_error_type_only(
    functions: EmbeddedLambda, hooks: Hooks, request_: HookRequest
) -> None:
    def broken(event: dict[str, Any]) -> Any:
        raise KeyError("inventory row for SN-7 and its secret notes")

    functions.add("broken-hook", broken)

    with pytest.raises(HookFailed) as failed:
        hooks.ask(settings("broken-hook"), request_)

    assert failed.value.message == "the hook function broken-hook failed: KeyError"
    assert failed.value.elapsed_seconds is not None


def test_a_function_slower_than_the_budget_fails(
    functions: EmbeddedLambda, hooks: Hooks, request_: HookRequest
) -> None:
    released = threading.Event()

    def slow(event: dict[str, Any]) -> Any:
        released.wait(10)
        return {"decision": "allow"}

    functions.add("slow-hook", slow)
    try:
        with pytest.raises(HookFailed) as failed:
            hooks.ask(settings("slow-hook", timeout=0.5), request_)
    finally:
        released.set()

    assert failed.value.message == "the hook function slow-hook did not answer within 0.5 s"


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("allow", "Input should be an object"),
        ({"decision": "perhaps"}, "decision: Input should be 'allow', 'deny' or 'hold'"),
        ({"decision": "allow", "parameters": {"Policy": "admin"}}, "sets 'Policy', not among the parameters"),
        (None, "Input should be an object"),
    ],
)
def test_a_function_answering_garbage_fails_naming_what_is_wrong(
    functions: EmbeddedLambda, hooks: Hooks, request_: HookRequest, answer: Any, problem: str
) -> None:
    functions.add("garbage-hook", answering(answer))

    with pytest.raises(HookFailed, match="the hook function garbage-hook: ") as failed:
        hooks.ask(settings("garbage-hook", "Site"), request_)

    assert problem in failed.value.message


def test_an_answer_json_cannot_hold_is_the_function_failing(
    functions: EmbeddedLambda, hooks: Hooks, request_: HookRequest
) -> None:
    functions.add("marshal-hook", answering({"decision": "allow", "when": object()}))

    with pytest.raises(HookFailed, match=r"marshal-hook failed: Runtime\.MarshalError$"):
        hooks.ask(settings("marshal-hook"), request_)


def test_a_throttled_function_fails_at_once(functions: EmbeddedLambda, hooks: Hooks, request_: HookRequest) -> None:
    functions.add("busy-hook", answering({"decision": "allow"}))
    functions.throttle("busy-hook")

    with pytest.raises(HookFailed, match=r"busy-hook could not be invoked: TooManyRequestsException$"):
        hooks.ask(settings("busy-hook"), request_)


def test_a_function_that_does_not_exist_fails(hooks: Hooks, request_: HookRequest, endpoint: str) -> None:
    with pytest.raises(HookFailed, match=r"no-such-hook could not be invoked: ResourceNotFoundException$"):
        hooks.ask(settings("no-such-hook"), request_)


def test_answers_are_read_as_the_product_declares(
    functions: EmbeddedLambda, hooks: Hooks, request_: HookRequest
) -> None:
    """Two products, one function: the parameters it may set are each product's own."""
    functions.add("shared-hook", answering({"decision": "allow", "parameters": {"Site": "plant-3"}}))

    assert hooks.ask(settings("shared-hook", "Site"), request_).parameters == {"Site": "plant-3"}
    with pytest.raises(HookFailed, match="sets 'Site', not among the parameters the product lets its hook set"):
        hooks.ask(settings("shared-hook", "Line"), request_)


def test_in_process_under_the_mock_too(aws_env: None, request_: HookRequest) -> None:
    """The handler's integration tests run the embedded AWS in-process: the same function answers there."""
    with mock():
        iot = EmbeddedIoT()
        iot.functions.add("fleet-hook", answering({"decision": "hold", "reason": "awaiting end-of-line test"}))

        answer = Hooks(lambda_clients(region=iot.region)).ask(settings("fleet-hook"), request_)

    assert (answer.decision, answer.reason) == (HookDecision.HOLD, "awaiting end-of-line test")


def test_a_dry_run_invoke_answers_204_without_running_the_function(functions: EmbeddedLambda, endpoint: str) -> None:
    """As Lambda's DryRun: the function exists and may be invoked, and it did not run (what `jitr doctor` asks)."""
    seen: list[dict[str, Any]] = []
    functions.add("quiet-hook", answering({"decision": "allow"}, seen))
    client = lambda_clients(endpoint, REGION)(budget_config(5))

    response = client.invoke(FunctionName="quiet-hook", InvocationType="DryRun", Payload=b"{}")

    assert response["StatusCode"] == 204
    assert "FunctionError" not in response
    assert seen == []
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="no-such-hook", InvocationType="DryRun", Payload=b"{}")
