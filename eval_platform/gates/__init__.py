"""Release gates: rules and decisions (``rules``, pure), why a run cannot be decided (``blockers``), overrides and
promotions (``releases``)."""
