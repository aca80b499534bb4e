"""Operator tools around the domain package: the `jitr` command, the development PKI and the embedded AWS IoT.

Not part of the Lambda asset.
"""
