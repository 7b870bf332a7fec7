"""Paging: a list route's place in its items, and one page of a stored table's rows.

The list routes that answer a JSON array (datasets, metric suites, models) give their page's place in
headers, so the body keeps its shape: ``X-Total-Count`` (all matching items), ``X-Offset``, ``X-Limit``.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from eval_platform.core.errors import NotFound
from eval_platform.platform.service import EvalPlatform

#: The largest page a list route answers.
MAX_PAGE = 1000

#: OpenAPI ``responses`` of a list route that answers a JSON array: the page's place in headers.
PAGE_HEADERS_DOC: dict[int | str, dict] = {200: {"description": "One page, in key order (``offset``/``limit``)", "headers": {
    "X-Total-Count": {"description": "How many items match, over all pages", "schema": {"type": "integer"}},
    "X-Offset": {"description": "The page's offset", "schema": {"type": "integer"}},
    "X-Limit": {"description": "The page's size limit", "schema": {"type": "integer"}}}}}


def page_fields(offset: int, limit: int, total: int) -> dict:
    return {"offset": offset, "limit": limit, "total": total}


def page_headers(offset: int, limit: int, total: int) -> dict:
    return {"X-Total-Count": str(total), "X-Offset": str(offset), "X-Limit": str(limit)}


def rows_json(frame: pd.DataFrame, offset: int, limit: int) -> dict:
    page = frame.iloc[offset:offset + limit]
    rows = json.loads(page.to_json(orient="records", date_format="iso", default_handler=str)) if len(page) else []
    return {"offset": offset, "limit": limit, "total": int(len(frame)), "columns": [str(c) for c in frame.columns], "rows": rows}


def page_of_table(platform: EvalPlatform, kind: str, digest: str, offset: int, limit: int) -> dict:
    """One page of a stored table, reading only the Parquet row groups it spans (datasets reach millions of rows)."""
    path = platform.store._path(kind, digest, ".parquet")
    if not platform.store.fs.exists(path):
        raise NotFound(f"{kind} artifact", digest)
    with platform.store.fs.open(path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        total = parquet.metadata.num_rows
        groups, start, first_row = [], 0, None
        for index in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(index).num_rows
            if start + rows > offset and start < offset + limit:
                groups.append(index)
                first_row = start if first_row is None else first_row
            start += rows
        table = parquet.read_row_groups(groups) if groups else parquet.schema_arrow.empty_table()
    if first_row is not None:
        table = table.slice(offset - first_row, limit)
    frame = table.to_pandas() if isinstance(table, pa.Table) else table
    result = rows_json(frame, 0, limit)
    result.update(offset=offset, total=int(total))
    return result
