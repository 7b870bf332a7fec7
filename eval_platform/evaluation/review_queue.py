"""The review queue: examples of judged eval runs that people should settle, their labels, and their publication
as a new version of a human-labelled calibration dataset.

**What is queued** (:func:`enqueue_from_run`, called when a run's metrics are computed, in the plain runner and in
Dagster alike). For a run whose suite has an LLM judge, each judged example (status ``ok``) may be queued for:

* ``judge_samples_disagree``: the judge's ``n`` samples disagree (their labels differ or their scores spread more
  than the judge's ``score_tolerance``: the verdicts' ``disagree`` column of :func:`eval_platform.llm.judge.judge`);
* ``judge_vs_reference``: the judge's pass/fail (its majority label) and the suite's reference metric disagree,
  the reference metric passing an example when its per-example value is ``>= threshold``;
* ``audit_sample``: a stratified sample of ``audit_sample`` judged examples, strata the judge's verdict (pass /
  fail), proportional allocation with at least one per stratum when the size allows
  (:func:`eval_platform.llm.budget.stratified_sample`), drawn with ``seed`` over the examples in id order, so the
  same verdicts always pick the same examples.

The settings are the suite's ``review`` section (:mod:`eval_platform.suites.review_config`). Items are unique per
(run, example, reason): computing a run's metrics again queues nothing twice. Canary re-evaluations queue nothing
(the promoted version's examples were queued by its own run). Nothing is sent to any LLM here: the judge already
ran, under the rules of its request (an aggregates-only team's request of a judged suite is refused).

**Labels** (:func:`label_item`). A principal with the ``reviewer`` role (or an admin) whose team may read the
dataset's rows labels an item ``pass`` or ``fail`` with an optional note; the label records the reviewer (the
principal's label, ``TEAM:NAME``) and the time (UTC). Labels are an append-only history: a relabel, by the same
or another reviewer, adds a row, and the newest label counts. A published item is not relabelled (409): its label
is part of a dataset version.

**Publication** (:func:`publish`). The labelled items become a NEW version of the target dataset through
:meth:`EvalPlatform.register_dataset` (validated, content-hashed, immutable): the previous active version's rows
plus one row per labelled (run, example), with exactly the columns :data:`CALIBRATION_COLUMNS` +
:data:`PROVENANCE_COLUMNS`. A row's ``example_id`` is ``RUN_ID/EXAMPLE_ID`` (one model's answer to one example);
a newer label of an answer already in the target replaces its row. Every row holds a ``pass``/``fail`` label (the
calibration contract); ``label_policy`` is ``mixed`` when the target's earlier version was (some of its labels came
from elsewhere), else ``human_reviewed``. The version's ``lineage`` records its parent
version, the review item ids and the reviewers. Everything is checked before the first write; should the process
die between the new version and the items' status, publishing the same items again converges (the same rows are
the same content: the existing version, and the items become ``published``).

**Access.** An item is shown only to teams that may read its dataset's rows; to any other team it is exactly as
absent (:class:`NotFound`). Rows of a restricted dataset are published only into a target that no one else may
read: restricted, to a subset of the source's teams, and aggregates only where the source allows them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

import numpy as np
import pandas as pd
from sqlalchemy import func, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from eval_platform.core.errors import Conflict, InvalidInput, NotFound
from eval_platform.core.keys import VersionedKey, validate_id
from eval_platform.core.records import iso
from eval_platform.core.states import CANARY_TRIGGER, DatasetRole
from eval_platform.core.store import PREDICTIONS
from eval_platform.core.tasks import check_access_policy
from eval_platform.datasets import calibration
from eval_platform.evaluation.metric_table import metric_columns
from eval_platform.llm.budget import stratified_sample
from eval_platform.llm.judge import JUDGED
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalDataset, EvalRun
from eval_platform.registry import access as acl
from eval_platform.registry.access import Principal
from eval_platform.registry.review_schema import ReviewItem, ReviewLabel
from eval_platform.registry.schema import utcnow
from eval_platform.suites.review_config import ReviewConfig, default_reference_metric


class ReviewReason(StrEnum):
    """Why an example was queued."""

    JUDGE_SAMPLES_DISAGREE = "judge_samples_disagree"
    JUDGE_VS_REFERENCE = "judge_vs_reference"
    AUDIT_SAMPLE = "audit_sample"


class ReviewStatus(StrEnum):
    """An item's state: waiting for a label, labelled, or published in a dataset version."""

    OPEN = "open"
    LABELLED = "labelled"
    PUBLISHED = "published"


