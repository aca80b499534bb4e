"""Logger, Tracer and Metrics, created once for every handler.

The service name (a dimension of every metric, and a field of every log line) comes from POWERTOOLS_SERVICE_NAME,
which the stack sets to its own name so that two deployments in one account keep apart; locally it is "jitr".
"""

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "jitr"
NAMESPACE = "jitr"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
