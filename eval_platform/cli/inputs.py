"""What ``evalp``'s commands read: the installation (``--home``), data tables and suite or experiment documents."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from eval_platform.core.errors import InvalidInput
from eval_platform.core.yamlsafe import DEFAULT_LIMITS, load_yaml

if TYPE_CHECKING:
    from eval_platform.platform.service import EvalPlatform  # annotations only: importing it takes seconds

#: The table formats ``read_table`` knows, by file suffix.
PARQUET_SUFFIXES = (".parquet", ".pq")
DELIMITED_SUFFIXES = (".csv", ".tsv")
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")


def open_platform(args: argparse.Namespace) -> EvalPlatform:
    from eval_platform.platform.service import EvalPlatform  # keeps evalp --help fast

    return EvalPlatform.open(args.home)


def read_table(path: str, field: str = "--file"):
    """A Parquet, CSV, TSV or JSONL file as a pandas frame; a missing or unreadable file is refused naming ``field``."""
    # pandas ships no type information here (pandas-stubs is not installed)
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise InvalidInput(field, f"{path} does not exist")
    suffix = file.suffix.lower()
    try:
        if suffix in PARQUET_SUFFIXES:
            return pd.read_parquet(file)
        if suffix in DELIMITED_SUFFIXES:
            return pd.read_csv(file, sep="\t" if suffix == ".tsv" else ",")
        if suffix in JSON_LINES_SUFFIXES:
            return pd.read_json(file, lines=True)
    except Exception as error:  # parser errors name the line; keep their words
        raise InvalidInput(field, f"{path} could not be read: {error}") from error
    raise InvalidInput(field, f"{path}: unsupported format (use .parquet, .csv, .tsv or .jsonl)")


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
