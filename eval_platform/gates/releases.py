"""Overrides and promotions: the human end of a gate.

Only an approver named in the config of every release-blocking suite behind a decision may override a
``fail`` or ``no_decision``, with a written reason. An override is a new record (who, when, why, which
decision); the original decision stays as it was. The online gate (:mod:`eval_platform.online.experiments`) is
overridden the same way (``scope="online"``). A promotion releases a model version whose offline gate and
online gate (when a suite requires one) passed or were overridden (:func:`release_state`), through the
orchestrator: it is a request row that a sensor turns into a run of the
promotion asset, which the gate's blocking asset check guards.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select

from eval_platform.core.errors import Conflict, InvalidInput
from eval_platform.core.keys import VersionedKey
from eval_platform.core.states import (
    ONLINE_RELEASABLE,
    OVERRIDABLE_SCOPES,
    RELEASABLE,
    GateScope,
    LedgerKind,
    ReleaseVerdict,
    RequestKind,
    RunStatus,
    SuitePurpose,
    Verdict,
)
from eval_platform.online.experiments import decide_online_gate, online_state
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import DagsterRequest, GateDecisionRecord, GateOverride, MetricSuite, Promotion, access, ledger
from eval_platform.registry.access import Principal


def _release_blocking_suites(platform: EvalPlatform, model_key: str) -> list[MetricSuite]:
    keys = {run.suite_key for run in platform.runs(model_key) if run.status != RunStatus.SUPERSEDED}
    return [s for s in (platform.suite(k) for k in sorted(keys)) if s.purpose == SuitePurpose.RELEASE_BLOCKING]


def effective_decision(platform: EvalPlatform, model_key: str) -> tuple[str, GateDecisionRecord | None, GateOverride | None]:
    """``pass``, ``fail``, ``no_decision`` or ``overridden`` (a failed or undecided gate an approver let through)."""
    decision = platform.gate_decision(model_key)
    if decision is None:
        return ReleaseVerdict.NO_DECISION, None, None
    override = platform.override_for(decision)
    return (ReleaseVerdict.OVERRIDDEN if override else decision.decision), decision, override


@dataclass(frozen=True)
class ReleaseState:
    """Whether a model version may ship: its offline gate and its online gate together."""

    state: str  # pass | fail | no_decision
    offline: str  # pass | fail | no_decision | overridden
    online: str  # pass | fail | no_decision | overridden | not_required | not_applicable
    offline_record: GateDecisionRecord | None
    online_record: GateDecisionRecord | None

    def describe(self) -> str:
        return f"release {self.state} (offline gate {self.offline}, online gate {self.online})"


def release_state(platform: EvalPlatform, model_key: str) -> ReleaseState:
    """``pass`` only when the offline gate passed (or was overridden) and the online gate passed, was
    overridden, or is not required; ``fail`` when either failed; otherwise ``no_decision``."""

    offline, offline_record, _ = effective_decision(platform, model_key)
    online, online_record, _ = online_state(platform, model_key)
    if offline in RELEASABLE and online in ONLINE_RELEASABLE:
        state = Verdict.PASS
    else:
        state = Verdict.FAIL if Verdict.FAIL in (offline, online) else Verdict.NO_DECISION
    return ReleaseState(state, offline, online, offline_record, online_record)


def promote(platform: EvalPlatform, model_key: str, promoted_by: str, reason: str = "") -> Promotion:
    """Release a model version: only when its offline gate passed or was overridden and its online
    gate (when a suite requires one) passed or was overridden."""
    if not promoted_by:
        raise InvalidInput("promoted_by", "a promotion must name who made it")
    model = platform.model(model_key)
    release = release_state(platform, model_key)
    decision = release.offline_record
    if release.state != Verdict.PASS or decision is None:  # a releasable offline gate has its decision record
        raise Conflict(f"{model_key} cannot be promoted: {release.describe()}")
    with platform.registry.session() as session:
        record = Promotion(model_name=model.name, model_version=model.version, gate_decision_id=decision.id,
                           promoted_by=promoted_by, reason=reason)
        session.add(record)
        session.flush()
        ledger.append(session, model.name, model.version, LedgerKind.PROMOTION, promoted_by, reason,
                      ledger.evidence_of(session, model.name, model.version, decision.id, promotion_id=record.id,
                                         offline_gate=str(release.offline), online_gate=str(release.online)))
    return record


def override_gate(platform: EvalPlatform, model_key: str, approver: str, reason: str, scope: str = GateScope.MODEL_VERSION,
                  principal: Principal | None = None) -> GateOverride:
    """Let a failed or undecided gate through: the offline gate (``model_version``) or the ``online`` one.

    With a ``principal`` (an API caller) the approver is the principal, never a name it sends: it must be
    a member of the model name's owner team (or an admin), hold the approver role and be named in every
    release-blocking suite (:meth:`Principal.named_in`); ``approver`` is then ignored and the record
    names the principal (``TEAM`` or ``TEAM:NAME``). Without one (the local operator), ``approver`` is
    checked against the suites' approvers as written."""
    if principal is not None:
        approver = _approver_principal(platform, model_key, principal)
    if not reason or not reason.strip():
        raise InvalidInput("reason", "an override needs a written reason")
    decision = _overridable_decision(platform, model_key, scope)
    suites = _release_blocking_suites(platform, model_key)
    if not suites:
        raise Conflict(f"{model_key} has no release-blocking suite whose approvers could override")
    for suite in suites:
        _check_approver(platform, model_key, suite, approver, principal)
    name, version = VersionedKey.parse(model_key, "model")
    with platform.registry.session() as session:
        record = GateOverride(gate_decision_id=decision.id, model_name=name, model_version=version,
                              overridden_decision=decision.decision, suites=[s.key for s in suites],
                              approver=approver, reason=reason.strip())
        session.add(record)
        session.flush()
        ledger.append(session, name, version, LedgerKind.OVERRIDE, approver, record.reason,
                      ledger.evidence_of(session, name, version, decision.id, override_id=record.id, scope=scope,
                                         overridden_decision=decision.decision, suites=record.suites))
    return record