class HumanLabel(StrEnum):
    """A reviewer's verdict on the judged answer."""

    PASS = "pass"
    FAIL = "fail"


#: the role of the datasets judge licenses are computed on
CALIBRATION_ROLE: str = DatasetRole.CALIBRATION.value
#: the columns of a calibration dataset, in order, and the provenance columns after them
CALIBRATION_COLUMNS = ("example_id", *calibration.CALIBRATION_COLUMNS)
PROVENANCE_COLUMNS = ("source_run", "source_dataset", "reviewer", "labelled_at")
#: most items one publish takes
MAX_PUBLISH_ITEMS = 10_000
NOTE_MAX = 4000


# settings and selection (pure) -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReviewSettings:
    """A suite's review settings, defaults filled in (:mod:`eval_platform.suites.review_config`)."""

    reference_metric: str | None
    threshold: float
    audit_sample: int
    seed: int

    @classmethod
    def of_suite(cls, suite) -> ReviewSettings:
        written = dict(suite.review or {})
        defaults = ReviewConfig.model_validate({})
        return cls(reference_metric=written.get("reference_metric") or default_reference_metric(suite.metrics),
                   threshold=float(written.get("threshold", defaults.threshold)),
                   audit_sample=int(written.get("audit_sample", defaults.audit_sample)),
                   seed=int(written.get("seed", defaults.seed)))


@dataclass(frozen=True)
class Candidate:
    """One example a run puts up for review, for one reason, with what the judge and the reference metric said."""

    example_id: str
    reason: ReviewReason
    judge_label: str | None
    judge_score: float | None
    judge_agreement: float | None
    reference_value: float | None


def _number(value: Any) -> float | None:
    return float(value) if value is not None and not pd.isna(value) else None


def select_for_review(verdicts: pd.DataFrame, reference_values: pd.Series | None, settings: ReviewSettings) -> list[Candidate]:
    """The (example, reason) pairs of a judge's verdicts to queue (see the module's docstring).

    ``verdicts``: the judge's per-example frame (``example_id``, ``status``, ``label``, ``score``, ``agreement``,
    ``disagree``); ``reference_values``: the reference metric's per-example value by example id as text (None:
    no reference metric)."""
    judged = verdicts[verdicts["status"] == JUDGED].copy()
    judged["example_id"] = judged["example_id"].astype(str)
    judged = judged.sort_values("example_id", kind="stable").reset_index(drop=True)
    reference = (reference_values.reindex(judged["example_id"]).to_numpy(dtype=np.float64)
                 if reference_values is not None else np.full(len(judged), np.nan))
    out: list[Candidate] = []

    def add(position: int, reason: ReviewReason) -> None:
        row = judged.iloc[position]
        out.append(Candidate(row["example_id"], reason, row["label"] if isinstance(row["label"], str) else None,
                             _number(row["score"]), _number(row["agreement"]), _number(reference[position])))

    for position in np.flatnonzero(judged["disagree"].to_numpy(dtype=bool)):
        add(int(position), ReviewReason.JUDGE_SAMPLES_DISAGREE)
    if reference_values is not None:
        known = ~np.isnan(reference)
        judge_pass = (judged["label"] == HumanLabel.PASS.value).to_numpy()
        reference_pass = np.where(known, reference >= settings.threshold, False)
        for position in np.flatnonzero(known & (judge_pass != reference_pass)):
            add(int(position), ReviewReason.JUDGE_VS_REFERENCE)
    if settings.audit_sample > 0 and len(judged):
        strata = judged["label"].fillna("none").astype(str)
        size = min(settings.audit_sample, len(judged))
        drawn = stratified_sample(strata, size, seed=settings.seed, min_per_stratum=1 if size >= strata.nunique() else 0)
        for position in drawn.positions:
            add(int(position), ReviewReason.AUDIT_SAMPLE)
    return out


