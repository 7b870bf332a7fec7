"""Online evaluation: A/B experiment statistics, shadow-mode comparisons and online guardrail verdicts.

``stats`` holds one function per statistic over plain numpy data; ``analysis`` turns an experiment's
events (a pandas frame) and its configuration into an :class:`~eval_platform.online.analysis.ExperimentAnalysis`
of plain data; ``simulate`` generates experiments with a known true effect for the demo and the tests.
Like the rest of ``eval_platform`` it knows nothing of Dagster.
"""
