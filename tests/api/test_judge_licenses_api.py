"""``GET /v1/judges/licenses`` and ``evalp judges``: the current status and history of a suite's judge license;
another team that may not know the (restricted) calibration dataset gets exactly what an absent suite gets."""

import json

import httpx

from eval_platform.api.app import create_app
from eval_platform.cli.main import main
from eval_platform.registry.access import create_token
from tests.api.test_api import Server
from tests.judge_calibration import CALIBRATION_ID, calibration_frame, judge_license
from tests.llm.test_llm_runs import judged_suite, service  # noqa: F401 (fixtures)


def test_the_license_route_and_the_cli_and_another_teams_token(service, capsys):  # noqa: F811
    frame = calibration_frame().drop(columns=["judge_expected"])
    service.register_dataset(CALIBRATION_ID, frame, task_type="generation", label_policy="human_reviewed", role="calibration",
                             access_policy={"level": "restricted", "teams": ["alpha"]})
    service.register_suite(judged_suite(judge_license=judge_license()))
    home = ["--home", str(service.config.home)]
    assert main([*home, "judges", "licenses", "--suite", "qa"]) == 0
    assert "NOT licensed (the gate has no decision): judge rule-judge-1@1." in capsys.readouterr().out

    assert main([*home, "--json", "judges", "license", "--suite", "qa", "--by", "tester"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert checked["licensed"] is True and checked["estimate"] == 1.0 and checked["computed_by"] == "tester"
    assert main([*home, "judges", "license", "--suite", "qa@1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("licensed: judge rule-judge-1@1.") and "judge calls 0, cache hits 60" in out  # the recheck is free

    tokens = {"alpha": create_token(service, "alpha", principal="ann", roles=("member",)),
              "beta": create_token(service, "beta", principal="bob", roles=("member",))}
    with Server(create_app(service)) as api, httpx.Client(base_url=api.url, timeout=30) as client:
        def get(who, suite):
            return client.get("/v1/judges/licenses", params={"suite": suite}, headers={"Authorization": f"Bearer {tokens[who]}"})

        mine = get("alpha", "qa")
        assert mine.status_code == 200, mine.text
        body = mine.json()
        assert body["suite"] == "qa@1" and body["status"]["licensed"] is True
        assert [lic["licensed"] for lic in body["licenses"]] == [True, True] and body["licenses"][0]["calibrationDataset"] == "qa-calibration@1"
        assert body["status"]["licenseId"] == body["licenses"][0]["id"]
        hidden, absent = get("beta", "qa"), get("beta", "nope")
        assert hidden.status_code == absent.status_code == 404
        assert hidden.json()["detail"].replace("'qa'", "'X'") == absent.json()["detail"].replace("'nope'", "'X'")
        assert get("alpha", "bad key!").status_code == 422
        assert client.get("/v1/judges/licenses", params={"suite": "qa"}).status_code == 401


def test_the_route_and_the_cli_show_a_license_invalidated_by_a_contaminated_calibration_version(service, capsys):  # noqa: F811
    frame = calibration_frame().drop(columns=["judge_expected"])
    service.register_dataset(CALIBRATION_ID, frame, task_type="generation", label_policy="human_reviewed", role="calibration")
    service.register_suite(judged_suite(judge_license=judge_license()))
    home = ["--home", str(service.config.home)]
    assert main([*home, "--json", "judges", "license", "--suite", "qa"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert checked["licensed"] is True and checked["invalidated"] is False and checked["invalidation"] is None

    assert main([*home, "datasets", "invalidate", f"{CALIBRATION_ID}@1", "--reason", "leaked", "--by", "ops"]) == 0
    out = capsys.readouterr().out
    assert f"judge license {checked['id']} of {checked['judge_key']} on {CALIBRATION_ID}@1 invalidated" in out

    assert main([*home, "judges", "licenses", "--suite", "qa"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"NOT licensed (the gate has no decision): judge {checked['judge_key']}: license {checked['id']} invalidated "
                          f"(calibration version {CALIBRATION_ID}@1 contaminated: leaked); calibration dataset {CALIBRATION_ID} "
                          "has no active calibration version left"), out
    assert "invalidated" in out.splitlines()[1] and "yes (incident 1)" in out
    assert f"license {checked['id']} invalidated: calibration version {CALIBRATION_ID}@1 contaminated: leaked" in out
    assert main([*home, "--json", "judges", "licenses", "--suite", "qa"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["status"]["licensed"] is False and listed["status"]["license"] is None
    [history] = listed["licenses"]
    assert history["invalidated"] is True and history["invalidation"]["incident_id"] == 1 and history["invalidation"]["invalidated_by"] == "ops"

    token = create_token(service, "alpha", principal="ann", roles=("member",))
    with Server(create_app(service)) as api, httpx.Client(base_url=api.url, timeout=30) as client:
        answer = client.get("/v1/judges/licenses", params={"suite": "qa"}, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"]["licensed"] is False and body["status"]["licenseId"] is None
        assert "has no active calibration version left" in body["status"]["message"]
        [lic] = body["licenses"]
        assert lic["id"] == checked["id"] and lic["licensed"] is True and lic["invalidated"] is True
        assert lic["invalidation"]["reason"] == f"calibration version {CALIBRATION_ID}@1 contaminated: leaked"
        assert lic["invalidation"]["incidentId"] == 1 and lic["invalidation"]["invalidatedBy"] == "ops"
        assert lic["figures"].endswith(f"INVALIDATED: calibration version {CALIBRATION_ID}@1 contaminated: leaked")
