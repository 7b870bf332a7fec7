"""Judges licensed by human agreement: a pinned LLM judge may gate a release only while its verdicts on a
human-labelled calibration dataset agree with the humans at least as the suite requires.

**What is measured.** The judge (a :class:`~eval_platform.llm.judge.JudgeConfig`: model, model version, prompt
version, rubric, decoding) grades every row of the newest active version of the suite's calibration dataset
(:mod:`eval_platform.datasets.calibration`: ``prompt``, ``reference``, ``answer``, ``human_label``) once,
through the LLM call cache (a recheck of the same judge on the same rows pays no call). A score judge's score
is a pass at ``pass_threshold`` and above. A reply that does not parse (a judge error) counts as the verdict
*against* the human label: a judge that errors cannot buy its license by leaving out the hard rows.

* ``kappa``: Cohen's kappa of judge and humans with its large-sample interval
  (:func:`~eval_platform.metrics.agreement.cohen_kappa_interval`; undefined, so never licensed, when both
  always say the same label);
* ``accuracy``: the share of rows where the judge agrees with the humans, with its Wilson interval.

The judge is **licensed** when the interval's lower bound at ``confidence`` is at least ``min_lower_bound``.

**History and the current license.** Each check appends one row to ``judge_licenses`` (never updated): the
judge's key and config hash, the calibration dataset version and its content hash, the figures, the
judge's verdict per example, and the **drift** against the previous judge version licensed on the same
calibration dataset: how often the two judges agree (Cohen's kappa between them), the change of pass rate on
the rows both judged, and the change of the measure. The current license of a judge on a calibration
dataset is the newest row on the dataset's newest active version: a new calibration version (the review
queue's next round) needs a new check, and so does any change of the judge (a new key and config hash).

**Invalidation.** When a calibration version is found contaminated
(:func:`~eval_platform.governance.incidents.invalidate_dataset`), every license on it gets an invalidation row
(``judge_license_invalidations``; the license row itself is never edited) and no longer counts. Nor does a
license the judge held on an *older* version before the invalidated one: when an older version becomes the
newest active one again, the judge needs a check made after that (the judge-license sensor requests it), and
until then the gate's blocker names the contaminated version.

**The gate** (:func:`license_blocker`) fails closed: a release-blocking suite with a ``judge_score`` metric
decides only when its judge holds a license under the suite's ``llm.judge_license`` on the newest active
calibration version. Otherwise the run's gate is ``no_decision`` with an ``unlicensed_judge`` blocker that
gives the figures, or says the judge was never checked, or that the suite states no ``judge_license``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import func, select

from eval_platform.core.errors import InvalidInput, NotFound
from eval_platform.core.hashing import short
from eval_platform.core.records import iso
from eval_platform.core.states import DatasetRole, DatasetStatus, IncidentKind, SuitePurpose
from eval_platform.datasets.calibration import check_calibration_dataset
from eval_platform.evaluation.judging import needs_judge
from eval_platform.evaluation.predicting import llm_client
from eval_platform.gates.blockers import Blocker, BlockerKind
from eval_platform.llm.budget import PriceTable
from eval_platform.llm.cache import LLMCache
from eval_platform.llm.calls import raise_if_calls_failed
from eval_platform.llm.judge import JUDGED, JudgeConfig, judge
from eval_platform.metrics.agreement import cohen_kappa_interval
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalDataset, Incident, MetricSuite
from eval_platform.registry.judge_license_schema import JudgeLicenseInvalidationRecord, JudgeLicenseRecord
from eval_platform.registry.schema import utcnow
from eval_platform.stats.sampling import wilson_interval
from eval_platform.suites.definition import SuiteDefinition

#: a verdict the judge could not give (an unparsable reply, a failed call)
ERROR_LABEL = "error"
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.@/:-]+")


@dataclass(frozen=True)
class LicenseRequirement:
    """What a suite requires of its judge (``llm.judge_license``)."""

    calibration_dataset: str
    measure: str = "kappa"
    min_lower_bound: float = 0.6
    confidence: float = 0.95

    @classmethod
    def of_suite(cls, suite: SuiteDefinition) -> LicenseRequirement | None:
        raw = (suite.llm or {}).get("judge_license")
        return None if raw is None else cls(raw["calibration_dataset"], raw["measure"], float(raw["min_lower_bound"]),
                                            float(raw["confidence"]))

    def describe(self) -> str:
        return (f"{self.measure} {_percent(self.confidence)} lower bound >= {self.min_lower_bound:.2f} "
                f"on calibration dataset {self.calibration_dataset}")


@dataclass(frozen=True)
class JudgeDrift:
    """A judge version against the previous judge version licensed on the same calibration dataset.

    ``judge_kappa``: Cohen's kappa between the two judges' verdicts on the rows both judged (``agreement`` the
    plain share of equal verdicts); ``pass_rate_change`` = current - previous pass rate on those rows;
    ``measure_change`` = current - previous estimate of the measure (None when measured differently)."""

    previous_judge_key: str
    previous_judge_config_hash: str
    previous_license_id: int
    previous_calibration_version: int
    n_common: int
    agreement: float | None
    judge_kappa: float | None
    pass_rate_previous: float | None
    pass_rate_current: float | None
    pass_rate_change: float | None
    measure_previous: float | None
    measure_current: float | None
    measure_change: float | None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict | None) -> JudgeDrift | None:
        return None if not raw else cls(**{k: raw.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


@dataclass(frozen=True)
class LicenseInvalidation:
    """Why a license no longer counts: its calibration version was found contaminated."""

    reason: str
    invalidated_by: str
    invalidated_at: datetime
    incident_id: int | None

    @classmethod
    def from_record(cls, record: JudgeLicenseInvalidationRecord) -> LicenseInvalidation:
        return cls(record.reason, record.invalidated_by, record.invalidated_at, record.incident_id)

    def to_dict(self) -> dict:
        return {"reason": self.reason, "invalidated_by": self.invalidated_by, "invalidated_at": iso(self.invalidated_at),
                "incident_id": self.incident_id}


@dataclass(frozen=True)
class JudgeLicense:
    """One check of a judge against a calibration dataset version (a row of ``judge_licenses``)."""

    id: int
    judge_key: str
    judge_config_hash: str
    judge_model: str
    judge_prompt_version: str
    calibration_dataset_id: str
    calibration_version: int
    calibration_content_hash: str
    measure: str
    confidence: float
    min_lower_bound: float
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    n_judge_errors: int
    pass_rate: float | None
    licensed: bool
    computed_at: datetime
    computed_by: str
    drift: JudgeDrift | None
    calls: dict
    #: set when the calibration version was found contaminated: the license no longer counts
    invalidation: LicenseInvalidation | None = None

    @property
    def calibration_key(self) -> str:
        return f"{self.calibration_dataset_id}@{self.calibration_version}"

    @property
    def invalidated(self) -> bool:
        return self.invalidation is not None

    @classmethod
    def from_record(cls, record: JudgeLicenseRecord, invalidation: LicenseInvalidation | None = None) -> JudgeLicense:
        return cls(record.id, record.judge_key, record.judge_config_hash, record.judge_model, record.judge_prompt_version,
                   record.calibration_dataset_id, record.calibration_version, record.calibration_content_hash, record.measure,
                   record.confidence, record.min_lower_bound, record.estimate, record.ci_low, record.ci_high, record.n,
                   record.n_judge_errors, record.pass_rate, bool(record.licensed), record.computed_at, record.computed_by,
                   JudgeDrift.from_dict(record.drift), dict(record.calls or {}), invalidation)

    def measured_as(self, requirement: LicenseRequirement) -> bool:
        """Whether this check measured what ``requirement`` asks (the same measure at the same confidence)."""
        return (self.calibration_dataset_id == requirement.calibration_dataset and self.measure == requirement.measure
                and math.isclose(self.confidence, requirement.confidence))

    def holds(self, requirement: LicenseRequirement) -> bool:
        """Licensed under ``requirement``: not invalidated, measured as it asks, and the lower bound at least its minimum."""
        return (not self.invalidated and self.measured_as(requirement) and self.ci_low is not None and math.isfinite(self.ci_low)
                and self.ci_low >= requirement.min_lower_bound - 1e-12)

    def figures(self, required: float | None = None) -> str:
        """``judge X: kappa 0.41, 95% lower bound 0.28 < required 0.60 on 60 calibration examples``."""
        bound = self.min_lower_bound if required is None else required
        if self.estimate is None or self.ci_low is None:
            text = f"judge {self.judge_key}: {self.measure} undefined (the judge or the humans gave one label only)"
        else:
            relation = ">=" if self.ci_low >= bound - 1e-12 else "<"
            text = (f"judge {self.judge_key}: {self.measure} {self.estimate:.2f}, {_percent(self.confidence)} lower bound "
                    f"{self.ci_low:.2f} {relation} required {bound:.2f}")
        text += f" on {self.n} calibration examples of {self.calibration_key}"
        if self.n_judge_errors:
            text += f" ({self.n_judge_errors} judge errors counted as disagreements)"
        if self.invalidation is not None:
            text += f"; INVALIDATED: {self.invalidation.reason}"
        return text

    def to_dict(self) -> dict:
        out = asdict(self)
        out["computed_at"] = iso(self.computed_at)
        out["calibration_dataset"] = self.calibration_key
        out["drift"] = self.drift.to_dict() if self.drift else None
        out["invalidated"] = self.invalidated
        out["invalidation"] = self.invalidation.to_dict() if self.invalidation else None
        return out


@dataclass(frozen=True)
class LicenseStatus:
    """A suite's judge against the suite's requirement, as the gate sees it now."""

    suite_key: str
    judge_key: str
    judge_config_hash: str
    requirement: LicenseRequirement | None
    #: the newest active version of the calibration dataset (None: there is none)
    calibration_key: str | None
    license: JudgeLicense | None
    licensed: bool
    message: str

    def to_dict(self) -> dict:
        return {"suite": self.suite_key, "judge_key": self.judge_key, "judge_config_hash": self.judge_config_hash,
                "requirement": asdict(self.requirement) if self.requirement else None, "calibration_dataset": self.calibration_key,
                "licensed": self.licensed, "message": self.message, "license": self.license.to_dict() if self.license else None}


def _percent(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def judge_key(config: JudgeConfig) -> str:
    """A readable, unique key of a judge version: ``MODEL@VERSION.PROMPT_ID@PROMPT_VERSION.HASH8`` (the Dagster
    partition key). The short config hash tells apart judges that differ only in rubric, decoding or endpoint;
    no character of ``|,[]`` (reserved by Dagster) or whitespace survives."""
    text = f"{config.model}@{config.model_version}.{config.prompt.key}.{short(config.config_hash, 8)}"
    return _KEY_UNSAFE.sub("_", text)


# computing a license --------------------------------------------------------------------------------------------


def _judge_labels(verdicts, config: JudgeConfig) -> dict[str, str]:
    """Each example's verdict: the majority label (a score at ``pass_threshold`` or above is a pass), or error."""
    labels = {}
    for row in verdicts.itertuples(index=False):
        if row.status != JUDGED or row.label is None:
            labels[str(row.example_id)] = ERROR_LABEL
        elif config.output == "score":
            labels[str(row.example_id)] = "pass" if float(row.score) >= config.pass_threshold else "fail"
        else:
            labels[str(row.example_id)] = str(row.label)
    return labels


