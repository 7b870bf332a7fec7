"""The HTTP API as ``evalp gate wait --api URL`` and ``evalp models register --api URL`` use it: a CI job on
another machine with a service token.

The token is read from an environment variable (``$EVALP_TOKEN`` unless ``--token-env`` names another), never
from the command line, where it would show in process listings and CI logs. Only the standard library is
used: the command line needs no HTTP client package.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import quote

from eval_platform.core.errors import EvalPlatformError, InvalidInput

#: The environment variable the API token is read from by default.
TOKEN_ENV = "EVALP_TOKEN"


class ApiUnavailable(EvalPlatformError):
    """The API did not answer (connection refused, a timeout, a 5xx): worth asking again later."""


class NoAnswerByDeadline(ApiUnavailable):
    """A look at the API (or the registry) that had not answered when the command's deadline came."""


class ApiRefused(EvalPlatformError):
    """The API answered with a refusal that asking again will not change (401, 403, 404, 422)."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def api_token(variable: str) -> str:
    token = os.environ.get(variable, "").strip()
    if not token:
        raise InvalidInput("--token-env", f"${variable} is empty or unset: set it to the API token (evalp tokens create)")
    return token


def get_json(base_url: str, path: str, token: str, timeout: float = 30.0) -> Any:
    """``GET base_url + path`` with the bearer token; the JSON body of a 200."""
    return _send(_request(base_url, path, token), timeout)


def post_json(base_url: str, path: str, token: str, body: Any, timeout: float = 60.0) -> Any:
    """``POST`` a JSON body with the bearer token; the JSON body of the 2xx answer."""
    request = _request(base_url, path, token, method="POST", data=json.dumps(body).encode("utf-8"), content_type="application/json")
    return _send(request, timeout)


def post_form(base_url: str, path: str, token: str, fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]],
              timeout: float = 300.0) -> Any:
    """``POST`` a ``multipart/form-data`` body (``fields`` as ``(name, value)``, ``files`` as ``(name, file name,
    content)``); the JSON body of the 2xx answer."""
    boundary = f"evalp-{uuid.uuid4().hex}"
    parts = []
    for name, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n'.encode()
                     + value.encode("utf-8") + b"\r\n")
    for name, filename, content in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"; filename="{_quoted(filename)}"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = _request(base_url, path, token, method="POST", data=body,
                       content_type=f"multipart/form-data; boundary={boundary}")
    return _send(request, timeout)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


def check_base_url(base_url: str) -> None:
    if not base_url.startswith(("http://", "https://")):
        raise InvalidInput("--api", f"must be an http:// or https:// URL, got {base_url!r}")


def _request(base_url: str, path: str, token: str, method: str = "GET", data: bytes | None = None,
             content_type: str | None = None) -> urllib.request.Request:
    check_base_url(base_url)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    return urllib.request.Request(base_url.rstrip("/") + path, data=data, headers=headers, method=method)


def _send(request: urllib.request.Request, timeout: float) -> Any:
    base_url = f"{request.type}://{request.host}"
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the scheme is checked above)
            body = response.read()
    except urllib.error.HTTPError as error:
        if error.code >= 500 or error.code == 429:
            raise ApiUnavailable(f"the API answered {error.code}") from error
        raise ApiRefused(error.code, _problem_detail(error)) from error
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise ApiUnavailable(f"the API at {base_url} is unreachable: {getattr(error, 'reason', error)}") from error
    except (http.client.HTTPException, OSError) as error:
        # the connection broke mid-answer: a truncated body (IncompleteRead), a garbled status line, a reset
        # after the headers; an outage to ask again after, never a traceback (which would exit 1, a CI "fail")
        raise ApiUnavailable(f"the API at {base_url} broke off its answer: {type(error).__name__}: {error}") from error
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:  # a proxy's login page, a URL that is not the API
        raise InvalidInput("--api", f"{base_url} did not answer JSON: is it the platform's API?") from error


def _problem_detail(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, OSError):
        return f"HTTP {error.code}"
    return str(body.get("detail") or body.get("title") or f"HTTP {error.code}") if isinstance(body, dict) else f"HTTP {error.code}"


def gate_path(model_key: str) -> str:
    return f"/v1/models/{quote(model_key, safe='@')}/gate"
