"""Products' decision hooks, rehearsed: a hook is a Lambda function of the fleet's own; in `jitr serve` and `jitr
simulate` it is that function's Python handler, run in this process by the embedded Lambda (`EmbeddedLambda.add`).

A rehearsal names a hook's code as Lambda's handler setting does, by file and function: `--hook
FUNCTION=hooks/allow_list.py:handler` makes `handler(event, context)` in that file the function FUNCTION (the
`hook.function` a product configures: a name, or an ARN whose last part is the name). The same file deploys to Lambda
unchanged, and the handler is called with Lambda's two arguments. A module on the path works too
(`FUNCTION=package.module:handler`).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jitr_tools.embedded import EmbeddedLambda
from jitr_tools.rehearsing.lambda_context import LambdaContext

if TYPE_CHECKING:
    from jitr.settings import Settings
    from jitr_config.model import ProductConfig

LambdaHandler = Callable[[dict[str, Any], Any], Any]


class HookError(ValueError):
    """A `--hook` that names no usable function, or a product's hook with no local function: one line that says so."""


def function_name(function: str) -> str:
    """The name of the function a hook setting names (a name, name:qualifier, or an ARN)."""
    if function.startswith("arn:"):
        return function.split(":")[6]
    return function.split(":")[0]


def parse(text: str) -> tuple[str, str]:
    """`FUNCTION=FILE.py:NAME` (or `FUNCTION=module:NAME`) -> (the function's name, where its handler is)."""
    function, _, where = text.partition("=")
    if not function or ":" not in where or not where.rsplit(":", 1)[1]:
        raise HookError(f"--hook {text!r}: write FUNCTION=FILE.py:HANDLER (or FUNCTION=module:HANDLER)")
    return function_name(function), where


def load(where: str) -> LambdaHandler:
    """The callable `where` (FILE.py:NAME or module:NAME) names; raises `HookError` saying why not."""
    source, _, name = where.rpartition(":")
    try:
        if source.endswith(".py"):
            path = Path(source)
            if not path.is_file():
                raise HookError(f"--hook: {source} is not a file")
            spec = importlib.util.spec_from_file_location(f"jitr_hook_{path.stem}", path)
            assert spec is not None  # a .py file always has a spec
            assert spec.loader is not None  # and a loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(source)
    except HookError:
        raise
    except Exception as exc:  # the team's module failed to load: say how, in one line
        raise HookError(f"--hook: cannot load {source}: {type(exc).__name__}: {exc}") from None
    handler = getattr(module, name, None)
    if not callable(handler):
        raise HookError(f"--hook: {source} has no function {name!r}")
    return handler  # type: ignore[no-any-return]


def as_function(name: str, handler: LambdaHandler) -> Callable[[dict[str, Any]], Any]:
    """The handler as the embedded Lambda runs a function: the event in, its answer out, with a context naming it."""
    context = LambdaContext(
        function_name=name,
        invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        log_group_name=f"/aws/lambda/{name}",
    )
    return lambda event: handler(event, context)


def install(
    functions: EmbeddedLambda, products: Iterable[ProductConfig], handlers: Mapping[str, LambdaHandler]
) -> dict[str, str]:
    """Make each product's hook the local function `handlers` gives for its name. Raises `HookError` for a product
    whose hook has none (rehearsed without it, every decision of the product would RETRY HOOK_FAILED), and for a
    handler no product's hook names (a typo). Returns product -> function name."""
    installed: dict[str, str] = {}
    for product in products:
        if product.hook is None:
            continue
        name = function_name(product.hook.function)
        if name not in handlers:
            raise HookError(
                f"product {product.name}'s hook function {product.hook.function} has no local function:"
                f" --hook {name}=FILE.py:HANDLER"
            )
        functions.add(name, as_function(name, handlers[name]))
        installed[product.name] = name
    unused = sorted(set(handlers) - set(installed.values()))
    if unused:
        raise HookError(f"--hook {unused[0]}: no product's hook names that function")
    return installed


def local_settings(settings: Settings) -> Settings:
    """The handler's settings with each hook named by its function's name: an ARN names an account's function, the
    embedded account's is the one installed here."""
    products = tuple(
        product.model_copy(
            update={"hook": product.hook.model_copy(update={"function": function_name(product.hook.function)})}
        )
        if product.hook is not None
        else product
        for product in settings.products
    )
    return settings.model_copy(update={"products": products})
