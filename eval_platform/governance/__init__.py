"""Operating the platform: incidents and recompute (``incidents``), retention, and the platform's own figures."""
