"""The embedded AWS IoT: moto's IoT completed with what JITR needs, in-process or on 127.0.0.1."""

from .iot import DEFAULT_ACCOUNT, DEFAULT_REGION, Connect, ConnectResult, EmbeddedIoT, serve, topic_matches

__all__ = ["DEFAULT_ACCOUNT", "DEFAULT_REGION", "Connect", "ConnectResult", "EmbeddedIoT", "serve", "topic_matches"]
