"""jitr: just-in-time registration for AWS IoT Core.

The domain package. It ships in the Lambda asset and is imported by the `jitr` command, the embedded AWS IoT and the
tests: certificates (chain and profile checks), templates (the provisioning-template engine), the IoT adapter and the
provisioning use case.
"""