def _measure(human: list[str], judged: list[str], requirement: LicenseRequirement) -> tuple[float | None, float | None, float | None]:
    """``(estimate, ci_low, ci_high)`` of the judge's agreement with the humans (None where undefined)."""
    # a judge error counts against the judge: the verdict opposite the human's
    effective = [("fail" if h == "pass" else "pass") if j == ERROR_LABEL else j for h, j in zip(human, judged, strict=True)]
    if requirement.measure == "accuracy":
        accuracy = float(np.mean([h == j for h, j in zip(human, effective, strict=True)]))
        low, high = wilson_interval(accuracy, len(human), requirement.confidence)
        return accuracy, float(low), float(high)
    kappa = cohen_kappa_interval(human, effective, confidence=requirement.confidence)
    if not math.isfinite(kappa.value):
        return None, None, None
    return kappa.value, kappa.ci_low, kappa.ci_high


def _pass_rate(labels: Iterable[str]) -> float | None:
    given = [label for label in labels if label != ERROR_LABEL]
    return float(np.mean([label == "pass" for label in given])) if given else None


def _drift(previous: JudgeLicenseRecord, labels: dict[str, str], estimate: float | None, measure: str) -> JudgeDrift:
    before = {str(k): v for k, v in (previous.verdicts or {}).items()}
    common = sorted(k for k in labels if k in before and labels[k] != ERROR_LABEL and before[k] != ERROR_LABEL)
    now, then = [labels[k] for k in common], [before[k] for k in common]
    kappa = cohen_kappa_interval(then, now).value if common else float("nan")
    rate_now, rate_then = _pass_rate(now), _pass_rate(then)
    measure_then = previous.estimate if previous.measure == measure else None
    return JudgeDrift(
        previous.judge_key, previous.judge_config_hash, previous.id, previous.calibration_version, len(common),
        float(np.mean([a == b for a, b in zip(now, then, strict=True)])) if common else None,
        kappa if math.isfinite(kappa) else None, rate_then, rate_now,
        None if rate_now is None or rate_then is None else rate_now - rate_then,
        measure_then, estimate, None if estimate is None or measure_then is None else estimate - measure_then)


