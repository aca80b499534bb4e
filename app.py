#!/usr/bin/env python3
"""`cdk synth` / `cdk deploy` entry point. No AWS calls and no git state: synth is a function of the repository and
its context (cdk.json's `jitr` object, or the JSON file `jitr:configFile` names). With no CA configured it makes a
development CA under .dev-pki/ and says so."""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk

from jitr_cdk.stack import build
from jitr_config.model import CONFIG_FILE_KEY, CONTEXT_KEY, ConfigError, load_config, raw_settings
from jitr_tools.pki import development_ca_pem

ROOT = Path(__file__).resolve().parent


def main() -> int:
    app = cdk.App()
    try:
        context = {key: app.node.try_get_context(key) for key in (CONTEXT_KEY, CONFIG_FILE_KEY)}
        config = load_config(raw_settings(context, ROOT), ROOT, development_ca=development_ca_pem)
        for note in config.notes:
            print(f"jitr: {note}", file=sys.stderr)
        # the constructs refuse what only they can measure (a function's environment over Lambda's limit)
        build(app, config, app.node.try_get_context("jitr:stackName") or "Jitr")
    except ConfigError as exc:
        print(f"jitr: configuration error: {exc}", file=sys.stderr)
        return 1
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
