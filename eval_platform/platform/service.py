"""The platform's operations: what the CLI, the HTTP API and the Dagster assets call.

``EvalPlatform`` ties the registry and the artifact store of one installation together. Every operation
validates its whole input before its first write, so a rejected request leaves both unchanged.

Why one module of ~680 lines: it is the one class every higher layer receives, and its methods are the
registry's write paths (datasets, suites, models and their eval plans, the run queue, gate records), each
short and sharing the same session and store; what is not a write path of these rows lives beside it
(``requests`` for orchestrator requests, ``aggregates`` for aggregates-only views).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar, cast

import pandas as pd
from sqlalchemy import Select, bindparam, func, select

from eval_platform.core.config import PlatformConfig
from eval_platform.core.errors import Conflict, InvalidInput, NotFound
from eval_platform.core.hashing import canonical_table, canonical_table_hash, json_hash
from eval_platform.core.installation import InstallationConfig, installation_config
from eval_platform.core.keys import VersionedKey, validate_id
from eval_platform.core.states import (
    ACTIVE_STATES,
    CANARY_TRIGGER,
    DatasetRole,
    DatasetStatus,
    GateScope,
    IncidentKind,
    LedgerKind,
    RunStatus,
)
from eval_platform.core.store import DATASETS, ArtifactStore
from eval_platform.core.tasks import check_access_policy, check_label_policy, get_task_type
from eval_platform.datasets.calibration import check_calibration_dataset
from eval_platform.datasets.leakage import (
    TRAINING_MANIFESTS,
    DuplicateReport,
    LeakageReport,
    duplicate_report,
    leakage_report,
    parse_cutoff,
    parse_time_column,
    read_training_manifest,
)
from eval_platform.datasets.ratings import rating_schema
from eval_platform.datasets.validation import check_finite_values, validate_frame
from eval_platform.llm.judge import JudgeConfig
from eval_platform.metrics.multiclass import multilabel_label_set
from eval_platform.models.files import check_model_file, check_predictions_for_dataset, load_model, smoke_test
from eval_platform.platform.aggregates import check_aggregate_use
from eval_platform.registry import (
    EvalDataset,
    EvalPlanEntry,
    EvalRun,
    GateDecisionRecord,
    GateOverride,
    Incident,
    MetricSuite,
    Model,
    Promotion,
    Registry,
    ledger,
)
from eval_platform.registry import access as acl
from eval_platform.registry.access import Principal
from eval_platform.registry.schema import utcnow
from eval_platform.suites.definition import SuiteDefinition, parse_suite, stored_suite_definition

T = TypeVar("T")

#: every attempt of one (model, dataset, suite) evaluation, newest first; built once, as building it costs more
#: than running it (``POST /v1/eval-runs`` runs it on every new request)
_ATTEMPTS = select(EvalRun).where(
    EvalRun.model_name == bindparam("model_name"), EvalRun.model_version == bindparam("model_version"),
    EvalRun.dataset_id == bindparam("dataset_id"), EvalRun.dataset_version == bindparam("dataset_version"),
    EvalRun.suite_id == bindparam("suite_id"), EvalRun.suite_version == bindparam("suite_version")).order_by(EvalRun.attempt.desc())



@dataclass(frozen=True)
class Registered:
    """What a registration returns: the record, and whether it was created (False: identical content)."""

    record: object
    created: bool


class EvalPlatform:
    """One installation of the platform: its registry, its artifact store and the operator's allow-lists."""

    def __init__(self, config: PlatformConfig):
        self.config = config
        #: the operator's allow-lists (LLM endpoints, expandable variables, skops types), read once per process
        self.installation: InstallationConfig = installation_config(config.home)
        self.registry = Registry.open(config.db_url)
        self.store = ArtifactStore(config.store_url)
        self._datasets: dict[str, pd.DataFrame] = {}  # content hash -> rows, oldest first
        self._datasets_lock = threading.Lock()  # the API serves requests on several threads

    @classmethod
    def open(cls, home=None, db_url=None, store_url=None) -> EvalPlatform:
        return cls(PlatformConfig.resolve(home, db_url, store_url))

    def close(self) -> None:
        self.registry.dispose()

    # datasets -----------------------------------------------------------------------------------------
    def register_dataset(
        self,
        dataset_id: str,
        frame: pd.DataFrame,
        task_type: str,
        label_policy: str,
        access_policy: dict | str | None = None,
        slice_columns: Sequence[str] = (),
        feature_columns: Sequence[str] | None = None,
        description: str = "",
        principal: Principal | None = None,
        time_column: str | None = None,
        role: str = DatasetRole.STANDARD,
        rating_columns: Sequence[str] | None = None,
        rating_scale: dict | None = None,
        lineage: dict | None = None,
    ) -> Registered:
        """Validate and store a dataset; identical content and metadata return the existing version.

        ``time_column``: the column of each example's time (timestamps or ISO 8601 text, no nulls; naive
        times are UTC), kept in the schema; the leakage check counts examples at or before a model's
        training cutoff by it (:mod:`eval_platform.datasets.leakage`).

        ``role`` (``standard``, ``golden``, ``canary`` or ``calibration``: human verdicts that license a judge,
        :mod:`eval_platform.datasets.calibration`) is part of the version's metadata: a golden or canary
        version is re-evaluated on the promoted model versions by the canary schedule (``evaluation.canaries``).

        ``rating_columns`` (one column per human rater) and ``rating_scale`` declare human ratings
        (:mod:`eval_platform.datasets.ratings`), which the rating metrics of a suite read.

        ``lineage`` records where a version the platform made came from (a review-queue publish: its parent
        version, review items and reviewers); kept on the version, not part of its hash.

        ``principal`` is who acts (None: the local operator, an admin): a new version of a dataset id
        another team owns is refused before anything is read or written (:func:`eval_platform.registry.access.check_owner`)."""
        validate_id(dataset_id, "dataset_id")
        if principal is not None and not principal.operator and dataset_id.startswith("experiment-"):
            raise InvalidInput("dataset_id", "ids starting with 'experiment-' hold experiments' online data: ingest it instead")
        owner = acl.require_owner(self, principal, acl.DATASET, dataset_id, "register a version of it", "dataset_id")
        task = get_task_type(task_type)
        check_label_policy(label_policy)
        access = check_access_policy(access_policy)
        role = check_dataset_role(role)
        if len(frame) == 0:
            raise InvalidInput("data", "the dataset has no rows")
        if role == DatasetRole.CALIBRATION:
            check_calibration_dataset(frame, task.name, label_policy)
        schema = self._dataset_schema(frame, task, slice_columns, feature_columns, time_column, rating_columns)
        if time_column is not None:
            schema = self._with_time_column(frame, schema, time_column)
        ratings = rating_schema(frame, rating_columns, rating_scale, (*task.id_columns, task.label_column, *task.extra_required))
        if ratings is not None:  # only when declared: the version hash of a dataset without raters is unchanged
            schema["ratings"] = ratings
        # the fast numpy check first: an infinite feature is named (column, row) before Great Expectations runs
        check_finite_values(frame, schema["feature_columns"])
        report = validate_frame(frame, task, feature_columns=schema["feature_columns"])
        report.raise_for_failures()
        if task.name == "multilabel_classification" and task.label_column in frame.columns:
            multilabel_label_set(frame[task.label_column])  # one list of labels per row: refused here, not at evaluation
        # one Arrow copy of the rows, hashed and then written as is (not converted and compacted twice)
        table = canonical_table(frame)
        content_hash = canonical_table_hash(table)
        version_hash = json_hash({"content": content_hash, "task_type": task.name, "label_policy": label_policy,
                                  "access_policy": access, "schema": schema,
                                  # only a non-standard role enters the hash: every version registered before roles keeps its hash
                                  **({"role": role} if role != DatasetRole.STANDARD else {})})
        with self.registry.session() as session:
            existing = session.scalar(select(EvalDataset).where(
                EvalDataset.dataset_id == dataset_id, EvalDataset.version_hash == version_hash))
            if existing is not None:
                return Registered(existing, False)
        stored_before = self.store.has_table(DATASETS, content_hash)
        self.store.put_canonical_table(DATASETS, table, content_hash)
        try:
            with self.registry.session() as session:
                version = (session.scalar(select(func.max(EvalDataset.version)).where(EvalDataset.dataset_id == dataset_id)) or 0) + 1
                record = EvalDataset(
                    dataset_id=dataset_id, version=version, task_type=task.name, label_policy=label_policy,
                    access_policy=access, content_hash=content_hash, version_hash=version_hash, row_count=len(frame),
                    schema=schema, description=description, status=DatasetStatus.ACTIVE, owner_team=owner,
                    role=role, lineage=lineage,
                )
                session.add(record)
            return Registered(record, True)
        except Exception:
            if not stored_before:
                self.store.delete_table(DATASETS, content_hash)
            raise

    @staticmethod
    def _dataset_schema(frame, task, slice_columns, feature_columns, time_column=None, rating_columns=None) -> dict:
        reserved = {*task.id_columns, task.label_column, *task.extra_required}
        if time_column is not None and feature_columns is None:
            # never a default feature (a numeric one is refused as a time column, with its own reason)
            reserved = reserved | {time_column}
        raters = set(rating_columns or ()) if not isinstance(rating_columns, str) else set()
        for column in slice_columns:
            if column not in frame.columns:
                raise InvalidInput("slice_columns", f"column {column!r} is not in the dataset")
            if column in reserved:
                raise InvalidInput("slice_columns", f"column {column!r} is an id or label column")
        if feature_columns is None:
            feature_columns = [c for c in frame.columns if c not in reserved and c not in slice_columns and c not in raters
                               and pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]
        else:
            for column in feature_columns:
                if column not in frame.columns:
                    raise InvalidInput("feature_columns", f"column {column!r} is not in the dataset")
                if column in reserved:
                    raise InvalidInput("feature_columns", f"column {column!r} is an id or label column")
        return {
            "id_columns": list(task.id_columns),
            "label_column": task.label_column,
            "feature_columns": list(feature_columns),
            "slice_columns": list(slice_columns),
            "columns": {str(c): str(frame[c].dtype) for c in frame.columns},
        }

    @staticmethod
    def _with_time_column(frame: pd.DataFrame, schema: dict, time_column: str) -> dict:
        """The schema with its ``time_column`` (only when declared: the version hash of a dataset registered
        without one stays what it was), after checking the column."""
        if not isinstance(time_column, str) or not time_column:
            raise InvalidInput("time_column", "must be a column name")
        if time_column in {*schema["id_columns"], schema["label_column"]}:
            raise InvalidInput("time_column", f"column {time_column!r} is an id or label column")
        if time_column in schema["feature_columns"]:
            raise InvalidInput("time_column", f"column {time_column!r} is a feature column")
        parse_time_column(frame, time_column)
        return schema | {"time_column": time_column}

    def duplicates_of(self, dataset: EvalDataset) -> DuplicateReport:
        """Exact duplicates of a dataset version: within it, between its slices and with its earlier versions."""
        with self.registry.session() as session:
            earlier = list(session.scalars(select(EvalDataset).where(
                EvalDataset.dataset_id == dataset.dataset_id, EvalDataset.version < dataset.version).order_by(EvalDataset.version)))
        return duplicate_report(self.load_dataset(dataset), dataset.schema,
                                {e.key: (self.store.get_table(DATASETS, e.content_hash), e.schema) for e in earlier})

    def _one(self, query: Select[tuple[T]], kind: str, name: str) -> T:
        """The record ``query`` finds, or :class:`NotFound` naming the ``kind`` of record and the ``name`` asked for."""
        with self.registry.session() as session:
            record = session.scalar(query)
        if record is None:
            raise NotFound(kind, name)
        return record

    def dataset(self, key: str) -> EvalDataset:
        dataset_id, version = VersionedKey.parse(key, "dataset")
        return self._one(select(EvalDataset).where(EvalDataset.dataset_id == dataset_id, EvalDataset.version == version), "dataset", key)

    def latest_dataset(self, dataset_id: str, usable_only: bool = True) -> EvalDataset:
        query = select(EvalDataset).where(EvalDataset.dataset_id == dataset_id)
        if usable_only:
            query = query.where(EvalDataset.status == DatasetStatus.ACTIVE)
        return self._one(query.order_by(EvalDataset.version.desc()).limit(1), "usable dataset" if usable_only else "dataset", dataset_id)

    def datasets(self) -> list[EvalDataset]:
        with self.registry.session() as session:
            return list(session.scalars(select(EvalDataset).order_by(EvalDataset.dataset_id, EvalDataset.version)))

    def load_dataset(self, record: EvalDataset) -> pd.DataFrame:
        """The dataset's rows (a copy: callers may add columns). Content is immutable, so the last few
        versions read are kept: one eval run reads its dataset for the metrics and again for the
        comparison, and each read would otherwise re-read and re-verify the whole artifact."""
        with self._datasets_lock:
            cached = self._datasets.get(record.content_hash)
        if cached is None:
            cached = self.store.get_table(DATASETS, record.content_hash)
            with self._datasets_lock:
                self._datasets[record.content_hash] = cached
                while len(self._datasets) > 2:
                    self._datasets.pop(next(iter(self._datasets)))
        # a shallow copy: pandas copies on write, so a caller's new or changed column never reaches the
        # cached frame, and a 10M-row dataset is not duplicated on every read
        return cached.copy(deep=False)

    # suites -------------------------------------------------------------------------------------------
    def register_suite(self, raw: dict, principal: Principal | None = None) -> Registered:
        """A suite version (identical definitions return the existing one). A new version of a suite id
        another team owns is refused (``principal`` None: the local operator, an admin)."""
        suite = parse_suite(raw)
        self._check_judge_endpoints(suite)
        owner = acl.require_owner(self, principal, acl.SUITE, suite.suite_id, "register a version of it", "suite_id")
        normalised = suite.as_json()
        digest = json_hash(normalised)
        with self.registry.session() as session:
            existing = session.scalar(select(MetricSuite).where(
                MetricSuite.suite_id == suite.suite_id, MetricSuite.definition_hash == digest))
            if existing is not None:
                return Registered(existing, False)
            version = (session.scalar(select(func.max(MetricSuite.version)).where(MetricSuite.suite_id == suite.suite_id)) or 0) + 1
            record = MetricSuite(suite_id=suite.suite_id, version=version, purpose=suite.purpose, task_type=suite.task_type,
                                 metric_defs=normalised, definition_hash=digest, owner_team=owner)
            session.add(record)
        return Registered(record, True)

    def _check_judge_endpoints(self, suite: SuiteDefinition) -> None:
        """A suite's judges call endpoints its author names: the operator's allow-lists decide (here, and again
        when the calls are made)."""
        llm = suite.llm or {}
        for section in ("judge", "pairwise_judge"):
            if llm.get(section):
                self.installation.check_endpoint(JudgeConfig.from_dict(llm[section]).endpoint, f"llm.{section}.endpoint")

    def suite(self, key: str) -> MetricSuite:
        suite_id, version = VersionedKey.parse(key, "suite")
        return self._one(select(MetricSuite).where(MetricSuite.suite_id == suite_id, MetricSuite.version == version), "metric suite", key)

    def latest_suite(self, suite_id: str) -> MetricSuite:
        return self._one(select(MetricSuite).where(MetricSuite.suite_id == suite_id).order_by(MetricSuite.version.desc()).limit(1),
                         "metric suite", suite_id)

    def suites(self) -> list[MetricSuite]:
        with self.registry.session() as session:
            return list(session.scalars(select(MetricSuite).order_by(MetricSuite.suite_id, MetricSuite.version)))

    @staticmethod
    def suite_definition(record: MetricSuite) -> SuiteDefinition:
        """The parsed definition of a suite version, parsed once per version (and content hash) and shared."""
        return stored_suite_definition(record.key, record.definition_hash, record.metric_defs)

    # models -------------------------------------------------------------------------------------------
    def register_model(
        self,
        name: str,
        model_file: str | Path,
        kind: str = "sklearn",
        trusted_types: Iterable[str] = (),
        eval_plan: Sequence[tuple[str, str]] = (),
        description: str = "",
        principal: Principal | None = None,
        training_cutoff: str | datetime | None = None,
        training_manifest: str | Path | bytes | None = None,
    ) -> Registered:
        """Register a model file as the next version of ``name`` and queue the evals of its plan.

        ``training_cutoff`` (ISO 8601; naive is UTC) is the newest example time the model trained on and
        ``training_manifest`` (a file or its bytes: Parquet with an ``example_hash`` column or one hash a
        line) the content hashes of its training examples, stored by content hash; each eval run counts the
        dataset's examples they cover (:mod:`eval_platform.datasets.leakage`). The same file registered again
        with another cutoff or manifest is a :class:`Conflict` (a version's leakage facts never change).

        ``eval_plan`` adds (dataset_id, suite_id) pairs to the name's plan before the version is queued.
        The same file registered again returns the existing version and queues nothing.

        ``principal`` is who acts (None: the local operator, an admin). Before the file is even read: the
        name must be free or its team's, and every dataset of the plan, the entries it inherits included,
        must be one the team may use (an LLM candidate is sent the rows, so it needs row access).
        """
        validate_id(name, "name")
        cutoff = parse_cutoff(training_cutoff)
        manifest = read_training_manifest(self._manifest_bytes(training_manifest)) if training_manifest is not None else None
        owner = acl.require_owner(self, principal, acl.MODEL, name, "register a version of it or change its eval plan", "name")
        existing_plan = {(e.dataset_id, e.suite_id) for e in self.eval_plan(name)}
        # JSON gives the pairs as lists: tuples, to compare with the existing plan's
        eval_plan = [cast(tuple[str, str], tuple(entry)) for entry in eval_plan]
        for entry in (*eval_plan, *sorted(existing_plan)):
            self._check_plan_access(principal, kind, entry[0], inherited=entry in existing_plan, suite_id=entry[1])
        # the caller's trusted types within the operator's list, before the file is opened
        trusted_types = sorted(set(self.installation.check_trusted_types(trusted_types)))
        path = Path(model_file).expanduser().resolve()
        digest, _ = check_model_file(path, kind, trusted_types, self.installation)
        loaded = load_model(path, digest, trusted_types, kind, self.installation)
        smoke_test(loaded, kind)
        # entries already in the plan stay, even when their dataset has no usable version any more
        plan = [entry if entry in existing_plan else self._check_plan_entry(name, *entry) for entry in eval_plan]
        if kind == "predictions":
            self._check_predictions_file(name, digest, loaded, plan)
        manifest_hash = canonical_table_hash(manifest) if manifest is not None else None
        stored_before = manifest_hash is None or self.store.has_table(TRAINING_MANIFESTS, manifest_hash)
        try:
            with self.registry.session() as session:
                for dataset_id, suite_id in plan:
                    if session.scalar(select(EvalPlanEntry).where(EvalPlanEntry.model_name == name, EvalPlanEntry.dataset_id == dataset_id,
                                                                  EvalPlanEntry.suite_id == suite_id)) is None:
                        session.add(EvalPlanEntry(model_name=name, dataset_id=dataset_id, suite_id=suite_id))
                existing = session.scalar(select(Model).where(Model.name == name, Model.file_hash == digest))
                if existing is not None:
                    _check_same_training_facts(existing, cutoff, manifest_hash)
                    return Registered(existing, False)
                if manifest is not None:
                    self.store.put_canonical_table(TRAINING_MANIFESTS, manifest, cast(str, manifest_hash))
                version = (session.scalar(select(func.max(Model.version)).where(Model.name == name)) or 0) + 1
                record = Model(name=name, version=version, kind=kind, uri=str(path), file_hash=digest,
                               trusted_types=trusted_types, description=description, owner_team=owner,
                               training_cutoff=cutoff, training_manifest_hash=manifest_hash)
                session.add(record)
                session.flush()
                self._queue_plan(session, record, trigger="registration")
        except BaseException:
            # a refused registration leaves no manifest it stored (the model file is the caller's)
            if not stored_before and manifest_hash is not None:
                self.store.delete_table(TRAINING_MANIFESTS, manifest_hash)
            raise
        return Registered(record, True)

    @staticmethod
    def _manifest_bytes(manifest: str | Path | bytes) -> bytes:
        """A manifest argument's bytes: a path's (refused naming the field when unreadable) or the bytes given."""
        if isinstance(manifest, bytes):
            return manifest
        path = Path(manifest).expanduser()
        if not path.is_file():
            raise InvalidInput("training_manifest", f"{manifest} does not exist")
        return path.read_bytes()

    def training_manifest(self, model: Model) -> pd.Series | None:
        """The content hashes of the model's training examples (None: it has no manifest)."""
        if not model.training_manifest_hash:
            return None
        return self.store.get_table(TRAINING_MANIFESTS, model.training_manifest_hash)["example_hash"]

    def leakage_of(self, model: Model, dataset: EvalDataset) -> LeakageReport:
        """The dataset version's examples the model version may have trained on (its cutoff and manifest)."""
        manifest = self.training_manifest(model)
        return leakage_report(self.load_dataset(dataset), dataset.schema, model.training_cutoff,
                              manifest.tolist() if manifest is not None else None)

    def _check_predictions_file(self, name: str, digest: str, table: pd.DataFrame, plan: Sequence[tuple[str, str]]) -> None:
        """A predictions file is checked against every dataset its registration would queue an eval on (the
        name's plan with ``plan`` added, each entry's newest usable dataset version, as ``_queue_plan`` picks),
        so a file evaluation would refuse is refused before the model, its plan and its runs are written."""
        with self.registry.session() as session:
            if session.scalar(select(Model.id).where(Model.name == name, Model.file_hash == digest)) is not None:
                return  # the same file again: the existing version, nothing queued
        entries = dict.fromkeys([*((e.dataset_id, e.suite_id) for e in self.eval_plan(name)), *plan])
        checked: set[str] = set()
        for dataset_id, suite_id in entries:
            try:
                dataset, _ = self.latest_dataset(dataset_id), self.latest_suite(suite_id)
            except NotFound:
                continue  # _queue_plan skips the entry too
            if dataset.key not in checked:
                checked.add(dataset.key)
                check_predictions_for_dataset(table, self.load_dataset(dataset), dataset.schema, dataset.task_type, dataset.key)

    def check_predictions_cover(self, model: Model, dataset: EvalDataset) -> None:
        """A run asked for by hand on a dataset the registration did not check: a ``predictions`` model's file
        is checked against it before the run is queued (other kinds: nothing to check)."""
        if model.kind != "predictions":
            return
        check_predictions_for_dataset(self.load_model(model), self.load_dataset(dataset), dataset.schema, dataset.task_type, dataset.key)

    def _check_plan_access(self, principal: Principal | None, kind: str, dataset_id: str, inherited: bool,
                           suite_id: str | None = None) -> None:
        """Refuse a plan entry on a dataset the principal's team may not use; a dataset it may not know of
        answers as an absent one would (new entries) or without its name (inherited ones). Refusals are logged."""
        if principal is None or principal.operator:
            return
        with self.registry.session() as session:
            dataset = session.scalar(select(EvalDataset).where(EvalDataset.dataset_id == dataset_id)
                                     .order_by(EvalDataset.version.desc()).limit(1))
        if dataset is None:
            return  # absent: _check_plan_entry says so
        # an LLM candidate is sent every prompt and reference: that is reading the rows
        action = acl.EXAMPLES if kind == "openai_chat" else acl.AGGREGATE_READ
        seen = acl.visibility(dataset.access_policy, principal.team)
        if seen == acl.ROWS:
            return
        if seen == acl.AGGREGATES and action == acl.AGGREGATE_READ:
            # aggregates only: the suite may not send the rows to a judge nor slice on undeclared columns
            try:
                suite = self.suite_definition(self.latest_suite(suite_id)) if suite_id else None
            except NotFound:
                suite = None  # absent: _check_plan_entry says so
            check_aggregate_use(self, principal, dataset, suite, kind, field="eval_plan")
            return
        acl.record_access(self, principal, action, dataset.key, acl.DENIED,
                             detail="inherited eval plan" if inherited else "eval plan")
        if inherited:
            raise acl.Forbidden(f"the eval plan of this model name includes a dataset team {principal.team!r} may not "
                                   f"{'send to a model' if seen == acl.AGGREGATES else 'use'}", field="eval_plan")
        if seen == acl.NOTHING:
            raise NotFound("usable dataset", dataset_id)  # word for word what an absent dataset gets
        raise acl.Forbidden(f"team {principal.team!r} may read only the aggregates of dataset {dataset_id}: an "
                               f"{kind} model would be sent its rows", field="eval_plan")

    def _check_plan_entry(self, model_name: str, dataset_id: str, suite_id: str) -> tuple[str, str]:
        dataset = self.latest_dataset(dataset_id)
        suite = self.latest_suite(suite_id)
        if dataset.task_type != suite.task_type:
            raise InvalidInput("eval_plan", f"suite {suite.key} is for {suite.task_type} but dataset {dataset.key} is {dataset.task_type}")
        return dataset_id, suite_id

    def eval_plan(self, model_name: str) -> list[EvalPlanEntry]:
        with self.registry.session() as session:
            return list(session.scalars(select(EvalPlanEntry).where(EvalPlanEntry.model_name == model_name).order_by(EvalPlanEntry.id)))

    def model(self, key: str) -> Model:
        name, version = VersionedKey.parse(key, "model")
        return self._one(select(Model).where(Model.name == name, Model.version == version), "model", key)

    def models(self) -> list[Model]:
        with self.registry.session() as session:
            return list(session.scalars(select(Model).order_by(Model.name, Model.version)))

    def load_model(self, record: Model):
        return load_model(record.uri, record.file_hash, record.trusted_types, record.kind, self.installation)

    # eval runs ----------------------------------------------------------------------------------------
    def _queue_plan(self, session, model: Model, trigger: str) -> list[EvalRun]:
        runs = []
        for entry in session.scalars(select(EvalPlanEntry).where(EvalPlanEntry.model_name == model.name).order_by(EvalPlanEntry.id)):
            dataset = session.scalar(select(EvalDataset).where(EvalDataset.dataset_id == entry.dataset_id, EvalDataset.status == DatasetStatus.ACTIVE)
                                     .order_by(EvalDataset.version.desc()).limit(1))
            suite = session.scalar(select(MetricSuite).where(MetricSuite.suite_id == entry.suite_id)
                                   .order_by(MetricSuite.version.desc()).limit(1))
            if dataset is None or suite is None:
                continue
            run = self._queue_run(session, model, dataset, suite, trigger=trigger)
            if run is not None:
                runs.append(run)
        return runs

    def _queue_run(self, session, model: Model, dataset: EvalDataset, suite: MetricSuite, trigger: str,
                   baseline: str | None = None, recompute: bool = False) -> EvalRun | None:
        """Queue one (model, dataset, suite) evaluation unless it already has a live run (then ``None``)."""
        if dataset.status != DatasetStatus.ACTIVE:
            raise Conflict(f"dataset {dataset.key} is {dataset.status}: no new runs may use it")
        attempts = list(session.scalars(_ATTEMPTS, {"model_name": model.name, "model_version": model.version,
                                                    "dataset_id": dataset.dataset_id, "dataset_version": dataset.version,
                                                    "suite_id": suite.suite_id, "suite_version": suite.version}))
        # a canary run is a re-measurement beside the triple's own run: it neither stands for it nor is superseded by it
        previous = [r for r in attempts if r.trigger != CANARY_TRIGGER]
        live = [r for r in previous if r.status in ACTIVE_STATES]
        if live and not recompute:
            if baseline is not None:
                self._honour_baseline(session, live[0], model, dataset, suite, baseline)
            return None
        # A new attempt supersedes the failed ones: the model version's gate is decided from the live runs, so
        # a failure that a rerun healed no longer holds it at no_decision.
        for run in previous:
            if run.status == RunStatus.FAILED:
                run.status = RunStatus.SUPERSEDED
                run.status_reason = f"superseded by a new attempt ({trigger}); it had failed: {run.status_reason or ''}"[:2000]
        if recompute:
            for run in live:
                if run.status == RunStatus.RUNNING:
                    raise Conflict(f"run {run.run_id} is running; recompute it once it has finished")
                run.status, run.status_reason = RunStatus.SUPERSEDED, "recompute requested"
        run = EvalRun(
            run_id=f"run-{uuid.uuid4().hex[:16]}", model_name=model.name, model_version=model.version,
            dataset_id=dataset.dataset_id, dataset_version=dataset.version, suite_id=suite.suite_id,
            suite_version=suite.version, attempt=(attempts[0].attempt + 1) if attempts else 1,
            requested_baseline=baseline, status=RunStatus.QUEUED, trigger=trigger,
        )
        session.add(run)
        return run

    def queue_canary_run(self, session, model: Model, dataset: EvalDataset, suite: MetricSuite) -> EvalRun | None:
        """In the caller's transaction: a fresh canary run of (model, dataset, suite), a new row with its own id
        and attempt number beside the triple's own runs (which it never replaces); ``None`` while an earlier
        canary run of the triple is still queued or running (one re-measurement at a time)."""
        if dataset.status != DatasetStatus.ACTIVE:
            raise Conflict(f"dataset {dataset.key} is {dataset.status}: no new runs may use it")
        attempts = list(session.scalars(_ATTEMPTS, {"model_name": model.name, "model_version": model.version,
                                                    "dataset_id": dataset.dataset_id, "dataset_version": dataset.version,
                                                    "suite_id": suite.suite_id, "suite_version": suite.version}))
        if any(r.trigger == CANARY_TRIGGER and r.status in (RunStatus.QUEUED, RunStatus.RUNNING) for r in attempts):
            return None
        run = EvalRun(
            run_id=f"run-{uuid.uuid4().hex[:16]}", model_name=model.name, model_version=model.version,
            dataset_id=dataset.dataset_id, dataset_version=dataset.version, suite_id=suite.suite_id,
            suite_version=suite.version, attempt=(attempts[0].attempt + 1) if attempts else 1,
            status=RunStatus.QUEUED, trigger=CANARY_TRIGGER,
        )
        session.add(run)
        return run

    @staticmethod
    def _honour_baseline(session, live: EvalRun, model: Model, dataset: EvalDataset, suite: MetricSuite, baseline: str) -> None:
        """A baseline asked for while the triple has a live run: never dropped in silence. A queued run that
        names no baseline takes it (it has not started: nothing is compared yet); a run that already compares
        with that baseline is the answer; any other run is a :class:`Conflict` naming its baseline, since one
        run is compared with one baseline and superseding a run is what ``recompute`` is for."""
        if live.requested_baseline == baseline:
            return
        if live.status == RunStatus.QUEUED and live.requested_baseline is None:
            live.requested_baseline = baseline  # committed with the caller's transaction
            return
        if live.requested_baseline is not None:
            current = f"baseline {live.requested_baseline}"
        elif live.comparison and live.comparison.get("baseline_model"):
            current = f"baseline {live.comparison['baseline_model']} (the promoted version when it was compared)"
            if live.comparison["baseline_model"] == baseline:
                return
        else:
            promoted = session.scalar(select(Promotion.model_version).where(Promotion.model_name == model.name)
                                      .order_by(Promotion.id.desc()).limit(1))
            promoted_key = f"{model.name}@{promoted}" if promoted is not None and promoted != model.version else None
            if promoted_key == baseline:
                return  # it will compare with the promoted version, which is the one asked for
            current = f"the promoted version ({promoted_key or 'none yet'})"
        raise Conflict(f"run {live.run_id} ({live.status}) already evaluates {model.key} on {dataset.key} with {suite.key} "
                       f"against {current}, not {baseline}; ask again with --recompute (API: \"recompute\": true) to queue "
                       f"a new run compared with {baseline}")

    def request_eval(self, model_key: str, dataset_id: str, suite_id: str, baseline: str | None = None,
                     trigger: str = "request", recompute: bool = False, launch_key: str | None = None) -> EvalRun:
        """Ask for one evaluation (the API's ``POST /v1/eval-runs``); returns the queued or existing run.

        ``launch_key`` marks a newly queued run as carried by a launch already asked of the orchestrator (a
        recompute backfill), in the same transaction, so the eval-request sensor does not launch it twice."""
        model = self.model(model_key)
        dataset = self.dataset(dataset_id) if "@" in dataset_id else self.latest_dataset(dataset_id)
        suite = self.suite(suite_id) if "@" in suite_id else self.latest_suite(suite_id)
        if dataset.task_type != suite.task_type:
            raise InvalidInput("metricSuiteId", f"suite {suite.key} is for {suite.task_type}, dataset {dataset.key} is {dataset.task_type}")
        if baseline is not None:
            self.model(baseline)
        self.check_predictions_cover(model, dataset)
        with self.registry.session() as session:
            run, created = self.queue_or_find_run(session, model, dataset, suite, trigger, baseline=baseline, recompute=recompute)
            if created and launch_key is not None:
                run.launch_key, run.launch_attempts, run.launched_at = launch_key, 1, _now()
        return run

    def queue_or_find_run(self, session, model: Model, dataset: EvalDataset, suite: MetricSuite, trigger: str,
                          baseline: str | None = None, recompute: bool = False) -> tuple[EvalRun, bool]:
        """In the caller's transaction: the newly queued run (``True``), or the triple's live run (``False``)."""
        run = self._queue_run(session, model, dataset, suite, trigger, baseline=baseline, recompute=recompute)
        if run is not None:
            return run, True
        return session.scalar(select(EvalRun).where(
            EvalRun.model_name == model.name, EvalRun.model_version == model.version,
            EvalRun.dataset_id == dataset.dataset_id, EvalRun.dataset_version == dataset.version,
            EvalRun.suite_id == suite.suite_id, EvalRun.suite_version == suite.version, EvalRun.trigger != CANARY_TRIGGER,
            EvalRun.status.in_(ACTIVE_STATES)).order_by(EvalRun.attempt.desc()).limit(1)), False

    def requeue_model_version(self, model_key: str, trigger: str, dataset_key: str | None = None) -> list[EvalRun]:
        """Recompute every current run of a model version, or of its eval cell on ``dataset_key`` (a
        rematerialization from the Dagster UI)."""
        model = self.model(model_key)
        with self.registry.session() as session:
            current = list(session.scalars(select(EvalRun).where(
                EvalRun.model_name == model.name, EvalRun.model_version == model.version,
                *_on_dataset(dataset_key), EvalRun.trigger != CANARY_TRIGGER,  # a canary's series is history: never recomputed
                EvalRun.status.in_((RunStatus.SUCCEEDED, RunStatus.FAILED)))))
            runs = []
            for run in current:
                dataset = session.scalars(select(EvalDataset).where(EvalDataset.dataset_id == run.dataset_id,
                                                                    EvalDataset.version == run.dataset_version)).one()
                suite = session.scalars(select(MetricSuite).where(MetricSuite.suite_id == run.suite_id,
                                                                  MetricSuite.version == run.suite_version)).one()
                if dataset.status != DatasetStatus.ACTIVE:
                    continue
                run.status, run.status_reason = RunStatus.SUPERSEDED, f"recomputed ({trigger})"
                session.flush()
                new = self._queue_run(session, model, dataset, suite, trigger, baseline=run.requested_baseline)
                if new is not None:
                    runs.append(new)
            if not current and dataset_key is None:
                runs = self._queue_plan(session, model, trigger)
        return runs

    def run(self, run_id: str) -> EvalRun:
        with self.registry.session() as session:
            record = session.get(EvalRun, run_id)
        if record is None:
            raise NotFound("eval run", run_id)
        return record

    def runs(self, model_key: str | None = None, statuses: Iterable[str] | None = None) -> list[EvalRun]:
        query = select(EvalRun)
        if model_key:
            name, version = VersionedKey.parse(model_key, "model")
            query = query.where(EvalRun.model_name == name, EvalRun.model_version == version)
        if statuses:
            query = query.where(EvalRun.status.in_(list(statuses)))
        with self.registry.session() as session:
            return list(session.scalars(query.order_by(EvalRun.requested_at, EvalRun.run_id)))

    def queued_runs(self) -> dict[str, list[EvalRun]]:
        """Queued eval runs grouped by model version key: the sensor's work list."""
        grouped: dict[str, list[EvalRun]] = {}
        for run in self.runs(statuses=[RunStatus.QUEUED]):
            grouped.setdefault(run.model_key, []).append(run)
        return grouped

    def claim_runs(self, model_key: str, dagster_run_id: str, requested: bool,
                   previous_run_ids: Sequence[str] = (), dataset_key: str | None = None) -> list[EvalRun]:
        """The eval runs a Dagster run works on for one model version, or for one eval cell of it (its runs
        on ``dataset_key``).

        Runs already claimed by this Dagster run, or by an earlier run of its retry chain
        (``previous_run_ids``: the orchestrator re-executed a run whose worker died), are returned as they
        are. Otherwise a run the sensor launched for requests (``requested``) claims the model version's
        queued runs, possibly none if an earlier run took them; a run launched by hand (a
        rematerialization or a backfill from the Dagster UI) recomputes the model version's current runs.
        """
        name, version = VersionedKey.parse(model_key, "model")
        self.model(model_key)
        mine = self.runs_of_dagster_run(dagster_run_id, model_key, previous_run_ids, dataset_key=dataset_key)
        if mine:
            return mine
        if not requested:
            self.requeue_model_version(model_key, trigger="rematerialization", dataset_key=dataset_key)
        with self.registry.session() as session:
            claimed = list(session.scalars(
                select(EvalRun).where(EvalRun.model_name == name, EvalRun.model_version == version,
                                      *_on_dataset(dataset_key), EvalRun.status == RunStatus.QUEUED)
                .order_by(EvalRun.requested_at).with_for_update()))
            for run in claimed:
                run.status, run.dagster_run_id, run.started_at = RunStatus.RUNNING, dagster_run_id, _now()
                # a retried row's "attempt N ended ..." is history now (``launch_attempts`` keeps the count)
                run.next_launch_at, run.status_reason = None, None
        return claimed

    def runs_of_dagster_run(self, dagster_run_id: str, model_key: str, previous_run_ids: Sequence[str] = (),
                            dataset_key: str | None = None) -> list[EvalRun]:
        """The eval runs of one model version (or of its eval cell on ``dataset_key``) a Dagster run works on;
        running rows of an earlier run of its retry chain are taken over by it, and so are the rows a failed
        step of that run failed (a re-execution from the failure finishes them: the shards and calls already
        done are not paid again)."""
        name, version = VersionedKey.parse(model_key, "model")
        with self.registry.session() as session:
            of_model = (EvalRun.model_name == name, EvalRun.model_version == version, *_on_dataset(dataset_key))
            earlier = [run_id for run_id in previous_run_ids if run_id and run_id != dagster_run_id]
            if earlier:
                for run in session.scalars(select(EvalRun).where(*of_model, EvalRun.status.in_([RunStatus.RUNNING, RunStatus.FAILED]),
                                                                 EvalRun.dagster_run_id.in_(earlier)).with_for_update()):
                    if run.status == RunStatus.FAILED:
                        run.status, run.status_reason, run.finished_at = RunStatus.RUNNING, None, None
                    run.dagster_run_id = dagster_run_id
                session.flush()
            return list(session.scalars(select(EvalRun).where(*of_model, EvalRun.dagster_run_id == dagster_run_id)))

    def update_run(self, run_id: str, **values) -> EvalRun:
        with self.registry.session() as session:
            run = session.get(EvalRun, run_id)
            if run is None:
                raise NotFound("eval run", run_id)
            for name, value in values.items():
                setattr(run, name, value)
        return run

    def fail_runs_of(self, dagster_run_id: str, reason: str) -> list[str]:
        """Mark every unfinished eval run of a failed Dagster run as failed (no partial results kept)."""
        with self.registry.session() as session:
            runs = list(session.scalars(select(EvalRun).where(EvalRun.dagster_run_id == dagster_run_id, EvalRun.status == RunStatus.RUNNING)))
            for run in runs:
                run.status, run.status_reason, run.finished_at = RunStatus.FAILED, reason[:2000], _now()
                run.results = run.comparison = None
                run.metrics_hash = None
        return [r.run_id for r in runs]

    # baselines, gates and promotion -------------------------------------------------------------------
    def promoted_version(self, model_name: str) -> int | None:
        with self.registry.session() as session:
            record = session.scalar(select(Promotion).where(Promotion.model_name == model_name)
                                    .order_by(Promotion.id.desc()).limit(1))
        return record.model_version if record else None

    def record_gate(self, scope: str, model_key: str, decision: str, reasons: list, eval_run_id: str | None = None) -> GateDecisionRecord:
        """Record a decision; deciding again with the same outcome and reasons keeps the existing record
        (and any override of it). A new decision of a model version's gate (offline or online) is appended to
        the release ledger in the same transaction."""
        name, version = VersionedKey.parse(model_key, "model")
        with self.registry.session() as session:
            current = list(session.scalars(select(GateDecisionRecord).where(
                GateDecisionRecord.scope == scope, GateDecisionRecord.model_name == name,
                GateDecisionRecord.model_version == version, GateDecisionRecord.eval_run_id == eval_run_id,
                GateDecisionRecord.superseded.is_(False))))
            if len(current) == 1 and current[0].decision == decision and current[0].reasons == reasons:
                return current[0]
            for previous in current:
                previous.superseded = True
            record = GateDecisionRecord(scope=scope, model_name=name, model_version=version, eval_run_id=eval_run_id,
                                        decision=decision, reasons=reasons)
            session.add(record)
            if scope != GateScope.RUN:  # a run's decision is part of the model version's, whose entry lists every run
                session.flush()  # its id, for the ledger entry recording it in this same transaction
                ledger.append(session, name, version, LedgerKind.GATE_DECISION, actor="gate", reason=f"{scope} gate: {decision}",
                              evidence=ledger.evidence_of(session, name, version, record.id, scope=scope, decision=decision))
        return record

    def gate_decision(self, model_key: str, scope: str = GateScope.MODEL_VERSION) -> GateDecisionRecord | None:
        """The current decision of a model version: its offline gate (``model_version``) or ``online`` gate."""
        name, version = VersionedKey.parse(model_key, "model")
        with self.registry.session() as session:
            return session.scalar(select(GateDecisionRecord).where(
                GateDecisionRecord.scope == scope, GateDecisionRecord.model_name == name,
                GateDecisionRecord.model_version == version, GateDecisionRecord.superseded.is_(False))
                .order_by(GateDecisionRecord.id.desc()).limit(1))

    def override_for(self, decision: GateDecisionRecord | None) -> GateOverride | None:
        """The latest approver's override of a gate decision, if any."""
        if decision is None:
            return None
        with self.registry.session() as session:
            return session.scalar(select(GateOverride).where(GateOverride.gate_decision_id == decision.id)
                                  .order_by(GateOverride.id.desc()).limit(1))

    def buggy_metrics(self) -> dict[str, Incident]:
        """Metric versions marked buggy, by metric key (``name@version``), with their incident."""
        with self.registry.session() as session:
            return {i.target: i for i in session.scalars(select(Incident).where(Incident.kind == IncidentKind.METRIC_BUG))}


