"""What a caller's team may see: datasets, runs and models it may know of, and the parts of results and gate
reasons a dataset's access policy shows it.

A dataset the team may know nothing of (restricted, neither rows nor aggregates allowed) answers as an absent
one, and so do its runs and the models evaluated only on such datasets; each refusal is logged
(:func:`eval_platform.registry.access.record_access`), and so is each granted read of a restricted dataset.
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select, tuple_

from eval_platform.core.errors import InvalidInput, NotFound
from eval_platform.core.keys import VersionedKey
from eval_platform.platform import aggregates
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalDataset, EvalRun, Model, access
from eval_platform.registry.access import AGGREGATE_READ, EXAMPLES, GRANTED, REGRESSIONS, ROWS, Principal


def dataset_policies(platform: EvalPlatform) -> dict[str, dict]:
    """Every dataset version's access policy, by ``DATASET_ID@VERSION``."""
    with platform.registry.session() as session:
        return {f"{d}@{v}": p for d, v, p in session.execute(select(EvalDataset.dataset_id, EvalDataset.version, EvalDataset.access_policy))}


def hidden_datasets(platform: EvalPlatform, principal: Principal) -> list[tuple[str, int]]:
    """``(dataset_id, version)`` of the dataset versions the team may know nothing of."""
    return [VersionedKey.parse(key, "dataset") for key, policy in dataset_policies(platform).items() if not access.may_know(policy, principal.team)]


def visible_dataset(platform: EvalPlatform, key: str, principal: Principal | None = None, action: str = "metadata") -> EvalDataset:
    """The dataset version a path names. To a team that may know nothing of it (a restricted dataset outside
    its policy, aggregates not allowed) it answers exactly as an absent version (404); the attempt is logged."""
    try:
        VersionedKey.parse(key, "datasetKey")
    except InvalidInput as error:
        raise InvalidInput("datasetKey", error.problem) from error
    dataset = platform.dataset(key)
    if principal is not None and not access.may_know(dataset.access_policy, principal.team):
        access.record_access(platform, principal, action, dataset.key, access.DENIED)
        raise NotFound("dataset", key)  # word for word what platform.dataset says of an absent version
    return dataset


def refuse_hidden_dataset(platform: EvalPlatform, principal: Principal, dataset_key: str, policy: dict | None, field: str, named: str) -> None:
    """A request names a dataset (``named``, version ``dataset_key``) the team may know nothing of: the very answer
    an absent dataset gets (so its existence does not leak); the attempt is logged."""
    if not access.may_know(policy, principal.team):
        access.record_access(platform, principal, AGGREGATE_READ, dataset_key, access.DENIED, detail=f"named in {field}")
        raise InvalidInput(field, f"{named!r}: no such {'dataset' if '@' in named else 'usable dataset'}")


def dataset_of_run(platform: EvalPlatform, principal: Principal, run: EvalRun, action: str) -> EvalDataset:
    """The run's dataset; a run of a dataset the team may know nothing of answers as an absent run (logged)."""
    dataset = platform.dataset(run.dataset_key)
    if not access.may_know(dataset.access_policy, principal.team):
        access.record_access(platform, principal, action, dataset.key, access.DENIED, run_id=run.run_id)
        raise NotFound("eval run", run.run_id)
    return dataset


def hidden_models(platform: EvalPlatform, principal: Principal) -> set[tuple[str, int]]:
    """Versions of other teams' models all of whose eval runs are on datasets the team may not know of.

    Only models with a run on such a dataset are looked at (indexed lookups), so a listing costs nothing
    more when the team may know of every dataset, whatever the number of runs."""
    hidden = hidden_datasets(platform, principal)
    if not hidden:
        return set()
    on_hidden = tuple_(EvalRun.dataset_id, EvalRun.dataset_version).in_(hidden)
    with platform.registry.session() as session:
        candidates = set(session.execute(
            select(EvalRun.model_name, EvalRun.model_version).distinct()
            .join(Model, and_(Model.name == EvalRun.model_name, Model.version == EvalRun.model_version))
            .where(on_hidden, or_(Model.owner_team.is_(None), Model.owner_team != principal.team))).tuples())
        if not candidates:
            return set()
        known = set(session.execute(
            select(EvalRun.model_name, EvalRun.model_version).distinct()
            .where(tuple_(EvalRun.model_name, EvalRun.model_version).in_(sorted(candidates)), ~on_hidden)).tuples())
    return candidates - known


def visible_model(platform: EvalPlatform, key: str, principal: Principal | None = None) -> Model:
    """The model version a path names; one the team may not know of (:func:`hidden_models`) answers as absent."""
    try:
        VersionedKey.parse(key, "modelKey")
    except InvalidInput as error:
        raise InvalidInput("modelKey", error.problem) from error
    model = platform.model(key)
    if principal is not None and (model.name, model.version) in hidden_models(platform, principal):
        raise NotFound("model", key)
    return model


def reasons_without_example_ids(reasons: list) -> list:
    """Gate reasons without example ids (for teams that may see aggregates but not rows)."""
    out = []
    for reason in reasons:
        reason = dict(reason)
        if "reasons" in reason:
            reason["reasons"] = reasons_without_example_ids(reason["reasons"])
        if reason.get("kind") == "max_regressions" or "regressions" in reason:
            regressed = reason.pop("regressions", None)
            if regressed is not None:
                reason["regression_count"] = len(regressed)
                reason["message"] = f"{len(regressed)} example(s) regressed (example ids withheld by the dataset's access policy)"
        out.append(reason)
    return out


def _names_regressed_examples(reasons: list) -> bool:
    return any(r.get("regressions") or _names_regressed_examples(r.get("reasons") or []) for r in reasons)


def visible_gate_reasons(platform: EvalPlatform, principal: Principal, dataset: EvalDataset, reasons: list, seen: str,
                         run_id: str | None, view: aggregates.AggregateView) -> list:
    """A gate's reasons as the team may see them; a team with row access that is shown a restricted dataset's
    regressed examples has that read logged."""
    if seen != ROWS:  # aggregates only: no example ids, no per-slice reason on a slice it may not see
        return reasons_without_example_ids(view.reasons(reasons))
    if access.is_restricted(dataset.access_policy) and _names_regressed_examples(reasons):
        access.record_access(platform, principal, REGRESSIONS, dataset.key, GRANTED, run_id=run_id, detail="gate reasons")
    return reasons


def log_results_read(platform: EvalPlatform, principal: Principal, dataset: EvalDataset, run: EvalRun, view: aggregates.AggregateView,
                     what: str) -> None:
    """Log a read of a run's results as what it was: an aggregate read, unless the team (with row access) was
    shown slices an aggregates-only team would not be (per example, below the minimum size): a read of rows."""
    if not view.filtered and access.is_restricted(dataset.access_policy):
        strict = aggregates.view_of_run(platform, run, dataset, access.AGGREGATES)
        rows = {s.get("slice") for s in (run.results or {}).get("slices") or [] if not strict.slice_ok(s.get("slice"))}
        if rows:
            access.record_read(platform, principal, EXAMPLES, dataset, rows=len(rows), run_id=run.run_id,
                               detail=f"{what}: slices on undeclared columns or below the minimum size")
            return
    access.record_read(platform, principal, AGGREGATE_READ, dataset, run_id=run.run_id,
                       detail=what + (" (aggregates only: small and undeclared slices suppressed)" if view.filtered else ""))