def _reference_values(suite, frame: pd.DataFrame, schema: dict, metric_name: str | None) -> pd.Series | None:
    """The reference metric's per-example values by example id (as text); None without a reference metric."""
    metric = suite.metric(metric_name) if metric_name else None
    if metric is None or metric.definition.per_unit is None:
        return None
    _, values = metric.definition.per_unit(metric_columns(frame, schema, "generation"), **metric.params)
    return pd.Series(np.asarray(values, dtype=np.float64), index=frame["example_id"].astype(str).to_numpy())


# queueing --------------------------------------------------------------------------------------------------
def enqueue_from_run(platform: EvalPlatform, run: EvalRun, suite, frame: pd.DataFrame, schema: dict,
                     verdicts: pd.DataFrame | None) -> list[int]:
    """Queue the run's examples for review (idempotent: one item per run, example and reason); the new items' ids."""
    if verdicts is None or run.trigger == CANARY_TRIGGER or "disagree" not in verdicts.columns:
        return []
    settings = ReviewSettings.of_suite(suite)
    candidates = select_for_review(verdicts, _reference_values(suite, frame, schema, settings.reference_metric), settings)
    if not candidates:
        return []
    config_hash = str(verdicts["judge_config_hash"].iloc[0]) if "judge_config_hash" in verdicts.columns and len(verdicts) else None
    for attempt in range(2):
        try:
            return _insert_missing(platform, run, candidates, settings, config_hash)
        except IntegrityError:  # another process queued the same run at once: read what it wrote, add the rest
            if attempt:
                raise
    return []


def _insert_missing(platform: EvalPlatform, run: EvalRun, candidates: list[Candidate], settings: ReviewSettings,
                    config_hash: str | None) -> list[int]:
    with platform.registry.session() as session:
        existing = set(session.execute(select(ReviewItem.example_id, ReviewItem.reason).where(ReviewItem.run_id == run.run_id)).tuples())
        added = []
        for candidate in candidates:
            if (candidate.example_id, candidate.reason.value) in existing:
                continue
            existing.add((candidate.example_id, candidate.reason.value))
            item = ReviewItem(run_id=run.run_id, dataset_id=run.dataset_id, dataset_version=run.dataset_version,
                              model_name=run.model_name, model_version=run.model_version, suite_id=run.suite_id,
                              suite_version=run.suite_version, example_id=candidate.example_id, reason=candidate.reason.value,
                              judge_label=candidate.judge_label, judge_score=candidate.judge_score,
                              judge_agreement=candidate.judge_agreement, judge_config_hash=config_hash,
                              reference_metric=settings.reference_metric if candidate.reference_value is not None else None,
                              reference_value=candidate.reference_value, status=ReviewStatus.OPEN.value, created_at=utcnow())
            session.add(item)
            added.append(item)
        session.flush()
        return [item.id for item in added]


# reading ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Label:
    """One label of an item's history."""

    label: str
    note: str
    reviewer: str
    labelled_at: datetime | None

    def to_json(self) -> dict:
        return {"label": self.label, "note": self.note, "reviewer": self.reviewer, "labelled_at": iso(self.labelled_at)}


@dataclass(frozen=True)
class ExampleText:
    """What the reviewer reads: the question, the reference answer and the judged candidate answer."""

    prompt: str | None
    reference: str | None
    answer: str | None


