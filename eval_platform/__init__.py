"""Evaluation platform: repeatable offline evals, lineage and release gates for ML and LLM models.

This package is the domain library and imports nothing from Dagster; the Dagster layer (``assets``,
``resources``, ``jobs``, ``sensors``) calls into it.
"""

__version__ = "0.1.0"
