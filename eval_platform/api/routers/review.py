"""``/v1/review``: the review queue of judged runs' examples (:mod:`eval_platform.evaluation.review_queue`): list and
read items, label them (reviewer role), publish labelled items as a new version of a calibration dataset.

An item of a dataset whose rows the caller's team may not read answers exactly as an absent item (404, the same
body). Request bodies are small: one over :data:`REVIEW_BODY_LIMIT` bytes is a 413 problem naming ``body``, before
it is parsed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import Field
from pydantic.alias_generators import to_camel
from starlette.exceptions import HTTPException

from eval_platform.api.dependencies import Caller, Limit, Offset, PlatformDep
from eval_platform.api.field_names import fields_named
from eval_platform.api.limits import LimitedJSONRoute
from eval_platform.api.pages import PAGE_HEADERS_DOC, page_headers
from eval_platform.api.problems import ProblemError, problem_responses, respond
from eval_platform.api.schemas import Camel
from eval_platform.api.serializers import dataset_json
from eval_platform.core.keys import ID_OR_KEY_PATTERN, ID_PATTERN
from eval_platform.evaluation.review_queue import (
    CALIBRATION_ROLE,
    MAX_PUBLISH_ITEMS,
    NOTE_MAX,
    ReviewItemView,
    get_item,
    label_item,
    list_items,
    publish,
)

#: the largest request body of these routes (10,000 item ids fit several times over)
REVIEW_BODY_LIMIT = 256 * 1024


def _too_large(detail: str) -> ProblemError:
    return ProblemError(413, "too-large", "Request body too large", detail, field="body")


class BoundedBodyRoute(LimitedJSONRoute):
    """:class:`LimitedJSONRoute` with a far smaller body bound: a Content-Length over it is refused before anything
    is read, and a streamed body as soon as it passes it."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def bounded(request: Request):
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > REVIEW_BODY_LIMIT:
                raise _too_large(f"at most {REVIEW_BODY_LIMIT} bytes, got {length}")
            seen = 0
            receive = request.receive

            async def counted():
                nonlocal seen
                message = await receive()
                if message.get("type") == "http.request":
                    seen += len(message.get("body") or b"")
                    if seen > REVIEW_BODY_LIMIT:
                        raise _too_large(f"at most {REVIEW_BODY_LIMIT} bytes")
                return message

            try:
                return await handler(Request(request.scope, counted))
            except HTTPException as error:  # FastAPI wraps an error raised while it reads the body
                if isinstance(error.__cause__, ProblemError):
                    raise error.__cause__ from None
                raise

        return bounded


router = APIRouter(tags=["review"], route_class=BoundedBodyRoute)

ItemId = Annotated[int, Path(alias="itemId", ge=1, le=2_000_000_000, description="a review item's id")]


class LabelBody(Camel):
    """A reviewer's label of an item."""

    label: Literal["pass", "fail"]
    note: str = Field("", max_length=NOTE_MAX)


class PublishBody(Camel):
    """Which labelled items to publish (by id, or every labelled item of a dataset) into which dataset."""

    into: str = Field(min_length=1, max_length=128, pattern=ID_PATTERN, description="the calibration dataset's id")
    items: list[Annotated[int, Field(ge=1, le=2_000_000_000)]] | None = Field(None, min_length=1, max_length=MAX_PUBLISH_ITEMS)
    dataset: str | None = Field(None, min_length=1, max_length=400, pattern=ID_OR_KEY_PATTERN,
                                description="publish every labelled item of this dataset (ID or ID@VERSION)")
    role: str = Field(CALIBRATION_ROLE, max_length=16, description="the role of a new target (an existing one keeps its own)")
    access_level: Literal["public", "internal", "restricted"] = Field("internal", description="a new target's access level")
    teams: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=1000)
    allow_aggregates: bool = False


#: the library's field names of a publish, as the body names them
PUBLISH_FIELDS = {"access_policy": "accessLevel", "access_policy.level": "accessLevel", "access_policy.teams": "teams"}


def item_json(view: ReviewItemView) -> dict:
    """An item as the API shows it: the library's JSON (what ``evalp review --json`` prints) in camelCase."""
    out = {to_camel(key): value for key, value in view.to_json().items()}
    out["labels"] = [{to_camel(key): value for key, value in entry.items()} for entry in out["labels"]]
    return out


@router.get("/v1/review/items", responses={**PAGE_HEADERS_DOC, **problem_responses(422)})
def list_review_items(
    principal: Caller, platform: PlatformDep,
    dataset: Annotated[str | None, Query(min_length=1, max_length=400, pattern=ID_OR_KEY_PATTERN, description="ID or ID@VERSION")] = None,
    status: Annotated[Literal["open", "labelled", "published"] | None, Query()] = None,
    reason: Annotated[Literal["judge_samples_disagree", "judge_vs_reference", "audit_sample"] | None, Query()] = None,
    offset: Offset = 0, limit: Limit = 100,
):
    """The review items of datasets whose rows the team may read, oldest first; one page (``X-Total-Count``)."""
    views, total = list_items(platform, principal, dataset=dataset, status=status, reason=reason, offset=offset, limit=limit)
    return respond([item_json(v) for v in views], headers=page_headers(offset, limit, total))


@router.get("/v1/review/items/{itemId}", responses=problem_responses(404, 422))
def get_review_item(item_id: ItemId, principal: Caller, platform: PlatformDep):
    """An item with its label history, the question, the reference and the judged answer (a restricted read is logged)."""
    return respond(item_json(get_item(platform, item_id, principal)))


@router.post("/v1/review/items/{itemId}/label", status_code=201, responses=problem_responses(403, 404, 409, 413, 422))
def post_review_label(item_id: ItemId, body: LabelBody, principal: Caller, platform: PlatformDep):
    """Label an item pass or fail (reviewer role); a relabel is added to its history and the newest counts."""
    return respond(item_json(label_item(platform, item_id, body.label, body.note, principal=principal)), 201)


@router.post("/v1/review/publish", status_code=201, responses=problem_responses(403, 409, 413, 422))
def post_review_publish(body: PublishBody, principal: Caller, platform: PlatformDep):
    """Publish labelled items as a new version of a calibration dataset (reviewer role, and a member of the target's team)."""
    policy = {"level": body.access_level, "teams": body.teams, "allow_aggregates": body.allow_aggregates}
    with fields_named(PUBLISH_FIELDS):
        published = publish(platform, body.into, items=body.items, dataset=body.dataset, principal=principal, role=body.role,
                            access_policy=policy)
    return respond({"dataset": dataset_json(published.dataset, published.created), "items": list(published.item_ids),
                    "rowsAdded": published.rows_added, "labelPolicy": published.label_policy, "lineage": published.lineage}, 201)