@dataclass(frozen=True)
class ReviewItemView:
    """An item with its label history (oldest first; the newest counts)."""

    id: int
    run_id: str
    dataset_key: str
    model_key: str
    suite_key: str
    example_id: str
    reason: str
    judge_label: str | None
    judge_score: float | None
    judge_agreement: float | None
    judge_config_hash: str | None
    reference_metric: str | None
    reference_value: float | None
    status: str
    created_at: datetime | None
    published_in: str | None
    published_at: datetime | None
    labels: tuple[Label, ...] = ()
    example: ExampleText | None = field(default=None, compare=False)

    @property
    def label(self) -> Label | None:
        """The label that counts: the newest."""
        return self.labels[-1] if self.labels else None

    def to_json(self) -> dict:
        current = self.label
        out = {"id": self.id, "run_id": self.run_id, "dataset": self.dataset_key, "model": self.model_key, "suite": self.suite_key,
               "example_id": self.example_id, "reason": self.reason, "judge_label": self.judge_label, "judge_score": self.judge_score,
               "judge_agreement": self.judge_agreement, "judge_config_hash": self.judge_config_hash,
               "reference_metric": self.reference_metric, "reference_value": self.reference_value, "status": self.status,
               "created_at": iso(self.created_at), "published_in": self.published_in, "published_at": iso(self.published_at),
               "label": current.label if current else None, "reviewer": current.reviewer if current else None,
               "labelled_at": iso(current.labelled_at) if current else None, "labels": [entry.to_json() for entry in self.labels]}
        if self.example is not None:
            out["example"] = {"prompt": self.example.prompt, "reference": self.example.reference, "answer": self.example.answer}
        return out


def _view(item: ReviewItem, labels: Iterable[ReviewLabel], example: ExampleText | None = None) -> ReviewItemView:
    return ReviewItemView(
        id=item.id, run_id=item.run_id, dataset_key=item.dataset_key, model_key=item.model_key,
        suite_key=f"{item.suite_id}@{item.suite_version}", example_id=item.example_id, reason=item.reason,
        judge_label=item.judge_label, judge_score=item.judge_score, judge_agreement=item.judge_agreement,
        judge_config_hash=item.judge_config_hash, reference_metric=item.reference_metric, reference_value=item.reference_value,
        status=item.status, created_at=item.created_at, published_in=item.published_in, published_at=item.published_at,
        labels=tuple(Label(x.label, x.note, x.reviewer, x.labelled_at) for x in sorted(labels, key=lambda x: x.id)), example=example)


def _policies(session, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], dict]:
    keys = sorted(set(keys))
    if not keys:
        return {}
    rows = session.execute(select(EvalDataset.dataset_id, EvalDataset.version, EvalDataset.access_policy)
                           .where(tuple_(EvalDataset.dataset_id, EvalDataset.version).in_(keys)))
    return {(d, v): p for d, v, p in rows}


def _may_read(principal: Principal | None, policy: dict | None) -> bool:
    """Items are rows: shown to the local operator and to teams that may read the dataset's rows."""
    return principal is None or acl.can_read_rows(policy, principal.team)


def _labels_of(session, ids: Sequence[int]) -> dict[int, list[ReviewLabel]]:
    out: dict[int, list[ReviewLabel]] = {}
    if ids:
        for label in session.scalars(select(ReviewLabel).where(ReviewLabel.item_id.in_(list(ids))).order_by(ReviewLabel.id)):
            out.setdefault(label.item_id, []).append(label)
    return out


def _check_choice(value: str | None, choices: type[StrEnum], field_name: str) -> str | None:
    if value is not None and value not in {c.value for c in choices}:
        raise InvalidInput(field_name, f"must be one of {', '.join(c.value for c in choices)}, got {value!r}")
    return value


