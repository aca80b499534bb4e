"""Operator tools around the domain package, in parts by the reader each serves (highest first; a part imports only
its own modules and the parts below it, `tests/unit/test_layout.py` holds it):

- `cli`: the `jitr` command; `scaffold`: `jitr init`, a new CDK app with the construct;
- `operating`: a deployed stack (`doctor`, `explain`, `invoke`, `enroll`, `revocation`);
- `endpoint`: the device-side endpoint (`jitr serve`, its MQTT broker and TLS, device clients);
- `rehearsing`: a fleet offline (`simulate`, `demo`, the deployed account and handler in-process);
- `pki`: the development PKI (certificates, its revocation list, CRL and OCSP servers, `jitr pki`);
  `embedded`: the embedded AWS IoT (moto, completed);
- `iot`: AWS IoT's own rules (policies, topics); `arguments` and `terminal`: what every command reads and writes.

Not part of the Lambda asset.
"""
