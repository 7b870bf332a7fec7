"""The registry service: registering datasets, suites and models, queuing eval runs, recording gate decisions.

:class:`~eval_platform.platform.service.EvalPlatform` is the one object every higher layer receives (named
``platform`` everywhere); ``aggregates`` is what a team with aggregates-only access may see of a run.
"""