def list_items(platform: EvalPlatform, principal: Principal | None = None, dataset: str | None = None, status: str | None = None,
               reason: str | None = None, offset: int = 0, limit: int = 100) -> tuple[list[ReviewItemView], int]:
    """One page of the items the principal may see (oldest first) and how many there are.

    ``dataset``: a dataset id (every version) or ``ID@VERSION``. Items of datasets whose rows the team may not read
    are left out, as if they did not exist."""
    _check_choice(status, ReviewStatus, "status")
    _check_choice(reason, ReviewReason, "reason")
    query = select(ReviewItem.id, ReviewItem.dataset_id, ReviewItem.dataset_version)
    if dataset:
        if "@" in dataset:
            dataset_id, version = VersionedKey.parse(dataset, "dataset")
            query = query.where(ReviewItem.dataset_id == dataset_id, ReviewItem.dataset_version == version)
        else:
            query = query.where(ReviewItem.dataset_id == validate_id(dataset, "dataset"))
    if status:
        query = query.where(ReviewItem.status == status)
    if reason:
        query = query.where(ReviewItem.reason == reason)
    with platform.registry.session() as session:
        rows = list(session.execute(query.order_by(ReviewItem.id)))
        policies = _policies(session, ((r.dataset_id, r.dataset_version) for r in rows))
        visible = [r.id for r in rows if _may_read(principal, policies.get((r.dataset_id, r.dataset_version)))]
        page = visible[offset:offset + limit]
        items = list(session.scalars(select(ReviewItem).where(ReviewItem.id.in_(page)).order_by(ReviewItem.id))) if page else []
        labels = _labels_of(session, page)
    if principal is not None:  # example ids and verdicts of a restricted dataset are a read of its rows: logged
        shown: dict[tuple[str, int], int] = {}
        for item in items:
            shown[(item.dataset_id, item.dataset_version)] = shown.get((item.dataset_id, item.dataset_version), 0) + 1
        for (dataset_id, version), count in sorted(shown.items()):
            if acl.is_restricted(policies.get((dataset_id, version))):
                acl.record_access(platform, principal, acl.EXAMPLES, f"{dataset_id}@{version}", acl.GRANTED, rows=count,
                                  detail="review items listed")
    return [_view(item, labels.get(item.id, [])) for item in items], len(visible)


def _load_item(platform: EvalPlatform, item_id: Any, principal: Principal | None) -> ReviewItem:
    """The item, or :class:`NotFound` worded as for an absent one when the team may not read its dataset's rows
    (that refusal is logged, after the read's transaction)."""
    if isinstance(item_id, bool) or not isinstance(item_id, int) or item_id < 1:
        raise NotFound("review item", str(item_id))
    with platform.registry.session() as session:
        item = session.get(ReviewItem, item_id)
        if item is None:
            raise NotFound("review item", str(item_id))
        policy = _policies(session, [(item.dataset_id, item.dataset_version)]).get((item.dataset_id, item.dataset_version))
    if not _may_read(principal, policy):
        if principal is not None:
            acl.record_access(platform, principal, acl.EXAMPLES, item.dataset_key, acl.DENIED, run_id=item.run_id, detail="review item")
        raise NotFound("review item", str(item_id))
    return item


def get_item(platform: EvalPlatform, item_id: int, principal: Principal | None = None, with_example: bool = True) -> ReviewItemView:
    """One item with its label history and (``with_example``) the question, reference and judged answer; a read of
    a restricted dataset's rows is logged."""
    item = _load_item(platform, item_id, principal)
    with platform.registry.session() as session:
        labels = _labels_of(session, [item.id]).get(item.id, [])
    example = None
    if with_example:
        example = example_text(platform, item)
        if principal is not None:
            acl.record_read(platform, principal, acl.EXAMPLES, platform.dataset(item.dataset_key), rows=1, run_id=item.run_id,
                            detail=f"review item {item.id}")
    return _view(item, labels, example)


def _text(value: Any) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def example_text(platform: EvalPlatform, item: ReviewItem) -> ExampleText:
    """The question and reference (the dataset's rows) and the judged answer (the run's stored predictions; None
    when retention purged them). Never asks any model."""
    prompt, reference = _question_and_reference(platform, item)
    return ExampleText(prompt, reference, _answer(platform, item.run_id, item.example_id))


def _question_and_reference(platform: EvalPlatform, item: ReviewItem, required: bool = False) -> tuple[str | None, str | None]:
    """The item's question and reference answer from its dataset's rows (``required``: refused when the example is gone)."""
    dataset = platform.dataset(item.dataset_key)
    rows = platform.load_dataset(dataset)
    row = rows[rows["example_id"].astype(str) == item.example_id]
    if not len(row):
        if required:
            raise Conflict(f"review item {item.id}: example {item.example_id!r} is not in {item.dataset_key}")
        return None, None
    label_column = (dataset.schema or {}).get("label_column", "reference")
    return (_text(row["prompt"].iloc[0]) if "prompt" in row.columns else None,
            _text(row[label_column].iloc[0]) if label_column in row.columns else None)


