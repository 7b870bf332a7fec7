"""An eval run's steps, in the order the Dagster assets call them.

``predicting`` (the model's predictions, cached by content; the run's lineage), ``judging`` (a pinned LLM
judge's verdicts and pairwise preferences), ``runner`` (the metric table, the comparison with the baseline found
by ``baselines``, and the gate decision), with ``metric_table`` computing one table from a dataset and a
prediction set and ``results`` the typed results each step returns; ``launches`` decides what happens to queued
runs whose launch failed.
"""