def _previous_licensed(session, calibration_dataset_id: str, config_hash: str) -> JudgeLicenseRecord | None:
    """The newest license of another judge version that was licensed on the same calibration dataset."""
    return session.scalar(select(JudgeLicenseRecord).where(
        JudgeLicenseRecord.calibration_dataset_id == calibration_dataset_id, JudgeLicenseRecord.licensed.is_(True),
        JudgeLicenseRecord.judge_config_hash != config_hash).order_by(JudgeLicenseRecord.id.desc()).limit(1))


def check_calibration(dataset: EvalDataset) -> None:
    if dataset.role != DatasetRole.CALIBRATION:
        raise InvalidInput("calibration_dataset", f"{dataset.key} has role {dataset.role!r}, not 'calibration'")
    if dataset.status != DatasetStatus.ACTIVE:
        raise InvalidInput("calibration_dataset", f"{dataset.key} is {dataset.status}: only an active version licenses a judge")


def compute_license(platform: EvalPlatform, judge_config: JudgeConfig, calibration: EvalDataset,
                    requirement: LicenseRequirement, *, prices: PriceTable | None = None, computed_by: str = "",
                    concurrency: int = 8) -> JudgeLicense:
    """Grade the calibration version with the judge (through the call cache), measure its agreement with the
    human labels, compare it with the previous licensed judge version, and append the license row.

    Refused (:class:`InvalidInput`, nothing written) when the version is not an active calibration dataset;
    :class:`~eval_platform.llm.calls.LLMCallsFailed` when the judge's calls failed (no license then either)."""
    if judge_config.output == "pairwise":
        raise InvalidInput("judge.output", "a pairwise judge is not licensed on pass/fail labels")
    check_calibration(calibration)
    if calibration.dataset_id != requirement.calibration_dataset:
        raise InvalidInput("calibration_dataset", f"{calibration.key} is not a version of {requirement.calibration_dataset}")
    frame = platform.load_dataset(calibration)
    check_calibration_dataset(frame, calibration.task_type, calibration.label_policy)  # rows as the contract says
    with llm_client(platform, judge_config.endpoint, prices or PriceTable()) as client:
        result = judge(frame, judge_config, 1, cache=LLMCache.from_platform(platform), client=client,
                       columns={"question": "prompt"}, dataset=calibration.key, check_budget=False, concurrency=concurrency)
    raise_if_calls_failed(result.report)
    labels = _judge_labels(result.verdicts, judge_config)
    ids = [str(i) for i in frame["example_id"]]
    human = [str(h) for h in frame["human_label"]]
    judged = [labels[i] for i in ids]
    estimate, low, high = _measure(human, judged, requirement)
    key = judge_key(judge_config)
    with platform.registry.session() as session:
        previous = _previous_licensed(session, calibration.dataset_id, judge_config.config_hash)
        record = JudgeLicenseRecord(
            judge_key=key, judge_config_hash=judge_config.config_hash, judge_model=judge_config.judge_model,
            judge_prompt_version=judge_config.prompt.key, judge_config=judge_config.record(),
            calibration_dataset_id=calibration.dataset_id, calibration_version=calibration.version,
            calibration_content_hash=calibration.content_hash, measure=requirement.measure, confidence=requirement.confidence,
            min_lower_bound=requirement.min_lower_bound, estimate=estimate, ci_low=low, ci_high=high, n=len(ids),
            n_judge_errors=sum(1 for j in judged if j == ERROR_LABEL), pass_rate=_pass_rate(judged),
            licensed=low is not None and low >= requirement.min_lower_bound - 1e-12, verdicts=dict(zip(ids, judged, strict=True)),
            drift=_drift(previous, labels, estimate, requirement.measure).to_dict() if previous is not None else None,
            calls=result.report.to_dict(), computed_at=utcnow(), computed_by=computed_by[:200])
        session.add(record)
        session.flush()
        return JudgeLicense.from_record(record)


