"""An eval run's steps: predictions, metric table, comparison with the baseline and the gate decision.

``runner`` holds the steps the Dagster assets call, ``results`` the typed results they return; ``metric_table`` computes a metric table from a dataset
and a prediction set; ``launches`` decides what happens to queued runs whose launch failed.
"""
