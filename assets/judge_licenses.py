"""``judge_license``: one partition per judge version (model, model version, prompt version, config hash), the
judge's agreement with the human labels of each calibration dataset its suites name, and the check
``judge_licensed``.

A materialization checks the judge on the newest active version of every calibration dataset its suites name
(:func:`eval_platform.evaluation.judge_license.license_judge_version`: the judge's calls go through the LLM
call cache, so a recheck pays nothing), appends the licenses to the registry, shows the figures and the drift
against the previous licensed judge version, and then decides again the gates of the model versions whose
release-blocking runs use this judge: the gate sensor then materializes their ``gate_decision``.
"""

import dagster as dg

from eval_platform.evaluation import judge_license as licensing
from eval_platform.evaluation.judge_license import JudgeLicense
from eval_platform.evaluation.judge_license_gates import redecide_gates_of_judge
from eval_platform_dagster.assets.partitions import judge_versions
from eval_platform_dagster.assets.platform import PLATFORM, platform_of

#: Green when the judge version holds a license under every requirement its suites state.
JUDGE_LICENSED = "judge_licensed"
JUDGE_LICENSE_CODE_VERSION = "1"


def _shown(value: float | None, spec: str = ".3f") -> str:
    return "undefined" if value is None else format(value, spec)


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def licenses_table(checked: list[JudgeLicense]) -> str:
    """The figures of each check as a Markdown table (one row per calibration dataset version)."""
    lines = ["| calibration | measure | estimate | lower bound | upper bound | required | examples | judge errors | pass rate | licensed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for lic in checked:
        lines.append(f"| {lic.calibration_key} | {lic.measure} ({lic.confidence:.0%}) | {_shown(lic.estimate)} | {_shown(lic.ci_low)} | "
                     f"{_shown(lic.ci_high)} | {lic.min_lower_bound:.2f} | {lic.n} | {lic.n_judge_errors} | {_shown(lic.pass_rate)} | "
                     f"{'yes' if lic.licensed else 'no'} |")
    return "\n".join(lines)


def drift_table(checked: list[JudgeLicense]) -> str:
    """Each check against the previous judge version licensed on the same calibration dataset."""
    lines = ["| calibration | previous judge | rows both judged | agreement | judge-vs-judge kappa | pass rate (before -> now) | "
             "pass-rate change | measure change |", "|---|---|---|---|---|---|---|---|"]
    for lic in checked:
        d = lic.drift
        if d is None:
            lines.append(f"| {lic.calibration_key} | none licensed before | - | - | - | - | - | - |")
            continue
        lines.append(f"| {lic.calibration_key} | {d.previous_judge_key} (license {d.previous_license_id}) | {d.n_common} | "
                     f"{_shown(d.agreement)} | {_shown(d.judge_kappa)} | {_shown(d.pass_rate_previous)} -> {_shown(d.pass_rate_current)} | "
                     f"{_signed(d.pass_rate_change)} | {_signed(d.measure_change)} |")
    return "\n".join(lines)


@dg.asset(
    partitions_def=judge_versions,
    group_name="judges",
    code_version=JUDGE_LICENSE_CODE_VERSION,
    kinds={"openai"},
    pool="judge",
    check_specs=[dg.AssetCheckSpec(JUDGE_LICENSED, asset="judge_license", partitions_def=judge_versions, description=(
        "The judge version's agreement with the human labels of each calibration dataset its suites name meets the "
        "suites' requirement (lower confidence bound of kappa or accuracy >= min_lower_bound). Not blocking here: the "
        "release gate of a release-blocking suite is no_decision while its judge holds no license."))],
    required_resource_keys=PLATFORM,
)
def judge_license(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The judge version's licenses on the newest active calibration versions, with the drift against the
    previous licensed judge version; the gates waiting on this judge are decided again."""
    platform = platform_of(context)
    checked = licensing.license_judge_version(platform, context.partition_key, computed_by=f"dagster-run:{context.run.run_id}")
    redecided = redecide_gates_of_judge(platform, checked[0].judge_config_hash) if checked else []
    licensed = all(lic.licensed for lic in checked)
    figures = {lic.calibration_key: lic.figures() for lic in checked}
    metadata: dict = {
        "judge_key": context.partition_key,
        "judge_model": checked[0].judge_model if checked else "-",
        "judge_prompt_version": checked[0].judge_prompt_version if checked else "-",
        "judge_config_hash": checked[0].judge_config_hash if checked else "-",
        "licensed": licensed,
        "licenses": dg.MetadataValue.md(licenses_table(checked)),
        "drift": dg.MetadataValue.md(drift_table(checked)),
        "judge_calls": sum(int(lic.calls.get("calls", 0)) for lic in checked),
        "judge_cache_hits": sum(int(lic.calls.get("cache_hits", 0)) for lic in checked),
        "gates_redecided": ", ".join(redecided) or "none",
        "details": dg.MetadataValue.json([lic.to_dict() for lic in checked]),
    }
    for lic in checked:  # numeric: the UI plots them across materializations
        if lic.ci_low is not None:
            metadata[f"{lic.calibration_dataset_id}/{lic.measure}_lower_bound"] = float(lic.ci_low)
    return dg.MaterializeResult(metadata=metadata, check_results=[dg.AssetCheckResult(
        check_name=JUDGE_LICENSED, passed=licensed, metadata={"figures": "; ".join(figures.values()) or "no calibration dataset"})])