# reading licenses ----------------------------------------------------------------------------------------------


def newest_calibration(platform: EvalPlatform, dataset_id: str) -> EvalDataset | None:
    """The newest active version of a calibration dataset (None: no active version, or not a calibration set)."""
    try:
        dataset = platform.latest_dataset(dataset_id)
    except NotFound:
        return None
    return dataset if dataset.role == DatasetRole.CALIBRATION else None


def licenses(platform: EvalPlatform, judge_config_hash: str | None = None, calibration_dataset_id: str | None = None,
             judge_key_: str | None = None, limit: int = 1000) -> list[JudgeLicense]:
    """License history, newest first."""
    query = select(JudgeLicenseRecord).order_by(JudgeLicenseRecord.id.desc()).limit(limit)
    if judge_config_hash is not None:
        query = query.where(JudgeLicenseRecord.judge_config_hash == judge_config_hash)
    if calibration_dataset_id is not None:
        query = query.where(JudgeLicenseRecord.calibration_dataset_id == calibration_dataset_id)
    if judge_key_ is not None:
        query = query.where(JudgeLicenseRecord.judge_key == judge_key_)
    with platform.registry.session() as session:
        records = list(session.scalars(query))
        invalid = _invalidations(session, [r.id for r in records])
        return [JudgeLicense.from_record(r, invalid.get(r.id)) for r in records]


