"""Errors the platform raises to its users.

Every rejection names the field (a column, a parameter, a file) and the problem, so a person can fix the
input without reading code. Raising one of these before any write is what keeps the registry and the
artifact store unchanged after a rejected request.
"""

from __future__ import annotations


class EvalPlatformError(Exception):
    """Base class of every error the platform reports to a user."""


class InvalidInput(EvalPlatformError):
    """A request was rejected because one of its fields is wrong."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class NotFound(EvalPlatformError):
    """A named record (dataset, suite, model, run) does not exist."""

    def __init__(self, kind: str, key: str):
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")


class UnsafeModelFile(InvalidInput):
    """A model file would run untrusted code if loaded, or changed since it was registered."""


class Conflict(EvalPlatformError):
    """The request contradicts the registry's state (for example acting on an invalidated dataset)."""
