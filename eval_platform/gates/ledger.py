"""Releases as the ledger records them: what served when and on what evidence, and the two governed
operations that change the serving version without a new promotion, rollback and demotion.

The serving version of a model name is the newest ``model_promotions`` row (the baseline of later versions,
the version canaries watch): a rollback adds a row for the earlier version, a demotion a row without a
version. Each writes its ledger entry (:mod:`eval_platform.registry.ledger`) in the same transaction.

**Rollback** is not an override: it only returns to a version that was promoted before and whose release
evidence still holds *now*: its offline gate passes or was overridden and its online gate is releasable
(:func:`~eval_platform.gates.releases.release_state`, decided again), none of its runs is invalid and none of
its datasets contaminated. A contamination or buggy-metric incident re-decides the version's gate
(``no_decision``), so an invalidated version cannot be rolled back to: it fails closed.

**Who.** An approver of the model name's owner team, or an admin (the ``evalp`` command line is the local
operator, an admin, and names the actor with ``--by``). A principal of another team is answered exactly as
for a model name that does not exist (404), and the refusal is logged; a member of the owner team without the
approver role gets a 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from eval_platform.core.errors import Conflict, InvalidInput, NotFound
from eval_platform.core.keys import validate_id
from eval_platform.core.states import SERVING_KINDS, DatasetStatus, LedgerKind, RunStatus, Verdict
from eval_platform.gates.releases import release_state
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalDataset, EvalRun, Model, Promotion, ReleaseLedgerEntry, access, ledger
from eval_platform.registry.access import Principal
from eval_platform.registry.ledger import ChainCheck


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_time(value: object, field: str = "time") -> datetime:
    """An ISO 8601 time (``2026-12-06T23:50:00Z``; naive means UTC), or :class:`InvalidInput` naming ``field``."""
    if isinstance(value, datetime):
        return _as_utc(value)
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise InvalidInput(field, f"must be an ISO 8601 time such as 2026-12-06T23:50:00Z, got {value!r}")
    try:
        return _as_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00")))
    except ValueError:
        raise InvalidInput(field, f"must be an ISO 8601 time such as 2026-12-06T23:50:00Z, got {value!r}") from None


def check_model_name(platform: EvalPlatform, principal: Principal | None, name: object, what: str,
                     role: str | None = None) -> str:
    """The model name, when it exists and the principal may see its releases (its owner team or an admin; with
    ``role``, holding that role too). Another team is told what a nonexistent name would be (404, logged)."""
    if not isinstance(name, str):
        raise InvalidInput("model_name", "must be a model name")
    validate_id(name, "model_name")
    with platform.registry.session() as session:
        registered, owner = access.owner_of(session, access.MODEL, name)
    if not registered:
        raise NotFound("model", name)
    if principal is not None and not principal.is_admin and owner != principal.team:
        access.record_access(platform, principal, access.CHANGE, f"model:{name}"[:200], access.DENIED,
                             detail=f"{what}: owned by {owner or 'no team'}")
        raise NotFound("model", name)
    if role is not None:
        access.require_role(principal, role, what, "Authorization", platform, f"model:{name}")
    return name


@dataclass(frozen=True)
class ServingAt:
    """What served a model name at a time, and the ledger entries that made it serve."""

    model_name: str
    time: datetime
    #: None: nothing served (before the first promotion, or after a demotion)
    version: int | None
    #: the promotion, rollback or demotion entry in force at ``time`` (None: none yet)
    entry: ReleaseLedgerEntry | None
    #: the gate decision and override entries of the decision that entry rests on, recorded by ``time``
    supporting: tuple[ReleaseLedgerEntry, ...]

    @property
    def model_key(self) -> str | None:
        return f"{self.model_name}@{self.version}" if self.version is not None else None


def history(platform: EvalPlatform, model_name: str, principal: Principal | None = None) -> list[ReleaseLedgerEntry]:
    """Every ledger entry of a model name, oldest first."""
    check_model_name(platform, principal, model_name, "read its release ledger")
    with platform.registry.session() as session:
        return ledger.entries(session, model_name)


def verify_chain(platform: EvalPlatform, model_name: str, principal: Principal | None = None) -> ChainCheck:
    """Recompute the model name's hash chain (:func:`eval_platform.registry.ledger.verify`)."""
    return ledger.verify(model_name, history(platform, model_name, principal))


def serving_at(platform: EvalPlatform, model_name: str, time: datetime | str, principal: Principal | None = None) -> ServingAt:
    """The version serving ``model_name`` at ``time`` and the evidence it served on, from the ledger alone."""
    moment = parse_time(time)
    chain = [e for e in history(platform, model_name, principal) if _as_utc(e.recorded_at) <= moment]
    # in time order: entries back-filled on upgrade (migration 0014) follow the chain's newer entries but carry
    # the times their records were made; entries appended as events happen are in time order already
    serving = sorted((e for e in chain if e.kind in SERVING_KINDS), key=lambda e: (_as_utc(e.recorded_at), e.sequence))
    if not serving:
        return ServingAt(model_name, moment, None, None, ())
    entry = serving[-1]
    if entry.kind == LedgerKind.DEMOTION:
        return ServingAt(model_name, moment, None, entry, ())
    decision_id = entry.evidence.get("gate_decision_id")
    supporting = tuple(e for e in chain if e.kind in (LedgerKind.GATE_DECISION, LedgerKind.OVERRIDE)
                       and decision_id is not None and e.evidence.get("gate_decision_id") == decision_id)
    return ServingAt(model_name, moment, entry.model_version, entry, supporting)


