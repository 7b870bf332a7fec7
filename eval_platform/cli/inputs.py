"""What ``evalp``'s commands read: the installation (``--home``), data tables and suite or experiment documents."""

from __future__ import annotations

import argparse
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from eval_platform.core.errors import InvalidInput
from eval_platform.core.yamlsafe import DEFAULT_LIMITS, load_yaml

if TYPE_CHECKING:
    from eval_platform.platform.service import EvalPlatform  # annotations only: importing it takes seconds


def open_platform(args: argparse.Namespace) -> EvalPlatform:
    from eval_platform.platform.service import EvalPlatform  # keeps evalp --help fast

    return EvalPlatform.open(args.home)


def read_table(path: str, field: str = "--file", text_columns: Collection[str] = (), verbatim_columns: Collection[str] = ()):
    """A Parquet, CSV, TSV or JSONL file as a pandas frame, read by :func:`eval_platform.core.tables.read_table`:
    ``text_columns`` stay text (refused naming row and column otherwise); a missing, unreadable or pickled file
    is refused naming ``field``."""
    from eval_platform.core import tables  # keeps evalp --help fast

    return tables.read_table(path, field=field, text_columns=text_columns, verbatim_columns=verbatim_columns)


def read_document(path: str) -> dict:
    """A YAML or JSON mapping, within the safe loader's limits; refused naming ``file`` otherwise."""
    file = Path(path)
    if not file.is_file():
        raise InvalidInput("file", f"{path} does not exist")
    if file.stat().st_size > DEFAULT_LIMITS.max_bytes:  # not even read: refused on its size
        raise InvalidInput("file", f"{path}: the document is {file.stat().st_size} bytes, over the limit of {DEFAULT_LIMITS.max_bytes} bytes")
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput("file", f"{path} could not be read: {error}") from error
    document = load_yaml(text, field="file", source=path)  # limits on size, depth and aliases (an alias bomb)
    if not isinstance(document, dict):
        raise InvalidInput("file", f"{path} must contain a mapping")
    return document
