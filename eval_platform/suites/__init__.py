"""Metric suites: the versioned definition of metrics, slices, comparison settings and gate rules."""