def _answers(platform: EvalPlatform, run_id: str) -> pd.Series | None:
    """A run's answers by example id (text), or None when it has none stored (never produced, or purged)."""
    run = platform.run(run_id)
    if not run.predictions_hash or not platform.store.has_table(PREDICTIONS, run.predictions_hash):
        return None
    predictions = platform.store.get_table(PREDICTIONS, run.predictions_hash)
    if "prediction" not in predictions.columns:
        return None
    return pd.Series(predictions["prediction"].to_numpy(), index=predictions["example_id"].astype(str).to_numpy())


def _answer(platform: EvalPlatform, run_id: str, example_id: str) -> str | None:
    answers = _answers(platform, run_id)
    return _text(answers.get(example_id)) if answers is not None else None


# labelling -------------------------------------------------------------------------------------------------
def label_item(platform: EvalPlatform, item_id: int, label: str, note: str = "", principal: Principal | None = None,
               by: str | None = None) -> ReviewItemView:
    """Record a reviewer's label of an item (append-only; the newest counts). ``principal`` None is the local
    operator, who names the reviewer with ``by``; otherwise the reviewer is the principal."""
    _check_choice(label, HumanLabel, "label")
    if label is None:
        raise InvalidInput("label", "must be pass or fail")
    if not isinstance(note, str) or len(note) > NOTE_MAX:
        raise InvalidInput("note", f"must be text of at most {NOTE_MAX} characters")
    reviewer = principal.label if principal is not None else (by or "").strip()
    if not reviewer or len(reviewer) > 200:
        raise InvalidInput("by", "name the reviewer (at most 200 characters)")
    item = _load_item(platform, item_id, principal)  # visibility first: a hidden item is absent, whatever the role
    acl.require_role(principal, acl.REVIEWER, "labelling a review item", "Authorization", platform, target=f"review_item:{item.id}")
    with platform.registry.session() as session:
        locked = session.get(ReviewItem, item.id, with_for_update=True)  # a concurrent publish waits, or is seen
        item = locked if locked is not None else item
        if item.status == ReviewStatus.PUBLISHED:
            raise Conflict(f"review item {item.id} was published in {item.published_in}: its label is part of that version")
        session.add(ReviewLabel(item_id=item.id, label=label, note=note, reviewer=reviewer, labelled_at=utcnow()))
        item.status = ReviewStatus.LABELLED.value
        session.flush()
        labels = _labels_of(session, [item.id]).get(item.id, [])
        view = _view(item, labels)
    return view


# publishing ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Published:
    """What a publish made: the dataset version (new, or the existing one with identical content), the items."""

    dataset: EvalDataset
    created: bool
    item_ids: tuple[int, ...]
    rows_added: int
    label_policy: str
    lineage: dict


def _readers_within(target: dict, source: dict) -> bool:
    """Whether everyone who may read the target's rows or aggregates may read the source's as much."""
    if not acl.is_restricted(source):
        return True
    if not acl.is_restricted(target):
        return False
    if not set(target.get("teams") or []) <= set(source.get("teams") or []):
        return False
    return not target.get("allow_aggregates") or bool(source.get("allow_aggregates"))


