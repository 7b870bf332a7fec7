"""Metric suites: the versioned definition of metrics, slices, comparison settings and gate rules.

``config`` is what a suite author may write (pydantic models, and the JSON schema of the API's body), split by
section (``metric_config``, ``llm_config``; ``refusals`` words their errors); ``definition`` is the parsed,
immutable :class:`SuiteDefinition` the rest of the platform reads, cached per suite version.
"""

from eval_platform.suites.config import SuiteConfig
from eval_platform.suites.definition import SuiteDefinition, SuiteMetric, parse_suite

__all__ = ["SuiteConfig", "SuiteDefinition", "SuiteMetric", "parse_suite"]
