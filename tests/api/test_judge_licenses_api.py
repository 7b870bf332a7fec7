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