def _invalidations(session, license_ids: list[int]) -> dict[int, LicenseInvalidation]:
    """The invalidation of each of these licenses that has one."""
    if not license_ids:
        return {}
    rows = session.scalars(select(JudgeLicenseInvalidationRecord).where(JudgeLicenseInvalidationRecord.license_id.in_(license_ids)))
    return {row.license_id: LicenseInvalidation.from_record(row) for row in rows}


def _invalidated_above(session, judge_config_hash: str, dataset_id: str, version: int) -> list[JudgeLicenseInvalidationRecord]:
    """The invalidations of the judge's licenses on versions of the calibration dataset newer than ``version``
    (0: every version), newest license first."""
    return list(session.scalars(select(JudgeLicenseInvalidationRecord).where(
        JudgeLicenseInvalidationRecord.judge_config_hash == judge_config_hash,
        JudgeLicenseInvalidationRecord.calibration_dataset_id == dataset_id,
        JudgeLicenseInvalidationRecord.calibration_version > version).order_by(JudgeLicenseInvalidationRecord.license_id.desc())))


def current_license(platform: EvalPlatform, judge_config_hash: str, calibration: EvalDataset,
                    requirement: LicenseRequirement) -> JudgeLicense | None:
    """The newest check of the judge on this calibration version measured as ``requirement`` asks that still
    counts: not invalidated, and made after any invalidated license of the judge on a newer version (a version
    that became the newest active one again after a contamination needs a new check)."""
    with platform.registry.session() as session:
        rows = list(session.scalars(select(JudgeLicenseRecord).where(
            JudgeLicenseRecord.judge_config_hash == judge_config_hash,
            JudgeLicenseRecord.calibration_dataset_id == calibration.dataset_id,
            JudgeLicenseRecord.calibration_version == calibration.version,
            JudgeLicenseRecord.calibration_content_hash == calibration.content_hash,
        ).order_by(JudgeLicenseRecord.id.desc())))
        invalid = _invalidations(session, [r.id for r in rows])
        superseded_up_to = session.scalar(select(func.max(JudgeLicenseInvalidationRecord.license_id)).where(
            JudgeLicenseInvalidationRecord.judge_config_hash == judge_config_hash,
            JudgeLicenseInvalidationRecord.calibration_dataset_id == calibration.dataset_id,
            JudgeLicenseInvalidationRecord.calibration_version > calibration.version)) or 0
    found = [JudgeLicense.from_record(r) for r in rows if r.id not in invalid and r.id > superseded_up_to]
    return next((lic for lic in found if lic.measured_as(requirement)), None)


