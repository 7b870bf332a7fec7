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


class RuleOutcome(StrEnum):
    """One gate rule's outcome: a verdict, or ``not_applicable`` (a baseline rule on a model name's first version)."""

    PASS = "pass"
    FAIL = "fail"
    NO_DECISION = "no_decision"
    NOT_APPLICABLE = "not_applicable"


class ReleaseVerdict(StrEnum):
    """A gate's decision as a release sees it: an approver may let a failed or undecided gate through."""

    PASS = "pass"
    FAIL = "fail"
    NO_DECISION = "no_decision"
    OVERRIDDEN = "overridden"


#: what a promotion accepts of the offline gate
RELEASABLE = (ReleaseVerdict.PASS, ReleaseVerdict.OVERRIDDEN)


class OnlineRequirement(StrEnum):
    """An online gate that has nothing to decide: no suite asks for online evidence, or none applies."""

    NOT_REQUIRED = "not_required"
    NOT_APPLICABLE = "not_applicable"


#: what a promotion accepts of the online gate: a releasable decision, or no online evidence asked for
ONLINE_RELEASABLE = (*RELEASABLE, OnlineRequirement.NOT_REQUIRED, OnlineRequirement.NOT_APPLICABLE)


class BaselineState(StrEnum):
    """What a comparison found of its baseline's run on the candidate's dataset and suite."""

    OK = "ok"
    #: no baseline model: nothing requested and no other version of the model name promoted
    NONE = "none"
    #: the baseline model has no finished run on this dataset and suite
    MISSING = "missing"
    #: the baseline's latest run used another dataset or suite version than the candidate's
    STALE = "stale"


class DatasetStatus(StrEnum):
    """A dataset version's state: only an ``active`` one is evaluated."""

    ACTIVE = "active"
    CONTAMINATED = "contaminated"


class DatasetRole(StrEnum):
    """What a dataset is kept for: ordinary evals, or a fixed reference set re-evaluated on a schedule.

    A ``golden`` set is kept free of the model's feedback loop (sampled uniformly, labelled by people); a
    ``canary`` set is a stable benchmark served to the promoted model to detect drift of the model or its
    endpoint. Both are re-evaluated by the canary schedule and alert when their metrics move beyond a bound.
    """

    STANDARD = "standard"
    GOLDEN = "golden"
    CANARY = "canary"
    #: human-labelled verdicts on answers (prompt, reference, answer, human_label pass/fail) that license an LLM judge
    CALIBRATION = "calibration"


#: the roles the canary schedule re-evaluates
TRACKED_ROLES = (DatasetRole.GOLDEN, DatasetRole.CANARY)
#: the ``trigger`` of an eval run the canary schedule queued: a fresh re-evaluation of a promoted model version,
#: never a baseline, never deduplicated into the (model, dataset, suite)'s own run, never part of a gate
CANARY_TRIGGER = "canary"


class SuitePurpose(StrEnum):
    """Whether a metric suite gates releases or only informs."""

    EXPLORATORY = "exploratory"
    RELEASE_BLOCKING = "release_blocking"


class GateScope(StrEnum):
    """Which gate of a model version a decision belongs to."""

    MODEL_VERSION = "model_version"
    ONLINE = "online"
    #: one eval run's gate, which the model version's offline gate combines (never overridden on its own)
    RUN = "run"


#: the gates an approver may override
OVERRIDABLE_SCOPES = (GateScope.MODEL_VERSION, GateScope.ONLINE)


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
    """Whether a request row still waits for the orchestrator (``dagster_requests.status``)."""

    PENDING = "pending"
    DONE = "done"


class LedgerKind(StrEnum):
    """What a release ledger entry records (``release_ledger.kind``)."""

    GATE_DECISION = "gate_decision"
    OVERRIDE = "override"
    PROMOTION = "promotion"
    #: an earlier, still-valid promoted version made the serving one again (governed, not an override)
    ROLLBACK = "rollback"
    #: nothing of the model name serves any more
    DEMOTION = "demotion"


#: the ledger entries that change which version of a model name serves
SERVING_KINDS = (LedgerKind.PROMOTION, LedgerKind.ROLLBACK, LedgerKind.DEMOTION)
