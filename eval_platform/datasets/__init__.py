"""Dataset versions: what a dataset of each task type must contain, checked with Great Expectations."""
