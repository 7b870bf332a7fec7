"""Online experiments in the asset graph: each experiment's analysis (partitioned by experiment, reading
the dataset versions its ingests registered) and each model version's online gate, which the release
job checks before a promotion."""


import dagster as dg

from eval_platform.core.states import ONLINE_RELEASABLE
from eval_platform.online import experiments as online
from eval_platform.online.analysis import ANALYSIS_CODE_VERSION
from eval_platform.online.reporting import analysis_markdown, format_stored_analysis, online_gate_markdown
from eval_platform.platform import requests
from eval_platform_dagster.assets.datasets import eval_dataset
from eval_platform_dagster.assets.evaluation import gate_decision
from eval_platform_dagster.assets.partitions import EXPERIMENT_REQUEST_TAG, experiments, model_versions
from eval_platform_dagster.assets.platform import PLATFORM, platform_of

ONLINE_GATE_CODE_VERSION = "1"


@dg.asset(
    partitions_def=experiments,
    deps=[dg.AssetDep(eval_dataset, partition_mapping=dg.AllPartitionMapping())],
    group_name="online",
    code_version=ANALYSIS_CODE_VERSION,
    kinds={"pandas", "scipy"},
    required_resource_keys=PLATFORM,
)
def experiment_analysis(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The experiment's analysis over its usable ingests: per-arm means, lifts, tests, CUPED, always-valid
    p-values per day, the sample-ratio check and the guardrail verdicts (or, in shadow mode, agreement
    with production)."""
    platform = platform_of(context)
    analysis = online.analyze(platform, context.partition_key, dagster_run_id=context.run.run_id)
    for request_id in filter(None, context.run.tags.get(EXPERIMENT_REQUEST_TAG, "").split(",")):
        requests.mark_done(platform, int(request_id), context.run.run_id)
    context.log.info(format_stored_analysis(analysis.result))
    return dg.MaterializeResult(metadata={
        "analysis_id": analysis.id,
        "trustworthy": analysis.trustworthy,
        "guardrail_verdict": analysis.guardrail_verdict,
        "analysis": dg.MetadataValue.md(analysis_markdown(analysis.result)),
        "inputs": dg.MetadataValue.json(analysis.inputs),
        "agreement": dg.MetadataValue.json(analysis.agreement),
        "analysis_seconds": float(analysis.seconds),
    })


@dg.asset(
    partitions_def=model_versions,
    deps=[gate_decision, dg.AssetDep(experiment_analysis, partition_mapping=dg.AllPartitionMapping())],
    group_name="release",
    code_version=ONLINE_GATE_CODE_VERSION,
    required_resource_keys=PLATFORM,
)
def online_gate(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The model version's online gate: the online guardrails of its release-blocking suites applied to
    the latest valid analyses of the experiments it is the candidate of."""
    state, record, override = online.online_state(platform_of(context), context.partition_key)
    return dg.MaterializeResult(metadata={
        "online_decision": str(record.decision), "effective_online_decision": str(state), "gate_decision_id": record.id,
        "reasons": dg.MetadataValue.md(online_gate_markdown(record.reasons, override)),
    })


@dg.asset_check(asset=online_gate, blocking=True, description=(
    "The online gate passed, was overridden by an approver, or is not required. Blocking: the promotion "
    "downstream does not run otherwise."), required_resource_keys=PLATFORM)
def online_gate_passed(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    model_key = context.run.tags["dagster/partition"]
    state, record, override = online.online_state(platform_of(context), model_key)
    return dg.AssetCheckResult(passed=state in ONLINE_RELEASABLE, metadata={
        "model_version": model_key, "effective_online_decision": str(state), "gate_decision_id": record.id,
        "override": f"{override.approver}: {override.reason}" if override else "-"})
