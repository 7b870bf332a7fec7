"""A multi-label eval cell through the real Dagster definitions on a real instance: sensor, eval job
(predictions, metric table, comparison with the promoted baseline) and the gate decision asset."""

import dagster as dg
import numpy as np
import pytest
import skops.io
from sklearn import metrics as sk

from eval_platform.gates import releases
from eval_platform.platform.service import EvalPlatform
from eval_platform_dagster.jobs import decide_gate, evaluate_eval_cell
from eval_platform_dagster.sensors import eval_request_sensor
from tests.dagster_helpers import execute, tick
from tests.multilabel_data import MULTILABEL_SUITE, topic_models, topics_frame


@pytest.fixture
def topics(tmp_path):
    service = EvalPlatform.open(tmp_path / "home")
    frame, features, indicator = topics_frame()
    service.register_dataset("topics", frame, task_type="multilabel_classification", label_policy="synthetic")
    service.register_suite(MULTILABEL_SUITE)
    yield service, features, indicator, topic_models(tmp_path, features, indicator)
    service.close()


def _evaluate_requested(instance, service):
    request = tick(eval_request_sensor, instance, service).run_requests[0]
    assert execute(evaluate_eval_cell.name, instance, service, request.partition_key, request.tags).success
    return request.partition_key


def test_multilabel_eval_cells_materialize_and_get_gate_decisions(topics):
    service, features, indicator, paths = topics
    with dg.instance_for_test() as instance:
        service.register_model("tagger", paths["ovr"], eval_plan=[("topics", "topics")])
        assert _evaluate_requested(instance, service) == "topics@1|tagger@1"
        for asset in ("predictions", "metric_table", "comparison"):
            assert instance.get_materialized_partitions(dg.AssetKey(asset)) == {"topics@1|tagger@1"}
        run = service.runs("tagger@1")[0]
        model = skops.io.load(paths["ovr"], trusted=skops.io.get_untrusted_types(file=paths["ovr"]))
        scores = model.predict_proba(features)
        assert run.results["metrics"]["f1_micro"] == pytest.approx(
            sk.f1_score(indicator, (scores >= 0.5).astype(int), average="micro"), abs=1e-12)
        assert run.results["metrics"]["hamming"] == pytest.approx(sk.hamming_loss(indicator, (scores >= 0.5).astype(int)), abs=1e-12)
        assert service.gate_decision("tagger@1").decision == "pass"
        table = instance.get_latest_materialization_event(dg.AssetKey("metric_table")).asset_materialization
        assert table.metadata["topics/auc"].value == pytest.approx(sk.roc_auc_score(indicator, scores), abs=1e-12)

        # the next version is compared with the promoted one and the gate decides on the interval
        releases.promote(service, "tagger@1", promoted_by="tester")
        service.register_model("tagger", paths["weak"])
        assert _evaluate_requested(instance, service) == "topics@1|tagger@2"
        candidate = service.runs("tagger@2")[0]
        assert candidate.comparison["baseline_run_id"] == run.run_id
        auc = candidate.comparison["metrics"]["auc"]
        assert auc["ci_high"] < -0.02 and np.isfinite(auc["ci_low"])
        gate = execute(decide_gate.name, instance, service, "tagger@2")
        assert gate.success and gate.dagster_run.tags["eval_platform/decision"] == "fail"
        event = instance.get_latest_materialization_event(dg.AssetKey("gate_decision"))
        assert event.asset_materialization.metadata["decision"].value == "fail"
