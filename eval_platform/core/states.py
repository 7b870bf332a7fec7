"""The platform's states and kinds, as string enums: each value is what the registry stores and the API shows.

``StrEnum`` members compare equal to their strings, so rows read back from the database (plain strings)
compare with them directly.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """An eval run's state. ``queued`` rows are the requests the Dagster sensors turn into runs."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: its dataset version was contaminated or a metric it used was buggy; recomputed by a newer attempt
    INVALID = "invalid"
    #: a newer attempt of the same (model, dataset, suite) replaced it
    SUPERSEDED = "superseded"


#: runs that count for their (model, dataset, suite): waiting, running or done
ACTIVE_STATES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCEEDED)


class Verdict(StrEnum):
    """A gate's decision. It fails closed: anything it cannot check is ``no_decision``, never ``pass``."""

    PASS = "pass"
    FAIL = "fail"
    NO_DECISION = "no_decision"


class ReleaseVerdict(StrEnum):
    """A gate's decision as a release sees it: an approver may let a failed or undecided gate through."""

    PASS = "pass"
    FAIL = "fail"
    NO_DECISION = "no_decision"
    OVERRIDDEN = "overridden"


#: what a promotion accepts
RELEASABLE = (ReleaseVerdict.PASS, ReleaseVerdict.OVERRIDDEN)


class SuitePurpose(StrEnum):
    """Whether a metric suite gates releases or only informs."""

    EXPLORATORY = "exploratory"
    RELEASE_BLOCKING = "release_blocking"


class GateScope(StrEnum):
    """Which gate of a model version a decision belongs to."""

    MODEL_VERSION = "model_version"
    ONLINE = "online"


class IncidentKind(StrEnum):
    """What an incident reports: a buggy metric version or a contaminated dataset version."""

    METRIC_BUG = "metric_bug"
    DATASET_CONTAMINATION = "dataset_contamination"


class RequestKind(StrEnum):
    """What a request row asks the orchestrator for (``dagster_requests.kind``)."""

    PROMOTION = "promotion"
    BACKFILL = "backfill"
    EXPERIMENT_ANALYSIS = "experiment_analysis"


class RequestStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
