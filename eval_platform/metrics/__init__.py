"""Metric implementations (classification, ranking, generation, agreement, counterfactual...) and the catalog of
versioned metric definitions that suites name; above the registry, below every domain package."""
