"""One grammar for the names people give things: dataset ids, suite ids, model names, experiment ids.

An id is 1 to 128 ASCII letters, digits, ``-``, ``_`` and ``.``, not starting with ``.``. Ids end up in URL
paths, ``Location`` headers, file names, log lines and Dagster partition keys (``name@version``), so a
space, ``..``, a slash, a non-ASCII character or a line break in one would break (or be) an attack on one of
them. Every entry (API, CLI, YAML files) validates with :func:`validate_id` before anything is written, and
the API's schemas declare :data:`ID_PATTERN` / :data:`KEY_PATTERN` so the OpenAPI document says so too.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from eval_platform.core.errors import InvalidInput

ID_MAX_LENGTH = 128
_ID_BODY = r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}"
#: an id (JSON Schema / pydantic ``pattern``)
ID_PATTERN = rf"^{_ID_BODY}$"
#: ``ID@VERSION``
KEY_PATTERN = rf"^{_ID_BODY}@[1-9][0-9]{{0,8}}$"
#: ``ID`` or ``ID@VERSION`` (a request naming the newest version or a given one)
ID_OR_KEY_PATTERN = rf"^{_ID_BODY}(@[1-9][0-9]{{0,8}})?$"

_ID = re.compile(_ID_BODY, re.ASCII)
GRAMMAR = "1-128 ASCII letters, digits, '-', '_' or '.', not starting with '.'"


def is_valid_id(value: Any) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def validate_id(value: Any, field: str) -> str:
    """``value`` if it is an id, else :class:`InvalidInput` naming ``field`` (the value shown escaped, so a
    line break in it cannot split a log line or a terminal's output)."""
    if not is_valid_id(value):
        shown = ascii(value) if isinstance(value, str) and len(value) <= 200 else f"a {type(value).__name__}"
        if isinstance(value, str) and len(value) > 200:
            shown = f"a string of {len(value)} characters"
        raise InvalidInput(field, f"must be {GRAMMAR}, got {shown}")
    return value


__all__ = ["GRAMMAR", "ID_MAX_LENGTH", "ID_OR_KEY_PATTERN", "ID_PATTERN", "KEY_PATTERN", "VersionedKey", "is_valid_id", "validate_id"]


class VersionedKey(NamedTuple):
    """A versioned name: ``name@version`` of a dataset version, suite version, model version or metric version.

    Parsed once where a key enters (:meth:`parse`), then passed as it is; it unpacks as ``name, version`` and
    prints as ``name@version``.
    """

    name: str
    version: int

    @classmethod
    def parse(cls, key: str, field: str) -> VersionedKey:
        """``name@version`` -> ``VersionedKey(name, version)``; anything else is refused naming ``field``."""
        name, sep, version = key.rpartition("@")
        if not sep or not name or not version.isdigit():
            raise InvalidInput(field, f"{key!r} must be written name@version")
        return cls(name, int(version))

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


#: Joins the two keys of an eval cell (one model version on one dataset version). Never part of an id or a
#: key, so a cell's name splits back unambiguously; it is also the orchestrator's separator of a
#: two-dimensional partition key (Dagster's ``MultiPartitionKey``: dimensions in name order, dataset first).
CELL_SEPARATOR = "|"


def cell_name(model_key: str, dataset_key: str) -> str:
    """The eval cell of ``model_key`` on ``dataset_key``: ``DATASET@V|MODEL@V``."""
    return f"{dataset_key}{CELL_SEPARATOR}{model_key}"


def split_cell_name(cell: str) -> tuple[str, str]:
    """``(model_key, dataset_key)`` of a cell's name."""
    dataset_key, sep, model_key = cell.partition(CELL_SEPARATOR)
    if not sep:
        raise InvalidInput("cell", f"{cell!r} is not an eval cell (DATASET@V{CELL_SEPARATOR}MODEL@V)")
    return model_key, dataset_key