def _items_to_publish(platform: EvalPlatform, principal: Principal | None, item_ids: Sequence[int] | None,
                      dataset: str | None) -> list[ReviewItem]:
    """The labelled items a publish names (by id, or every labelled item of a dataset), each visible to the principal."""
    if (item_ids is None) == (dataset is None):
        raise InvalidInput("items", "name the items, or the dataset whose labelled items to publish (one of items, dataset)")
    if item_ids is not None:
        ids = list(item_ids)
        if not ids or len(ids) > MAX_PUBLISH_ITEMS:
            raise InvalidInput("items", f"must list 1 to {MAX_PUBLISH_ITEMS} item ids")
        items = []
        for position, item_id in enumerate(ids):
            try:
                items.append(_load_item(platform, item_id, principal))
            except NotFound:
                raise InvalidInput(f"items[{position}]", f"no such review item {item_id!r}") from None
        for position, item in enumerate(items):
            if item.status != ReviewStatus.LABELLED:
                why = "has no label yet" if item.status == ReviewStatus.OPEN else f"was published in {item.published_in}"
                raise InvalidInput(f"items[{position}]", f"review item {item.id} {why}")
        return items
    views, _ = list_items(platform, principal, dataset=dataset, status=ReviewStatus.LABELLED.value, limit=MAX_PUBLISH_ITEMS + 1)
    if not views:
        raise InvalidInput("dataset", f"no labelled review items of {dataset!r} to publish")
    if len(views) > MAX_PUBLISH_ITEMS:
        raise InvalidInput("dataset", f"more than {MAX_PUBLISH_ITEMS} labelled items: publish them by id, in parts")
    with platform.registry.session() as session:
        return list(session.scalars(select(ReviewItem).where(ReviewItem.id.in_([v.id for v in views])).order_by(ReviewItem.id)))


def _new_rows(platform: EvalPlatform, items: list[ReviewItem], labels: dict[int, list[ReviewLabel]]) -> pd.DataFrame:
    """One row per labelled (run, example): its newest label among the run's items of the example."""
    newest: dict[tuple[str, str], tuple[ReviewItem, ReviewLabel]] = {}
    for item in items:
        label = labels[item.id][-1]
        key = (item.run_id, item.example_id)
        if key not in newest or label.id > newest[key][1].id:
            newest[key] = (item, label)
    rows: list[dict] = []
    answers_by_run: dict[str, pd.Series | None] = {}
    for (run_id, example_id), (item, label) in sorted(newest.items()):
        if run_id not in answers_by_run:
            answers_by_run[run_id] = _answers(platform, run_id)
        answers = answers_by_run[run_id]
        answer = _text(answers.get(example_id)) if answers is not None else None
        if answer is None:
            raise Conflict(f"review item {item.id}: the answer of run {run_id} to example {example_id!r} is no longer stored "
                           "(purged by retention); it cannot be published")
        prompt, reference = _question_and_reference(platform, item, required=True)
        rows.append({"example_id": f"{run_id}/{example_id}", "prompt": prompt, "reference": reference, "answer": answer,
                     "human_label": label.label, "source_run": run_id, "source_dataset": item.dataset_key,
                     "reviewer": label.reviewer, "labelled_at": iso(label.labelled_at)})
    return pd.DataFrame(rows, columns=[*CALIBRATION_COLUMNS, *PROVENANCE_COLUMNS])


def _previous_rows(platform: EvalPlatform, parent: EvalDataset | None) -> pd.DataFrame:
    columns = [*CALIBRATION_COLUMNS, *PROVENANCE_COLUMNS]
    if parent is None:
        return pd.DataFrame(columns=columns)
    rows = platform.load_dataset(parent)
    missing = [c for c in CALIBRATION_COLUMNS if c not in rows.columns]
    extra = [c for c in rows.columns if c not in columns]
    if missing or extra:
        raise InvalidInput("into", f"{parent.key} is not a calibration dataset: it must have the columns {list(CALIBRATION_COLUMNS)} "
                                   f"(and the provenance columns {list(PROVENANCE_COLUMNS)}); missing {missing}, extra {extra}")
    rows = rows.copy()
    for column in PROVENANCE_COLUMNS:
        if column not in rows.columns:
            rows[column] = ""
    rows["example_id"] = rows["example_id"].astype(str)
    return rows[columns]


def _target(platform: EvalPlatform, into: str) -> EvalDataset | None:
    """The target's latest active version (None: no version yet); a target whose versions are all invalidated is refused."""
    try:
        return platform.latest_dataset(into)
    except NotFound:
        with platform.registry.session() as session:
            exists = session.scalar(select(func.count()).select_from(EvalDataset).where(EvalDataset.dataset_id == into))
        if exists:
            raise Conflict(f"dataset {into!r} has no usable (active) version to add the labels to") from None
        return None


