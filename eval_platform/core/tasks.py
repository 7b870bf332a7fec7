"""Task types the platform evaluates, and what a dataset of each type must contain.

The brief's first clarifying question ("classification, ranking, generation, or retrieval?") is answered
per dataset by its ``task_type``; the type fixes the id columns, the label column and its domain, which the
dataset validation checks and which the metric catalog matches against a suite's metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from eval_platform.core.errors import InvalidInput


@dataclass(frozen=True)
class TaskType:
    """What a dataset of one task type must hold: its id columns, its label column and the label's domain."""

    name: str
    id_columns: tuple[str, ...]
    label_column: str
    #: ``("set", values)``: labels must be one of ``values``; ``("min", x)``: numeric labels ``>= x``;
    #: ``("any", None)``: any non-null value (for example class names or reference texts).
    label_domain: tuple[str, object]
    extra_required: tuple[str, ...] = ()
    description: str = ""
    #: columns holding text in every row, however the file spells it (``"42"``, ``"NA"``, ``""`` stay text):
    #: see :mod:`eval_platform.core.tables`
    text_columns: tuple[str, ...] = ()

    @property
    def required_columns(self) -> tuple[str, ...]:
        return (*self.id_columns, self.label_column, *self.extra_required)

    @property
    def verbatim_columns(self) -> tuple[str, ...]:
        """The columns a CSV gives as written: the text columns and, in a task with text, its ids (``007``)."""
        return (*self.id_columns, *self.text_columns) if self.text_columns else ()


TASK_TYPES: dict[str, TaskType] = {
    task.name: task
    for task in (
        TaskType("binary_classification", ("example_id",), "label", ("set", (0, 1)),
                 description="one row per example; label 0/1; numeric feature columns"),
        TaskType("multiclass_classification", ("example_id",), "label", ("any", None),
                 description="one row per example; label is the class"),
        TaskType("multilabel_classification", ("example_id",), "labels", ("any", None),
                 description="one row per example; labels is a list of classes"),
        TaskType("ranking", ("query_id", "doc_id"), "relevance", ("min", 0),
                 description="one row per judged (query, item) pair; graded relevance >= 0"),
        TaskType("search", ("query_id", "doc_id"), "relevance", ("min", 0),
                 description="ranking judgments of a search system; latency comes with the predictions"),
        TaskType("generation", ("example_id",), "reference", ("any", None), extra_required=("prompt",),
                 description="one row per prompt; reference answer text",
                 text_columns=("prompt", "reference", "prediction")),
        # online data: not evaluated by metric suites, analysed by eval_platform.online (see experiments.py)
        TaskType("online_events", (), "arm", ("any", None), extra_required=("unit_id", "timestamp"),
                 description="one row per event or per unit of an A/B experiment: unit id, arm, timestamp, "
                             "metric columns"),
        TaskType("shadow_log", ("request_id", "source"), "output", ("any", None),
                 description="one row per (request, source): source is candidate or production; output is "
                             "a label or a ranked list of item ids"),
    )
}

LABEL_POLICIES = ("human_reviewed", "synthetic", "implicit", "mixed")
ACCESS_LEVELS = ("public", "internal", "restricted")
PURPOSES = ("exploratory", "release_blocking")


def get_task_type(name: str) -> TaskType:
    task = TASK_TYPES.get(name)
    if task is None:
        raise InvalidInput("task_type", f"unknown task type {name!r}; known: {', '.join(TASK_TYPES)}")
    return task


def check_label_policy(policy: str) -> str:
    if policy not in LABEL_POLICIES:
        raise InvalidInput("label_policy", f"must be one of {', '.join(LABEL_POLICIES)}, got {policy!r}")
    return policy


def check_access_policy(policy: dict | str | None) -> dict:
    """``{"level": "public"|"internal"|"restricted", "teams": [...]}``; restricted needs at least one team."""
    if policy is None:
        policy = {"level": "internal"}
    if isinstance(policy, str):
        policy = {"level": policy}
    if not isinstance(policy, dict):
        raise InvalidInput("access_policy", "must be a mapping with a 'level'")
    unknown = set(policy) - {"level", "teams", "allow_aggregates", "min_slice_size"}
    if unknown:
        raise InvalidInput("access_policy", f"unknown key(s) {sorted(unknown)}")
    level = policy.get("level")
    if level not in ACCESS_LEVELS:
        raise InvalidInput("access_policy.level", f"must be one of {', '.join(ACCESS_LEVELS)}, got {level!r}")
    teams = policy.get("teams", [])
    if not isinstance(teams, list) or not all(isinstance(t, str) and t for t in teams):
        raise InvalidInput("access_policy.teams", "must be a list of team names")
    if level == "restricted" and not teams:
        raise InvalidInput("access_policy.teams", "a restricted dataset must name the teams allowed to read it")
    out = {"level": level, "teams": sorted(set(teams)), "allow_aggregates": bool(policy.get("allow_aggregates", False))}
    if policy.get("min_slice_size") is not None:
        # the smallest slice a team with aggregates-only access is shown (eval_platform.platform.aggregates); kept
        # out of the policy when not given, so datasets registered before it keep their version hash
        size = policy["min_slice_size"]
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 1_000_000:
            raise InvalidInput("access_policy.min_slice_size", f"must be a whole number from 1 to 1000000, got {size!r}")
        out["min_slice_size"] = size
    return out
