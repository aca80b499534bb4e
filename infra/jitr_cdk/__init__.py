"""jitr for a CDK app: the `JustInTimeRegistration` construct (one construct per concern inside), its typed
`JitrProperties`, and `JitrStack`, the construct plus cdk-nag as this repository deploys it.

They are read on first use, so `python -m jitr_cdk.bundling` (the Lambda asset alone) does not load the CDK."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jitr_config.properties import JitrProperties

    from .construct import JustInTimeRegistration
    from .stack import JitrStack

__all__ = ["JitrProperties", "JitrStack", "JustInTimeRegistration"]
_HOMES = {
    "JitrProperties": "jitr_config.properties",
    "JustInTimeRegistration": "jitr_cdk.construct",
    "JitrStack": "jitr_cdk.stack",
}


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