def publish(platform: EvalPlatform, into: str, items: Sequence[int] | None = None, dataset: str | None = None,
            principal: Principal | None = None, role: str = CALIBRATION_ROLE, access_policy: dict | str | None = None) -> Published:
    """Publish labelled review items (by id, or every labelled item of ``dataset``) as a new version of ``into``.

    An existing target keeps its role and access policy (``role``/``access_policy`` are for a new one; a new
    target's policy defaults to ``internal``). Needs the reviewer role, and the right to register versions of
    ``into`` (a member of its owner team, or an admin). Refused, before any write, when the rows of a restricted
    source dataset would become readable by anyone its policy does not let read them (field ``into``, or
    ``access_policy`` for a new target)."""
    validate_id(into, "into")
    acl.require_role(principal, acl.REVIEWER, "publishing review labels", "Authorization", platform, target=f"dataset:{into}")
    acl.require_owner(platform, principal, acl.DATASET, into, "register a version of it", "into")
    parent = _target(platform, into)
    policy = dict(parent.access_policy) if parent is not None else check_access_policy(access_policy)
    chosen = _items_to_publish(platform, principal, items, dataset)
    with platform.registry.session() as session:
        labels = _labels_of(session, [item.id for item in chosen])
        sources = _policies(session, ((item.dataset_id, item.dataset_version) for item in chosen))
    for (dataset_id, version), source in sorted(sources.items()):
        if not _readers_within(policy, source):
            raise acl.Forbidden(f"the rows of restricted dataset {dataset_id}@{version} may only be published into a dataset no "
                                f"one else may read (restricted to some of its teams {sorted(source.get('teams') or [])}, "
                                "aggregates only where it allows them)", field="into" if parent is not None else "access_policy")
    new_rows = _new_rows(platform, chosen, labels)
    previous = _previous_rows(platform, parent)
    frame = pd.concat([previous[~previous["example_id"].isin(new_rows["example_id"])], new_rows], ignore_index=True)
    frame = frame.sort_values("example_id", kind="stable").reset_index(drop=True)
    # every row holds a pass/fail label (the calibration contract); the queue's rows are people's, so the version is
    # mixed exactly when the target's earlier rows were (labels from elsewhere beside people's)
    label_policy = "mixed" if parent is not None and parent.label_policy == "mixed" else "human_reviewed"
    lineage = {"kind": "review_publish", "parent": parent.key if parent is not None else None,
               "review_items": sorted(item.id for item in chosen),
               "reviewers": sorted({labels[item.id][-1].reviewer for item in chosen}),
               "source_runs": sorted({item.run_id for item in chosen}),
               "source_datasets": sorted({item.dataset_key for item in chosen}),
               "published_by": principal.label if principal is not None else acl.LOCAL_OPERATOR.name}
    registered = platform.register_dataset(
        into, frame, task_type="generation", label_policy=label_policy, access_policy=policy,
        role=parent.role if parent is not None else role, principal=principal, lineage=lineage,
        description=f"human labels of {len(chosen)} review item(s) on top of {parent.key if parent is not None else 'nothing'}")
    record = cast(EvalDataset, registered.record)
    with platform.registry.session() as session:
        session.execute(update(ReviewItem).where(ReviewItem.id.in_([item.id for item in chosen]),
                                                 ReviewItem.status == ReviewStatus.LABELLED.value)
                        .values(status=ReviewStatus.PUBLISHED.value, published_in=record.key, published_at=utcnow()))
    return Published(record, registered.created, tuple(sorted(item.id for item in chosen)), len(new_rows), label_policy,
                     record.lineage or lineage)


__all__ = [
    "CALIBRATION_COLUMNS", "CALIBRATION_ROLE", "PROVENANCE_COLUMNS", "Candidate", "ExampleText", "HumanLabel", "Label",
    "Published", "ReviewItemView", "ReviewReason", "ReviewSettings", "ReviewStatus", "enqueue_from_run", "example_text",
    "get_item", "label_item", "list_items", "publish", "select_for_review",
]
