"""The API's request and response bodies (pydantic models): what the OpenAPI document publishes of them.

JSON is camelCase (``alias_generator=to_camel``). A class docstring here documents the code only: the
published document describes fields, and its text is pinned by the checked-in ``openapi.json``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, get_args, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.alias_generators import to_camel

from eval_platform.core.keys import ID_OR_KEY_PATTERN, ID_PATTERN, KEY_PATTERN
from eval_platform.core.tasks import LABEL_POLICIES, TASK_TYPES
from eval_platform.governance.recompute_cost import ModelCost
from eval_platform.models.files import MODEL_KINDS
from eval_platform.suites.config import SuiteConfig

if TYPE_CHECKING:  # enums of the form fields, built from the platform's lists (a Literal of runtime values mypy cannot read)
    TaskTypeName: TypeAlias = str
    LabelPolicyName: TypeAlias = str
    ModelKindName: TypeAlias = str
else:
    TaskTypeName = Literal[tuple(TASK_TYPES)]
    LabelPolicyName = Literal[LABEL_POLICIES]
    ModelKindName = Literal[MODEL_KINDS]


def docstring_kept_out_of_openapi(schema: dict[str, Any], model: type) -> None:
    """pydantic publishes a model's docstring as its schema's description: these docstrings are for readers of the code."""
    schema.pop("description", None)


class Camel(BaseModel):
    """Base of the request and response bodies: camelCase aliases, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              json_schema_extra=docstring_kept_out_of_openapi)


def camel_out_of(source: type, name: str) -> type[Camel]:
    """A response body with the fields of the library's dataclass ``source``, in its order (one that may be None
    defaults to None): a field added to the dataclass is in the body, and in the published document, at once."""
    hints = get_type_hints(source)
    fields: dict[str, Any] = {}
    for item in dataclasses.fields(source):
        kind = hints[item.name]
        fields[item.name] = (kind, None if type(None) in get_args(kind) else ...)
    return create_model(name, __base__=Camel, __doc__=source.__doc__, __module__=__name__, **fields)


