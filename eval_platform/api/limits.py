"""JSON request bodies parsed with limits on size and nesting.

FastAPI decodes a JSON body with ``json.loads``, which recurses once per nesting level: a body nested
20,000 deep raises ``RecursionError`` inside the decoder (answered as an anonymous 400), and a body within
the recursion limit but hundreds deep reaches the suite and experiment parsers. Every route of the app uses
:class:`LimitedJSONRoute`, whose request decodes the body with :func:`eval_platform.core.yamlsafe.load_json`:
a body over the limits is a 422 problem naming ``body`` and the limit (a body that is not JSON at all is
answered as before, by FastAPI's decoding error).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException  # what FastAPI raises for a body it could not parse

from eval_platform.core.errors import InvalidInput
from eval_platform.core.yamlsafe import check_json_text, check_structure


class LimitedJSONRequest(Request):
    """A request whose JSON body is checked against the size and nesting limits before (and after) decoding."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            check_json_text(body, field="body", source="the request body")
            value = json.loads(body)  # a JSONDecodeError is FastAPI's to report, as without limits
            check_structure(value, field="body", source="the request body")
            self._json = value
        return self._json


class LimitedJSONRoute(APIRoute):
    """The route class of every router of the app: its handler sees a :class:`LimitedJSONRequest`."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def limited(request: Request):
            try:
                return await handler(LimitedJSONRequest(request.scope, request.receive))
            except HTTPException as error:
                # FastAPI turns any error while decoding the body into "There was an error parsing the body";
                # ours names the field and the limit, so answer with it (a 422 problem)
                if isinstance(error.__cause__, InvalidInput):
                    raise error.__cause__ from None
                raise

        return limited
