"""The platform's errors in the API's words: a field named as the request names it (``dataset_id`` -> ``datasetId``),
and a record a request field names that does not exist as a 422 naming that field (not a 404 of the path)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from eval_platform.core.errors import InvalidInput, NotFound
from eval_platform.core.installation import NotAllowed
from eval_platform.registry import access

Record = TypeVar("Record")


@contextmanager
def fields_named(names: dict[str, str]) -> Iterator[None]:
    """Report the platform's field names as the API's (``dataset_id`` -> ``datasetId``)."""
    try:
        yield
    except access.Forbidden as error:
        if error.field in names:
            error.field = names[error.field]
        raise
    except InvalidInput as error:
        head = re.split(r"[.\[]", error.field, maxsplit=1)[0]  # rating_scale.levels, rating_columns[rater_a]
        kind = NotAllowed if isinstance(error, NotAllowed) else InvalidInput  # an operator's refusal stays one
        if error.field in names:
            raise kind(names[error.field], error.problem) from error
        if head != error.field and head in names:
            raise kind(names[head] + error.field[len(head):], error.problem) from error
        raise


def record_named_by(field: str, load: Callable[[], Record]) -> Record:
    """A record named by a request field: unknown or malformed is a 422 naming that field."""
    try:
        return load()
    except NotFound as error:
        raise InvalidInput(field, f"{error.key!r}: no such {error.kind}") from error
    except InvalidInput as error:
        raise InvalidInput(field, error.problem) from error