def invalidate_licenses_on(session, calibration: EvalDataset, reason: str, invalidated_by: str,
                           incident_id: int | None = None) -> list[JudgeLicense]:
    """Record, in the caller's unit of work, an invalidation of every license on this calibration version that has
    none yet (the version was found contaminated); the license rows are not edited. Returns them, invalidated."""
    records = list(session.scalars(select(JudgeLicenseRecord).where(
        JudgeLicenseRecord.calibration_dataset_id == calibration.dataset_id,
        JudgeLicenseRecord.calibration_version == calibration.version).order_by(JudgeLicenseRecord.id)))
    already = _invalidations(session, [r.id for r in records])
    out = []
    for record in records:
        if record.id in already:
            continue
        row = JudgeLicenseInvalidationRecord(
            license_id=record.id, judge_config_hash=record.judge_config_hash, calibration_dataset_id=record.calibration_dataset_id,
            calibration_version=record.calibration_version, incident_id=incident_id, reason=reason,
            invalidated_by=invalidated_by[:200], invalidated_at=utcnow())
        session.add(row)
        out.append(JudgeLicense.from_record(record, LicenseInvalidation.from_record(row)))
    session.flush()
    return out


def licenses_invalidated_by(platform: EvalPlatform, incident_id: int) -> list[JudgeLicense]:
    """The licenses a contamination incident invalidated (oldest first)."""
    with platform.registry.session() as session:
        rows = list(session.scalars(select(JudgeLicenseInvalidationRecord).where(
            JudgeLicenseInvalidationRecord.incident_id == incident_id).order_by(JudgeLicenseInvalidationRecord.license_id)))
        records = {r.id: r for r in session.scalars(select(JudgeLicenseRecord).where(
            JudgeLicenseRecord.id.in_([row.license_id for row in rows])))} if rows else {}
        return [JudgeLicense.from_record(records[row.license_id], LicenseInvalidation.from_record(row)) for row in rows]


