"""Release gates: rules and decisions (``rules``, pure), overrides and promotions (``releases``)."""
