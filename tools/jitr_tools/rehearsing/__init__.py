"""Rehearsing a fleet offline: `jitr simulate` and `jitr demo`, the deployed account and handler in-process, the
wiring, local decision hooks and the decision-event tap."""