def suite_judge(suite: SuiteDefinition) -> JudgeConfig | None:
    """The judge of the suite's ``judge_score`` metrics (None: the suite has none)."""
    if not needs_judge(suite) or not (suite.llm or {}).get("judge"):
        return None
    return JudgeConfig.from_dict(suite.llm["judge"])  # type: ignore[index]


def license_status(platform: EvalPlatform, suite_record: MetricSuite) -> LicenseStatus | None:
    """The suite's judge against the suite's requirement now (None: the suite has no judge_score metric)."""
    suite = platform.suite_definition(suite_record)
    config = suite_judge(suite)
    if config is None:
        return None
    key, requirement = judge_key(config), LicenseRequirement.of_suite(suite)

    def status(calibration: str | None, found: JudgeLicense | None, licensed: bool, message: str) -> LicenseStatus:
        return LicenseStatus(suite_record.key, key, config.config_hash, requirement, calibration, found, licensed, message)

    if requirement is None:
        return status(None, None, False, f"judge {key}: release-blocking suite {suite_record.key} states no llm.judge_license "
                                         "(calibration_dataset, measure, min_lower_bound): an unlicensed judge may not gate a release")
    calibration = newest_calibration(platform, requirement.calibration_dataset)
    with platform.registry.session() as session:
        invalidated = _invalidated_above(session, config.config_hash, requirement.calibration_dataset,
                                         0 if calibration is None else calibration.version)
    lost = f"judge {key}: license {invalidated[0].license_id} invalidated ({invalidated[0].reason}); " if invalidated else ""
    if calibration is None:
        if lost:
            return status(None, None, False, f"{lost}calibration dataset {requirement.calibration_dataset} has no active "
                                             "calibration version left to license the judge on")
        return status(None, None, False, f"judge {key}: never checked: calibration dataset {requirement.calibration_dataset} "
                                         "has no active version with role calibration")
    found = current_license(platform, config.config_hash, calibration, requirement)
    if found is None and lost:
        return status(calibration.key, None, False, f"{lost}not checked again on the newest active calibration version "
                                                    f"{calibration.key} (evalp judges license --suite {suite_record.suite_id})")
    if found is None:
        return status(calibration.key, None, False, f"judge {key}: never checked on calibration dataset {calibration.key} "
                                                    f"({requirement.measure} at {_percent(requirement.confidence)}; "
                                                    f"evalp judges license --suite {suite_record.suite_id})")
    holds = found.holds(requirement)
    return status(calibration.key, found, holds, found.figures(requirement.min_lower_bound))


def license_blocker(platform: EvalPlatform, suite_record: MetricSuite) -> Blocker | None:
    """``unlicensed_judge`` when a release-blocking suite's judge holds no license under the suite's requirement on
    the newest active calibration version (exploratory suites and suites without a judge: None)."""
    if suite_record.purpose != SuitePurpose.RELEASE_BLOCKING:
        return None
    status = license_status(platform, suite_record)
    if status is None or status.licensed:
        return None
    return Blocker(BlockerKind.UNLICENSED_JUDGE, status.message)


# what to license, and the gates waiting on it ------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeToLicense:
    """A judge version the registered suites ask to be licensed, with each requirement they state."""

    judge_key: str
    config: JudgeConfig
    requirements: tuple[LicenseRequirement, ...]
    suites: tuple[str, ...]


def judges_to_license(platform: EvalPlatform, suites: Iterable[MetricSuite] | None = None) -> dict[str, JudgeToLicense]:
    """Every judge version of the suites (default: all registered) that state an ``llm.judge_license``."""
    found: dict[str, tuple[JudgeConfig, dict[tuple, LicenseRequirement], list[str]]] = {}
    for record in suites if suites is not None else platform.suites():
        definition = platform.suite_definition(record)
        config, requirement = suite_judge(definition), LicenseRequirement.of_suite(definition)
        if config is None or requirement is None:
            continue
        entry = found.setdefault(judge_key(config), (config, {}, []))
        measured = (requirement.calibration_dataset, requirement.measure, requirement.confidence)
        known = entry[1].get(measured)
        if known is None or requirement.min_lower_bound > known.min_lower_bound:  # the row records the strictest bound
            entry[1][measured] = requirement
        entry[2].append(record.key)
    return {key: JudgeToLicense(key, config, tuple(reqs.values()), tuple(names)) for key, (config, reqs, names) in found.items()}


