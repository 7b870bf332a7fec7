"""Where a model version's release gate stands for a pipeline that waits on it (``evalp gate wait``).

A gate decision is recorded whenever something about the version's evaluation changes, including while
runs are still queued or retrying (``no_decision``, "eval run ... is queued"). A waiter must not take that
for the answer: the gate is *settled* when a decision is recorded, no release-blocking eval run of the
version is queued or running, and the decision was recorded after the last of those runs ended (the
runner marks runs finished a moment before it decides, so a read in between sees the previous decision).
A version whose runs failed for good is settled too: the failure handlers decide ``no_decision`` with the
cause as reason, and that is the answer.

The effective decision counts an approver's override (``overridden``), like the release path does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eval_platform.core.records import iso, json_safe
from eval_platform.core.states import CANARY_TRIGGER, RELEASABLE, ReleaseVerdict, RunStatus, SuitePurpose
from eval_platform.gates.releases import effective_decision
from eval_platform.platform.service import EvalPlatform

#: Runs whose end is still to come: a gate with one of them is not settled.
PENDING_STATES = (RunStatus.QUEUED, RunStatus.RUNNING)


@dataclass(frozen=True)
class GateOverrideInfo:
    """An approver's override of the current decision, as a pipeline shows it."""

    approver: str
    reason: str
    overridden_decision: str


@dataclass(frozen=True)
class GateStatus:
    """A model version's gate as a waiting pipeline sees it.

    ``decision`` is the effective decision (``pass``, ``fail``, ``no_decision``, ``overridden``) or None
    before any is recorded; ``reasons`` the recorded decision's reasons per run (snake_case keys, as the
    gate records them); ``pending_runs`` the release-blocking runs still queued or running."""

    model_key: str
    decision: str | None
    recorded_decision: str | None
    decided_at: str | None
    settled: bool
    pending_runs: int
    reasons: list[dict] = field(default_factory=list)
    override: GateOverrideInfo | None = None

    @property
    def releasable(self) -> bool:
        return self.decision in RELEASABLE

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> GateStatus:
        """The status from ``GET /v1/models/{modelKey}/gate`` (camelCase keys back to the recorded snake_case)."""
        override = payload.get("override")
        return cls(
            model_key=str(payload["modelVersion"]), decision=payload.get("decision"),
            recorded_decision=payload.get("recordedDecision"), decided_at=payload.get("decidedAt"),
            settled=bool(payload.get("settled")), pending_runs=int(payload.get("pendingRuns") or 0),
            reasons=[snake_keys(r) for r in payload.get("reasons") or []],
            override=GateOverrideInfo(str(override.get("approver", "")), str(override.get("reason", "")),
                                      str(override.get("overriddenDecision", ""))) if override else None)


def snake_keys(value: Any) -> Any:
    """``camelCase`` mapping keys (deep) as ``snake_case``: the API's reasons read like the recorded ones."""
    if isinstance(value, Mapping):
        return {re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", str(k)).lower(): snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake_keys(v) for v in value]
    return value


def pending_runs(platform: EvalPlatform, model_key: str) -> tuple[int, datetime | None]:
    """How many of the version's gate-relevant runs (release-blocking, current, not canary checks) are queued
    or running, and when the last finished one ended."""
    pending, last_end = 0, None
    for run in platform.runs(model_key):
        if run.status == RunStatus.SUPERSEDED or run.trigger == CANARY_TRIGGER \
                or platform.suite(run.suite_key).purpose != SuitePurpose.RELEASE_BLOCKING:
            continue  # the same runs runner.decide_model_version decides on
        if run.status in PENDING_STATES:
            pending += 1
        elif run.finished_at is not None:
            end = _aware(run.finished_at)
            last_end = end if last_end is None else max(last_end, end)
    return pending, last_end


def gate_status(platform: EvalPlatform, model_key: str) -> GateStatus:
    """The version's effective gate decision and whether it is settled (see the module's docstring).
    Raises NotFound for a model version that does not exist."""
    model = platform.model(model_key)
    state, record, override = effective_decision(platform, model.key)
    pending, last_end = pending_runs(platform, model.key)
    settled = record is not None and pending == 0 and (last_end is None or _aware(record.decided_at) >= last_end)
    return GateStatus(
        model_key=model.key, decision=state if record is not None else None,
        recorded_decision=record.decision if record is not None else None,
        decided_at=iso(record.decided_at) if record is not None else None, settled=settled, pending_runs=pending,
        reasons=json_safe(list(record.reasons or [])) if record is not None else [],
        override=GateOverrideInfo(override.approver, override.reason, override.overridden_decision) if override else None)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite hands back naive UTC


#: ``evalp gate wait``'s exit status per settled effective decision (the README's "CI contract").
EXIT_PASS, EXIT_FAIL, EXIT_NO_DECISION, EXIT_TIMEOUT, EXIT_NOT_FOUND = 0, 1, 2, 3, 4


def exit_code(status: GateStatus) -> int:
    """0 for a releasable gate (passed, or overridden by an approver), 1 for fail, 2 for no_decision."""
    if status.releasable:
        return EXIT_PASS
    return EXIT_FAIL if status.decision == ReleaseVerdict.FAIL else EXIT_NO_DECISION
