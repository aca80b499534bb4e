"""The configuration model of a deployment, read alike by the stack and construct and by the operator tools.

`model` (the `jitr` context checked at synth: `load_config`, `JitrConfig`, `ConfigError`, every default once),
`selectors` (whether two products' selectors can match one certificate), `properties` (the construct's typed
properties, checked by `model`). It imports the domain package (`jitr`) and never `jitr_cdk` (the deployment) or the
CDK, so `jitr serve`, `jitr simulate --products` and `jitr doctor` read a configuration without the deployment code.
It is not part of the Lambda asset: the handler gets its settings from the environment the stack writes.
"""
