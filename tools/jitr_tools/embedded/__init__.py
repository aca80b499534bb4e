"""The embedded AWS IoT: moto's IoT completed with what JITR needs, in-process or on 127.0.0.1.

Layout, along moto's own seam: `models` (the backend class: state and operations), `responses` (HTTP handlers and the
knobs every operation goes through), `register_thing` (RegisterThing's plan applied to the account), `install` (puts
both in place), `functions` (`EmbeddedLambda`: Lambda functions that are Python callables, for decision hooks),
`iot` (`EmbeddedIoT`: a device's connect, the event bus, the knobs).
"""

from jitr_tools.iot.topics import topic_matches

from .functions import EmbeddedLambda
from .iot import DEFAULT_ACCOUNT, DEFAULT_REGION, Connect, ConnectResult, EmbeddedIoT, mock, serve

__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_REGION",
    "Connect",
    "ConnectResult",
    "EmbeddedIoT",
    "EmbeddedLambda",
    "mock",
    "serve",
    "topic_matches",
]
