"""The provisioning-template engine: check a template as AWS IoT would, and render it into a plan."""

from .engine import Plan, PlannedResource, Template, check_template, parse_template, render_template
from .problems import Problem, TemplateError

__all__ = [
    "Plan",
    "PlannedResource",
    "Problem",
    "Template",
    "TemplateError",
    "check_template",
    "parse_template",
    "render_template",
]