def unchecked_judges(platform: EvalPlatform) -> list[str]:
    """``JUDGE_KEY on CALIBRATION@V`` for each check a suite's license requirement needs and nobody made yet on the
    newest active calibration version: what the judge-license sensor still has to run (or what failed)."""
    out = []
    for key, wanted in sorted(judges_to_license(platform).items()):
        for requirement in wanted.requirements:
            calibration = newest_calibration(platform, requirement.calibration_dataset)
            if calibration is not None and current_license(platform, wanted.config.config_hash, calibration, requirement) is None:
                out.append(f"{key} on {calibration.key}")
    return out


def newest_incident_id(platform: EvalPlatform) -> int:
    """The id of the newest incident recorded (0: none)."""
    with platform.registry.session() as session:
        return session.scalar(select(func.max(Incident.id))) or 0


def contaminated_calibrations(platform: EvalPlatform, after_incident_id: int = 0) -> tuple[dict[str, int], int]:
    """The calibration datasets a version of which was found contaminated by an incident after
    ``after_incident_id``, each with the newest such incident's id, and the newest incident id of all (what a
    reader of the incidents has read up to): their judges need a check on the newest version still active."""
    newest = newest_incident_id(platform)
    with platform.registry.session() as session:
        found = list(session.scalars(select(Incident).where(Incident.id > after_incident_id,
                                                            Incident.kind == IncidentKind.DATASET_CONTAMINATION)))
    out: dict[str, int] = {}
    for incident in found:
        try:
            dataset = platform.dataset(incident.target)
        except NotFound:
            continue
        if dataset.role == DatasetRole.CALIBRATION:
            out[dataset.dataset_id] = max(out.get(dataset.dataset_id, 0), incident.id)
    return out, max([newest, after_incident_id, *(incident.id for incident in found)])


def license_judge_version(platform: EvalPlatform, key: str, computed_by: str = "") -> list[JudgeLicense]:
    """Check the judge version ``key`` on the newest active version of every calibration dataset its suites
    name (one check per calibration dataset, measure and confidence). Refused when no suite uses the key."""
    wanted = judges_to_license(platform).get(key)
    if wanted is None:
        raise NotFound("judge version with a judge_license requirement", key)
    out = []
    for requirement in wanted.requirements:
        calibration = newest_calibration(platform, requirement.calibration_dataset)
        if calibration is None:
            raise InvalidInput("llm.judge_license.calibration_dataset",
                               f"{requirement.calibration_dataset} has no active version with role calibration")
        out.append(compute_license(platform, wanted.config, calibration, requirement, computed_by=computed_by))
    return out


def license_suite_judge(platform: EvalPlatform, suite_record: MetricSuite, computed_by: str = "") -> JudgeLicense:
    """Check the suite's judge under the suite's requirement now (``evalp judges license --suite S``)."""
    suite = platform.suite_definition(suite_record)
    config, requirement = suite_judge(suite), LicenseRequirement.of_suite(suite)
    if config is None:
        raise InvalidInput("suite", f"{suite_record.key} has no judge_score metric: there is no judge to license")
    if requirement is None:
        raise InvalidInput("llm.judge_license", f"{suite_record.key} states no judge_license requirement")
    calibration = newest_calibration(platform, requirement.calibration_dataset)
    if calibration is None:
        raise InvalidInput("llm.judge_license.calibration_dataset",
                           f"{requirement.calibration_dataset} has no active version with role calibration")
    llm = suite.llm or {}
    return compute_license(platform, config, calibration, requirement, prices=PriceTable.from_dict(llm.get("prices")),
                           computed_by=computed_by, concurrency=llm.get("concurrency", 8))