def _check_actor_reason(actor: str, reason: str, principal: Principal | None) -> tuple[str, str]:
    actor = principal.label if principal is not None and not principal.operator else actor
    if not isinstance(actor, str) or not actor.strip():
        raise InvalidInput("by", "name who acts")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("reason", "a rollback or demotion needs a written reason")
    if len(reason) > 4000:
        raise InvalidInput("reason", "at most 4000 characters")
    return actor.strip()[:200], reason.strip()


def _was_promoted(platform: EvalPlatform, name: str, version: int) -> bool:
    with platform.registry.session() as session:
        in_ledger = session.scalar(select(ReleaseLedgerEntry.id).where(
            ReleaseLedgerEntry.model_name == name, ReleaseLedgerEntry.model_version == version,
            ReleaseLedgerEntry.kind.in_((LedgerKind.PROMOTION, LedgerKind.ROLLBACK))).limit(1))
        # promotions recorded before the ledger existed count too
        in_promotions = session.scalar(select(Promotion.id).where(Promotion.model_name == name, Promotion.model_version == version).limit(1))
    return in_ledger is not None or in_promotions is not None


def _invalid_evidence(platform: EvalPlatform, name: str, version: int) -> list[str]:
    """Why a version's runs no longer hold: an invalid run, or a run on a dataset version no longer active."""
    problems = []
    with platform.registry.session() as session:
        runs = list(session.scalars(select(EvalRun).where(EvalRun.model_name == name, EvalRun.model_version == version,
                                                          EvalRun.status.in_((RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.INVALID)))))
        for run in runs:
            if run.status == RunStatus.INVALID:
                problems.append(f"run {run.run_id} is invalid: {run.status_reason or ''}".strip())
                continue
            status = session.scalar(select(EvalDataset.status).where(EvalDataset.dataset_id == run.dataset_id,
                                                                     EvalDataset.version == run.dataset_version))
            if status != DatasetStatus.ACTIVE:
                problems.append(f"run {run.run_id} used dataset {run.dataset_key}, now {status}")
    return problems


def rollback(platform: EvalPlatform, model_name: str, to_version: int, by: str, reason: str,
             principal: Principal | None = None) -> ReleaseLedgerEntry:
    """Make an earlier promoted version the serving one again (see the module's docstring for who and when)."""
    check_model_name(platform, principal, model_name, "roll back its release", role=access.APPROVER)
    by, reason = _check_actor_reason(by, reason, principal)
    if isinstance(to_version, bool) or not isinstance(to_version, int) or to_version < 1:
        raise InvalidInput("to_version", f"must be a positive version number, got {to_version!r}")
    key = f"{model_name}@{to_version}"
    model: Model = platform.model(key)
    if platform.promoted_version(model_name) == to_version:
        raise Conflict(f"{key} is already the serving version")
    if not _was_promoted(platform, model_name, to_version):
        raise Conflict(f"{key} was never promoted: a rollback only returns to a version that served before (promote it instead)")
    release = release_state(platform, key)
    if release.state != Verdict.PASS or release.offline_record is None:
        raise Conflict(f"{key} cannot be rolled back to: its evidence no longer holds ({release.describe()})")
    problems = _invalid_evidence(platform, model_name, to_version)
    if problems:
        raise Conflict(f"{key} cannot be rolled back to: its evidence no longer holds ({'; '.join(problems)})")
    decision = release.offline_record
    with platform.registry.session() as session:
        previous = session.scalar(select(Promotion.model_version).where(Promotion.model_name == model_name)
                                  .order_by(Promotion.id.desc()).limit(1))
        record = Promotion(model_name=model_name, model_version=model.version, gate_decision_id=decision.id,
                           promoted_by=by, reason=f"rollback: {reason}")
        session.add(record)
        session.flush()
        return ledger.append(session, model_name, model.version, LedgerKind.ROLLBACK, by, reason, ledger.evidence_of(
            session, model_name, model.version, decision.id, promotion_id=record.id, rolled_back_from=previous,
            offline_gate=str(release.offline), online_gate=str(release.online)))


def demote(platform: EvalPlatform, model_name: str, by: str, reason: str, principal: Principal | None = None) -> ReleaseLedgerEntry:
    """Stop serving the model name: nothing serves until a promotion or a rollback (same governance as a rollback)."""
    check_model_name(platform, principal, model_name, "demote its release", role=access.APPROVER)
    by, reason = _check_actor_reason(by, reason, principal)
    serving = platform.promoted_version(model_name)
    if serving is None:
        raise Conflict(f"nothing of {model_name} is serving: there is nothing to demote")
    with platform.registry.session() as session:
        record = Promotion(model_name=model_name, model_version=None, gate_decision_id=None, promoted_by=by,
                           reason=f"demotion: {reason}")
        session.add(record)
        session.flush()
        return ledger.append(session, model_name, None, LedgerKind.DEMOTION, by, reason,
                             {"gate_decision_id": None, "promotion_id": record.id, "demoted_version": serving})
