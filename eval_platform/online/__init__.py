"""Online evaluation: A/B experiment statistics, shadow-mode comparisons and online guardrail verdicts.

``stats`` holds one function per A/B statistic over plain numpy data; ``config`` validates an experiment's
configuration, ``events`` its events; ``analysis`` turns both into an
:class:`~eval_platform.online.analysis.ExperimentAnalysis` of plain data; ``shadow`` compares a shadow
candidate's logged outputs with production's; ``simulate`` generates experiments with a known true effect for
the demo and the tests. Like the rest of ``eval_platform`` it knows nothing of Dagster.
"""
