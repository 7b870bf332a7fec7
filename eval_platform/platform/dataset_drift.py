"""A registered dataset version's drift from the previous active version of the same dataset id.

Registry-backed glue around :func:`eval_platform.stats.dataset_drift.compare_dataset_versions`, shared by the
``eval_dataset`` asset's drift check and the suite gate's dataset-drift rules.
"""

from __future__ import annotations

from eval_platform.core.states import DatasetStatus
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry import EvalDataset
from eval_platform.stats.dataset_drift import DatasetDriftReport, DriftBounds, compare_dataset_versions, first_version


def previous_version(platform: EvalPlatform, record: EvalDataset) -> EvalDataset | None:
    """The newest *active* version of ``record``'s dataset id older than ``record`` (a contaminated or
    invalidated version is no reference), or None."""
    older = [d for d in platform.datasets() if d.dataset_id == record.dataset_id and d.version < record.version
             and d.status == DatasetStatus.ACTIVE]
    return max(older, key=lambda d: d.version, default=None)


def drift_from_previous(platform: EvalPlatform, record: EvalDataset, bounds: DriftBounds | None = None) -> DatasetDriftReport:
    """``record`` compared with its previous active version; a first version's report has nothing drifted."""
    previous = previous_version(platform, record)
    if previous is None:
        return first_version(record.key, bounds)
    return compare_dataset_versions(platform.load_dataset(previous), platform.load_dataset(record), record.schema,
                                     current_key=record.key, previous_key=previous.key, bounds=bounds)