class CamelOut(BaseModel):
    """Base of the online experiments' responses: camelCase aliases (built by the routes, never parsed)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, json_schema_extra=docstring_kept_out_of_openapi)


# eval runs -----------------------------------------------------------------------------------------------
class EvalRunRequest(Camel):
    """The body of ``POST /v1/eval-runs``: which model version to evaluate on which dataset with which suite."""

    model_version: str = Field(min_length=1, max_length=400, pattern=KEY_PATTERN, description="NAME@VERSION of a registered model",
                               examples=["breast-cancer-detector@2"])
    dataset_id: str = Field(min_length=1, max_length=400, pattern=ID_OR_KEY_PATTERN,
                            description="DATASET_ID (newest usable version) or DATASET_ID@VERSION")
    metric_suite_id: str = Field(min_length=1, max_length=400, pattern=ID_OR_KEY_PATTERN,
                                 description="SUITE_ID (newest version) or SUITE_ID@VERSION")
    baseline: str | None = Field(None, min_length=1, max_length=400, pattern=KEY_PATTERN, description="NAME@VERSION to compare "
                                 "against (default: the model name's promoted version). With a live run of the same versions: "
                                 "a queued run without a baseline takes it; a run compared with another baseline is a 409")
    recompute: bool = Field(False, description="Supersede the live run of the same versions (not a running one) with a new run")


class EvalRunCreated(Camel):
    """The answer to ``POST /v1/eval-runs``: the queued run, or the live run of the same versions."""

    run_id: str
    status: str
    created: bool = Field(description="False: an existing live run of the same model, dataset and suite versions (its "
                          "requestedBaseline may differ from the one asked for: compare with GET .../comparison?baseline=)")
    model_version: str
    dataset_id: str
    metric_suite_id: str
    requested_baseline: str | None = None


class Gate(Camel):
    """A gate decision with the reasons the caller may see."""

    model_config = ConfigDict(extra="allow")
    decision: str
    reasons: list[dict[str, Any]]
    decided_at: str | None = None


class EvalRunOut(Camel):
    """An eval run: its state, timings, results (as far as the dataset's policy shows them) and lineage."""

    model_config = ConfigDict(extra="allow")
    run_id: str
    status: str
    status_reason: str | None = None
    model_version: str
    dataset_id: str
    metric_suite_id: str
    attempt: int
    trigger: str
    requested_baseline: str | None = None
    baseline_run_id: str | None = None
    requested_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    queue_seconds: float | None = None
    metric_seconds: float | None = None
    cost: float | None = Field(None, description="What the run's LLM calls cost (candidate and judges), once it finished; 0 without LLM calls")
    predictions_hash: str | None = None
    metrics_hash: str | None = None
    predictions_purged_at: str | None = None
    results: dict[str, Any] | None = None
    lineage: dict[str, Any] | None = None
    gate: Gate | None = None
    redacted: bool = False


class EvalRunPage(Camel):
    """One page of eval runs, newest first."""

    items: list[EvalRunOut]
    offset: int
    limit: int
    total: int


class Comparison(Camel):
    """A run against its baseline: per metric, per slice, and the regressed examples the caller may see."""

    model_config = ConfigDict(extra="allow")
    run_id: str
    source: Literal["recorded", "computed"]
    baseline: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    slices: dict[str, dict[str, dict[str, Any]]]
    regressions: dict[str, list[Any]] | None = None
    regression_counts: dict[str, int]
    gate: Gate | None = None
    redacted: bool = False


class RowsPage(Camel):
    """One page of a stored table's rows (a dataset's examples, a run's predictions)."""

    offset: int
    limit: int
    total: int
    columns: list[str]
    rows: list[dict[str, Any]]


# datasets, suites, models ------------------------------------------------------------------------------------
class AccessPolicy(Camel):
    """Who may read a dataset's rows and aggregates."""

    level: str
    teams: list[str] = []
    allow_aggregates: bool = False
    #: the smallest slice shown to a team with aggregates-only access (eval_platform.platform.aggregates)
    min_slice_size: int


class DatasetOut(Camel):
    """A dataset version's metadata (never its rows)."""

    model_config = ConfigDict(extra="allow")
    dataset_id: str
    version: int
    key: str
    task_type: str
    label_policy: str
    access_policy: AccessPolicy
    row_count: int
    content_hash: str
    status: str
    status_reason: str | None = None
    description: str = ""
    created_at: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    created: bool | None = None
    #: standard, golden or canary (golden and canary versions are re-evaluated by the canary schedule)
    role: str = "standard"


class SuiteOut(Camel):
    """A metric suite version and its normalised definition."""

    suite_id: str
    version: int
    key: str
    purpose: str
    task_type: str
    definition_hash: str
    definition: dict[str, Any]
    created_at: str | None = None
    created: bool | None = None


class ModelOut(Camel):
    """A model version with its gate decision and whether it is the promoted one."""

    name: str
    version: int
    key: str
    kind: str
    file_hash: str
    trusted_types: list[str]
    description: str = ""
    registered_at: str | None = None
    gate: str | None = None
    promoted: bool = False
    created: bool | None = None
    queued_runs: list[str] | None = None
    training_cutoff: str | None = Field(None, description="the newest example time the model trained on (leakage check)")
    training_manifest_hash: str | None = Field(None, description="content hash of the stored manifest of its training "
                                               "examples' hashes (leakage check)")


#: the body of ``POST /v1/metric-suites``: the suite configuration's own schema (:class:`SuiteConfig`), with the
#: models it refers to placed among the document's components (``SUITE_SCHEMA_COMPONENTS``)
_SUITE_CONFIG_SCHEMA = SuiteConfig.model_json_schema(ref_template="#/components/schemas/{model}")
SUITE_BODY_SCHEMA = {key: value for key, value in _SUITE_CONFIG_SCHEMA.items() if key != "$defs"}
SUITE_SCHEMA_COMPONENTS: dict[str, Any] = _SUITE_CONFIG_SCHEMA.get("$defs", {})


# gates, metrics and incidents --------------------------------------------------------------------------------
class GateOut(Camel):
    """A model version's effective gate decision, the recorded one and any override of it."""

    model_version: str
    decision: str = Field(description="pass, fail, no_decision or overridden (the effective decision)")
    recorded_decision: str | None = None
    decided_at: str | None = None
    reasons: list[dict[str, Any]]
    override: dict[str, Any] | None = None
    promoted: bool = False
    settled: bool = Field(False, description="a decision is recorded and no release-blocking eval run of the version is queued "
                                             "or running: the decision is the answer a pipeline waits for (evalp gate wait)")
    pending_runs: int = Field(0, description="release-blocking eval runs of the version still queued or running")


class ReasonBody(Camel):
    """Why an override, an invalidation or a buggy-metric mark is made (recorded with the caller)."""

    reason: str = Field(min_length=1, max_length=4000)


class PromoteBody(Camel):
    """Why a promotion is asked for (optional)."""

    reason: str = Field("", max_length=4000)


class RecomputeBody(Camel):
    """What to recompute: the runs a buggy metric version or a contaminated dataset version touched."""

    affected_by: str = Field(min_length=1, max_length=400, description="NAME@VERSION of a metric marked buggy, or a contaminated DATASET_ID@VERSION")
    reason: str = Field("", max_length=4000)
    confirm_over_budget: bool = Field(False, description="An admin's confirmation of a recompute whose estimate is over a "
                                                          "suite's budget or the installation's recompute budget")


class RecomputeEstimateBody(Camel):
    """What to estimate: the recompute of the runs a buggy metric version or a contaminated dataset version touched."""

    affected_by: str = Field(min_length=1, max_length=400, description="NAME@VERSION of a metric marked buggy, or a contaminated DATASET_ID@VERSION")


if TYPE_CHECKING:
    ModelCostOut: TypeAlias = Camel
else:
    #: the calls of one phase to one endpoint's model: cache hits are free, misses priced at their worst case
    ModelCostOut = camel_out_of(ModelCost, "ModelCostOut")


class RunCostOut(Camel):
    """One run a recompute would queue (``(withheld)`` names for a dataset the caller may not know of)."""

    run_id: str
    model: str
    dataset: str
    suite: str
    calls: int
    cache_hits: int
    misses: int
    unknown_answers: int
    estimated_cost: float | None = None
    error: str | None = Field(None, description="Why the run's calls could not be estimated (its cost is then unknown)")


class BudgetBreachOut(Camel):
    """A budget the recompute's estimate is over."""

    budget: str
    estimate: float | None = None
    limit: float


class RecomputeEstimateOut(Camel):
    """The dry run of a recompute: nothing is queued."""

    affected_by: str
    runs: list[RunCostOut]
    calls: int
    cache_hits: int
    misses: int
    unknown_answers: int
    estimated_cost: float | None = None
    exact: bool
    by_model: list[ModelCostOut]
    over_budget: list[BudgetBreachOut]


class OverrideOut(Camel):
    """A recorded gate override."""

    id: int
    model_version: str
    overridden_decision: str
    suites: list[str]
    approver: str
    reason: str
    created_at: str | None = None


class RequestOut(Camel):
    """A request the sensors act on (a promotion, a backfill)."""

    request_id: int
    kind: str
    partitions: list[str]
    requested_by: str
    status: str
    requested_at: str | None = None


class MetricOut(Camel):
    """A catalog metric version and whether it is marked buggy."""

    metric: str
    name: str
    version: int
    direction: str
    task_types: list[str]
    params: list[str]
    unit: str
    requires_judge: bool
    buggy: bool
    description: str


class ImpactOut(Camel):
    """An incident and the runs and models it touched (those the caller may know of)."""

    incident_id: int
    kind: str
    target: str
    reason: str
    reported_by: str
    affected_runs: list[str]
    affected_models: list[str]


class RecomputeOut(Camel):
    """The runs queued again and the backfill request that runs them."""

    queued_runs: list[str]
    backfill_request_id: int | None = None
    partitions: list[str]


class Health(Camel):
    """``/healthz``: the server is up and its registry answers."""

    status: str
    schema_revision: str | None = None
    version: str


# online experiments ------------------------------------------------------------------------------------------
class ExperimentOut(CamelOut):
    """An online experiment, its ingest count and (when asked) its latest analysis."""

    experiment_id: str
    mode: Literal["ab", "shadow"]
    status: str
    config: dict[str, Any]
    control_model: str
    candidate_models: list[str]
    offline_metric: str | None = None
    offline_gate: dict[str, Any]
    access_policy: dict[str, Any]
    description: str = ""
    created_by: str
    created_at: str
    created: bool | None = None
    ingests: int = 0
    latest_analysis: dict[str, Any] | None = None


class IngestOut(CamelOut):
    """A batch of online data registered as a dataset version of the experiment."""

    id: int
    experiment_id: str
    dataset_key: str
    content_hash: str
    row_count: int
    ingested_by: str
    ingested_at: str
    created: bool


class AnalysisRequestOut(CamelOut):
    """A queued analysis of an experiment."""

    request_id: int
    experiment_id: str
    status: str


class OnlineGateOut(CamelOut):
    """A model version's online gate, decided from the latest analyses."""

    model_version: str
    decision: str
    effective_decision: str
    gate_decision_id: int
    reasons: list[dict[str, Any]]


class AgreementOut(CamelOut):
    """Offline deltas beside online deltas across A/B experiments."""

    n: int
    pearson: float | None = None
    spearman: float | None = None
    sign_agreement: float | None = None
    sign_agreement_n: int
    records: list[dict[str, Any]]
    excluded: list[dict[str, Any]] = Field(default_factory=list)


#: what the document says of an experiment: its id (required, the id grammar) and its mode; the rest is checked
#: by eval_platform.online.experiments, each problem naming its field
EXPERIMENT_BODY_SCHEMA = {
    "required": ["experimentId"],
    "properties": {
        "experimentId": {"type": "string", "pattern": ID_PATTERN, "maxLength": 117,
                         "description": "the experiment's id (its events are registered as dataset experiment-ID)"},
        "experiment_id": {"type": "string", "pattern": ID_PATTERN, "maxLength": 117, "description": "the same, snake_case"},
        "mode": {"enum": ["ab", "shadow"]},
        "description": {"type": "string"},
        "access_policy": {"type": "object"},
    },
}
