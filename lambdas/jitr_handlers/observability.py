"""Logger, Tracer and Metrics, created once for every handler."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="jitr")
tracer = Tracer(service="jitr")
metrics = Metrics(namespace="jitr", service="jitr")
