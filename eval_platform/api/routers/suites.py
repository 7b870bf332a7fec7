"""``/v1/metric-suites``: register metric suite versions (the definition as in the YAML files), list and read them."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Body
from fastapi import Path as PathParam
from sqlalchemy import func, select

from eval_platform.api.dependencies import Caller, Limit, Offset, PlatformDep
from eval_platform.api.limits import LimitedJSONRoute
from eval_platform.api.pages import PAGE_HEADERS_DOC, page_headers
from eval_platform.api.problems import problem_responses, respond
from eval_platform.api.schemas import SUITE_BODY_SCHEMA, SuiteOut
from eval_platform.api.serializers import suite_json
from eval_platform.core.errors import InvalidInput
from eval_platform.core.keys import KEY_PATTERN, VersionedKey
from eval_platform.registry import MetricSuite

router = APIRouter(tags=["metric suites"], route_class=LimitedJSONRoute)


@router.post("/v1/metric-suites", status_code=201, response_model=SuiteOut,
             responses={200: {"model": SuiteOut, "description": "Identical definition: the existing version"}, **problem_responses(422)})
def register_suite(principal: Caller, platform: PlatformDep,
                   body: Annotated[dict[str, Any], Body(description="The suite definition (as in the YAML files)",
                                                        json_schema_extra=SUITE_BODY_SCHEMA)]):
    result = platform.register_suite(body, principal=principal)
    record = cast(MetricSuite, result.record)
    return respond(suite_json(record, result.created), 201 if result.created else 200, headers={"Location": f"/v1/metric-suites/{record.key}"})


@router.get("/v1/metric-suites", response_model=list[SuiteOut], responses=PAGE_HEADERS_DOC)
def list_suites(principal: Caller, platform: PlatformDep, offset: Offset = 0, limit: Limit = 100):
    """Metric suite versions, one page in key order; ``X-Total-Count`` says how many there are."""
    with platform.registry.session() as session:
        total = session.scalar(select(func.count()).select_from(MetricSuite)) or 0
        suites = list(session.scalars(select(MetricSuite).order_by(MetricSuite.suite_id, MetricSuite.version).offset(offset).limit(limit)))
    return respond([suite_json(s) for s in suites], headers=page_headers(offset, limit, total))


@router.get("/v1/metric-suites/{suiteKey}", response_model=SuiteOut, responses=problem_responses(404, 422))
def get_suite(suite_key: Annotated[str, PathParam(alias="suiteKey", min_length=1, max_length=400, pattern=KEY_PATTERN)],
              principal: Caller, platform: PlatformDep):
    try:
        VersionedKey.parse(suite_key, "suiteKey")
    except InvalidInput as error:
        raise InvalidInput("suiteKey", error.problem) from error
    return respond(suite_json(platform.suite(suite_key)))
