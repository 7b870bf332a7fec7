"""What the routes receive besides the request's own fields: the platform the app serves, the calling principal,
the server's upload limit, and the path and paging parameters several routers share.

The dependencies are ``async`` functions: FastAPI runs a plain one in a worker thread, a hop per request for
reading an attribute.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from eval_platform.api.auth import current_principal
from eval_platform.api.pages import MAX_PAGE
from eval_platform.core.keys import KEY_PATTERN
from eval_platform.governance.observability import HttpStats
from eval_platform.platform.service import EvalPlatform
from eval_platform.registry.access import Principal


async def get_platform(request: Request) -> EvalPlatform:
    """The installation the app serves (``create_app`` puts it in ``app.state``)."""
    return request.app.state.platform


async def get_max_upload_bytes(request: Request) -> int:
    return request.app.state.max_upload_bytes


async def get_http_stats(request: Request) -> HttpStats:
    return request.app.state.http_stats


PlatformDep = Annotated[EvalPlatform, Depends(get_platform)]
#: the calling principal, its token checked on every request (:func:`eval_platform.api.auth.current_principal`)
Caller = Annotated[Principal, Depends(current_principal)]
MaxUploadBytes = Annotated[int, Depends(get_max_upload_bytes)]
HttpStatsDep = Annotated[HttpStats, Depends(get_http_stats)]

RunId = Annotated[str, Path(alias="runId", min_length=1, max_length=40, description="An eval run id (run-...)")]
DatasetKey = Annotated[str, Path(alias="datasetKey", min_length=1, max_length=400, pattern=KEY_PATTERN, description="DATASET_ID@VERSION")]
ModelKey = Annotated[str, Path(alias="modelKey", min_length=1, max_length=400, pattern=KEY_PATTERN, description="NAME@VERSION")]
Offset = Annotated[int, Query(ge=0, le=2_000_000_000)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