def _approver_principal(platform: EvalPlatform, model_key: str, principal: Principal) -> str:
    """An API caller overriding: an approver of the model name's owner team (or an admin: named in the suites
    like anyone), recorded by its label."""
    name = VersionedKey.parse(model_key, "model").name
    access.require_owner(platform, principal, access.MODEL, name, "override its gate", "Authorization", role=access.APPROVER)
    access.require_role(principal, access.APPROVER, "overriding a gate", "Authorization", platform, f"model:{name}")
    return principal.label


def _overridable_decision(platform: EvalPlatform, model_key: str, scope: str) -> GateDecisionRecord:
    """The gate's current decision, when it is one an approver may override (``fail`` or ``no_decision``)."""
    if scope not in OVERRIDABLE_SCOPES:
        raise InvalidInput("scope", f"must be model_version or online, got {scope!r}")
    if scope == GateScope.ONLINE:
        decide_online_gate(platform, model_key)
    decision = platform.gate_decision(model_key, scope)
    if decision is None:
        raise Conflict(f"{model_key} has no {'online ' if scope == GateScope.ONLINE else ''}gate decision to override")
    if decision.decision not in (Verdict.FAIL, Verdict.NO_DECISION):
        raise Conflict(f"{model_key}'s gate decided {decision.decision}: only fail or no_decision can be overridden")
    return decision


def _check_approver(platform: EvalPlatform, model_key: str, suite: MetricSuite, approver: str, principal: Principal | None) -> None:
    """The approver is named in the suite's ``gate.approvers``; a refused principal is recorded in the access log."""
    approvers = suite.metric_defs["gate"]["approvers"]
    if principal is not None and not principal.named_in(approvers):
        access.record_access(platform, principal, access.CHANGE, f"model:{model_key}", access.DENIED,
                             detail=f"override: not an approver of suite {suite.key}")
        raise access.Forbidden(f"principal {principal.label!r} is not an approver of suite {suite.key}", field="Authorization")
    if principal is None and approver not in approvers:
        raise InvalidInput("approver", f"{approver!r} is not an approver of suite {suite.key} (approvers: {approvers or 'none'})")


def override_counts(platform: EvalPlatform) -> dict[str, int]:
    """Overrides per suite (the brief's "gate override count")."""
    with platform.registry.session() as session:
        overrides = list(session.scalars(select(GateOverride)))
    return dict(Counter(suite for o in overrides for suite in o.suites))


def request_promotion(platform: EvalPlatform, model_key: str, requested_by: str, reason: str = "",
                      principal: Principal | None = None) -> DagsterRequest:
    """Ask for a release. With a ``principal`` (an API caller): a member of the model name's owner team or an
    admin, recorded as the requester (``requested_by`` is ignored)."""
    if principal is not None:
        access.require_owner(platform, principal, access.MODEL, VersionedKey.parse(model_key, "model").name, "promote it", "modelKey")
        requested_by = principal.label
    if not requested_by or not requested_by.strip():
        raise InvalidInput("requested_by", "a promotion must name who asks for it")
    platform.model(model_key)
    release = release_state(platform, model_key)
    if release.state != Verdict.PASS:
        raise Conflict(f"{model_key} cannot be promoted: {release.describe()}")
    with platform.registry.session() as session:
        request = DagsterRequest(kind=RequestKind.PROMOTION, partitions=[model_key], requested_by=requested_by, reason=reason)
        session.add(request)
    return request


@dataclass(frozen=True)
class GateChanges:
    """Model versions whose effective offline decision may have changed since the last look."""

    decided: tuple[str, ...]  # a new decision record (an eval finished, an incident, a failure)
    overridden: tuple[str, ...]  # an approver's override of the current decision
    last_decision_id: int
    last_override_id: int


def gate_changes(platform: EvalPlatform, after_decision_id: int, after_override_id: int) -> GateChanges:
    """What changed after the given record ids: one indexed range read on each table (ids only grow)."""
    with platform.registry.session() as session:
        decided = list(session.execute(select(GateDecisionRecord.id, GateDecisionRecord.model_name, GateDecisionRecord.model_version)
                                       .where(GateDecisionRecord.id > after_decision_id, GateDecisionRecord.scope == GateScope.MODEL_VERSION)
                                       .order_by(GateDecisionRecord.id)))
        last_decision = session.scalar(select(GateDecisionRecord.id).order_by(GateDecisionRecord.id.desc()).limit(1)) or 0
        overridden = list(session.execute(select(GateOverride.id, GateOverride.model_name, GateOverride.model_version)
                                          .join(GateDecisionRecord, GateDecisionRecord.id == GateOverride.gate_decision_id)
                                          .where(GateOverride.id > after_override_id, GateDecisionRecord.scope == GateScope.MODEL_VERSION)
                                          .order_by(GateOverride.id)))
        last_override = session.scalar(select(GateOverride.id).order_by(GateOverride.id.desc()).limit(1)) or 0
    return GateChanges(tuple(dict.fromkeys(f"{name}@{version}" for _, name, version in decided)),
                       tuple(dict.fromkeys(f"{name}@{version}" for _, name, version in overridden)),
                       max(after_decision_id, last_decision), max(after_override_id, last_override))
