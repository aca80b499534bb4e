"""Operating a deployed stack: `jitr doctor`, `jitr explain`, `jitr invoke`, `jitr enroll` and `jitr revocation`."""