def _check_same_training_facts(existing: Model, cutoff: datetime | None, manifest_hash: str | None) -> None:
    """The same file again: a cutoff or manifest other than the version's is refused (its runs' leakage
    counts were computed with the version's), not dropped in silence."""
    recorded = parse_cutoff(existing.training_cutoff)  # SQLite gives it back naive (it was UTC)
    if cutoff is not None and cutoff != recorded:
        raise Conflict(f"model {existing.key} is this file, registered with training cutoff "
                       f"{recorded.isoformat() if recorded else 'none'}; a version's training cutoff cannot change")
    if manifest_hash is not None and manifest_hash != existing.training_manifest_hash:
        raise Conflict(f"model {existing.key} is this file, registered with training manifest "
                       f"{existing.training_manifest_hash or 'none'}; a version's training manifest cannot change")


def check_dataset_role(role: object) -> str:
    """A dataset version's role (:class:`~eval_platform.core.states.DatasetRole`), or :class:`InvalidInput` naming ``role``."""
    known = [r.value for r in DatasetRole]
    if not isinstance(role, str) or role not in known:
        raise InvalidInput("role", f"must be one of {', '.join(known)}, got {role!r}")
    return DatasetRole(role).value


def _on_dataset(dataset_key: str | None) -> tuple:
    """The where-clauses of an eval cell's dataset version (none without one: the whole model version)."""
    if dataset_key is None:
        return ()
    dataset_id, version = VersionedKey.parse(dataset_key, "dataset")
    return (EvalRun.dataset_id == dataset_id, EvalRun.dataset_version == version)


def _now():
    return utcnow()
