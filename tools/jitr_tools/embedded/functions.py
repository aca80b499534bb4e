"""The embedded AWS Lambda: functions that are Python callables in this process, run by moto's Invoke operation.

moto's Lambda runs a function's code only in Docker (or, with `use_docker: False`, answers a canned result without
running anything). A rehearsal needs a product's decision hook to run: `EmbeddedLambda.add(name, function)` makes
`function(event) -> answer` the function `name` of an account and region, and Invoke (in-process under `mock()`, or
over HTTP from `serve()`) runs it as Lambda would: its return value as JSON, or, when it raises or returns what JSON
cannot hold, a 200 with `FunctionError: Unhandled` and Lambda's `errorType` / `errorMessage`; an Invoke with
`InvocationType=DryRun` answers 204 without running it, as Lambda does (what `jitr doctor` asks to learn that a
function exists and may be invoked). Any other function name goes to moto as before. Along moto's seam: the backend
class (`EmbeddedLambdaBackend`, state and Invoke) is put in moto's `BackendDict`; moto's `LambdaResponse` does the
HTTP.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from moto.awslambda import urls as moto_lambda_urls
from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import LambdaBackend, lambda_backends

LocalFunction = Callable[[dict[str, Any]], Any]
"""A function's code: the event (the invocation's JSON payload) in, the answer (anything JSON can hold) out."""

_installed = False
_install_lock = threading.Lock()


class EmbeddedLambdaBackend(LambdaBackend):
    """moto's Lambda backend, with functions that are Python callables."""

    def __init__(self, region_name: str, account_id: str) -> None:
        super().__init__(region_name, account_id)
        self.local_functions: dict[str, LocalFunction] = {}
        self.throttled: set[str] = set()

    @property
    def _url_module(self) -> Any:
        """moto finds a service's URL routes next to its backend class; ours are moto's Lambda routes."""
        return moto_lambda_urls

    def invoke(
        self, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> str | bytes | None:
        name = self._local_name(function_name)
        function = self.local_functions.get(name)
        if name in self.throttled:
            raise TooManyRequests()
        if function is None:
            return super().invoke(function_name, qualifier, body, headers, response_headers)
        if headers.get("X-Amz-Invocation-Type") == "DryRun":
            return b""  # moto's response makes it Lambda's 204: the function exists and may be invoked; it did not run
        payload, failed = _run(function, body)
        if failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        return payload

    def _local_name(self, function_name: str) -> str:
        """The name of the function `function_name` names: a name, name:qualifier, or an ARN in this account and
        region (an ARN elsewhere names no function here)."""
        if function_name.startswith("arn:"):
            parts = function_name.split(":")
            if len(parts) < 7 or parts[3] != self.region_name or parts[4] != self.account_id:
                return ""
            return parts[6]
        return function_name.split(":")[0]


class TooManyRequests(LambdaClientError):
    """What Lambda answers when a function may run no more instances now (its reserved concurrency is spent)."""

    code = 429

    def __init__(self) -> None:
        super().__init__("TooManyRequestsException", "Rate Exceeded.")


def _run(function: LocalFunction, body: Any) -> tuple[bytes, bool]:
    """(the payload Lambda returns, whether the function failed): its answer as JSON, or Lambda's description of the
    error it raised, or of an answer JSON cannot hold."""
    try:
        answer = function(json.loads(body) if body else {})
    except Exception as exc:  # the function's own failure, whatever it is: Lambda reports each the same way
        return _error(type(exc).__name__, str(exc)), True
    try:
        return json.dumps(answer).encode(), False
    except (TypeError, ValueError) as exc:
        return _error("Runtime.MarshalError", f"Unable to marshal response: {exc}"), True


def _error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


class EmbeddedLambda:
    """One account and region of the embedded AWS Lambda."""

    def __init__(self, account_id: str, region: str) -> None:
        install()
        self.account_id = account_id
        self.region = region

    @property
    def backend(self) -> EmbeddedLambdaBackend:
        backend = lambda_backends[self.account_id][self.region]
        assert isinstance(backend, EmbeddedLambdaBackend), "install() makes every Lambda backend an embedded one"
        return backend

    def add(self, name: str, function: LocalFunction) -> str:
        """Make `function` the Lambda function `name` (replacing one of that name); returns its ARN."""
        self.backend.local_functions[name] = function
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"

    def throttle(self, name: str, throttled: bool = True) -> None:
        """Make every Invoke of `name` answer TooManyRequestsException (as when its reserved concurrency is 0)."""
        (self.backend.throttled.add if throttled else self.backend.throttled.discard)(name)


def install() -> None:
    """Make moto's Lambda backends embedded ones in this process (safe to call more than once)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        lambda_backends.backend = EmbeddedLambdaBackend
        for account in lambda_backends.values():  # backends made before: made again, of the embedded class, on use
            account.backend = EmbeddedLambdaBackend
            account.clear()
        _installed = True
