"""Uploaded files: a table (Parquet, CSV, TSV or JSONL) read into a frame, a model file stored under the installation.

A file over the server's limit is a 413 problem naming ``file``; one that cannot be read is a 422 naming
``file`` with the parser's words (never the rows). :mod:`eval_platform.api.middleware` bounds the whole
request body as well.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pandas as pd
from fastapi import UploadFile

from eval_platform.api.problems import ProblemError
from eval_platform.core.errors import InvalidInput
from eval_platform.core.tables import CSV, read_table
from eval_platform.core.tasks import TASK_TYPES
from eval_platform.platform.service import EvalPlatform

#: the suffixes a stored model file keeps (anything else is stored as ``.skops``)
MODEL_FILE_SUFFIXES = (".skops", ".parquet", ".csv", ".jsonl")


def too_large(max_bytes: int) -> ProblemError:
    return ProblemError(413, "too-large", "Upload too large", f"at most {max_bytes} bytes", field="file")


def read_dataset_upload(upload: UploadFile, max_bytes: int, task_type: str | None = None) -> pd.DataFrame:
    """A dataset's rows: Parquet (by its magic bytes), JSONL or TSV by name, else CSV; the task type's text
    columns stay text (:mod:`eval_platform.core.tables`)."""
    if upload.size is not None and upload.size > max_bytes:
        raise too_large(max_bytes)
    task = TASK_TYPES.get(task_type or "")  # an unknown one is refused by the registration, naming taskType
    return read_table(upload.file, field="file", name=upload.filename or "", default_format=CSV,
                      text_columns=task.text_columns if task else (), verbatim_columns=task.verbatim_columns if task else ())


def read_experiment_batch(upload: UploadFile) -> pd.DataFrame:
    """A batch of an experiment's online data: Parquet (by its magic bytes), JSONL by name, else CSV."""
    return read_table(upload.file, field="file", name=upload.filename or "", default_format=CSV)


def read_upload_bytes(upload: UploadFile, max_bytes: int, field: str) -> bytes:
    """A small upload's bytes (a training manifest): over ``max_bytes`` is a 413, empty is refused naming ``field``."""
    payload = upload.file.read(max_bytes + 1)
    if len(payload) > max_bytes:
        raise too_large(max_bytes)
    if not payload:
        raise InvalidInput(field, "the uploaded file is empty")
    return payload


def store_model_file(platform: EvalPlatform, upload: UploadFile, max_bytes: int) -> tuple[Path, bool]:
    """Write the upload under ``<home>/models/`` named by its SHA-256; True if this call created it."""
    directory = platform.config.home / "models"
    directory.mkdir(parents=True, exist_ok=True)
    suffix = Path(upload.filename or "").suffix.lower()
    suffix = suffix if suffix in MODEL_FILE_SUFFIXES else ".skops"
    temporary = directory / f".upload-{uuid.uuid4().hex}"
    digest, size = hashlib.sha256(), 0
    try:
        with open(temporary, "wb") as out:
            while chunk := upload.file.read(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    raise too_large(max_bytes)
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise InvalidInput("file", "the uploaded file is empty")
        final = directory / f"sha256-{digest.hexdigest()}{suffix}"
        if final.exists():
            return final, False
        os.replace(temporary, final)
        return final, True
    finally:
        temporary.unlink(missing_ok=True)
