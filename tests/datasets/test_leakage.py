"""Leakage and duplicate checks on hand-built frames whose counts are known by construction, and the example
content hash against an independent rendering of its documented definition."""

from __future__ import annotations

import hashlib
import io
import pickle
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eval_platform.core.errors import InvalidInput
from eval_platform.core.hashing import example_hash, example_hashes
from eval_platform.datasets.leakage import (
    content_columns,
    duplicate_report,
    leakage_report,
    parse_cutoff,
    parse_time_column,
    read_training_manifest,
)

SCHEMA = {"id_columns": ["example_id"], "label_column": "label", "feature_columns": ["x", "y"], "slice_columns": ["group"],
          "time_column": "ts", "columns": {"example_id": "int64", "x": "float64", "y": "int64", "group": "object",
                                           "ts": "object", "label": "int64"}}


def _frame(n: int = 10) -> pd.DataFrame:
    """Rows 0..n-1 dated 2025-12-27 + i days: with a cutoff of 2026-01-01T00:00Z, rows 0..5 are at or before it."""
    start = datetime(2025, 12, 27, tzinfo=UTC)
    return pd.DataFrame({"example_id": np.arange(n), "x": np.arange(n) / 4, "y": np.arange(n) * 3,
                         "group": ["a", "b"] * (n // 2), "ts": [(start + timedelta(days=i)).isoformat() for i in range(n)],
                         "label": [0, 1] * (n // 2)})


# the content hash -------------------------------------------------------------------------------------------
def test_example_hash_is_sha256_of_the_documented_canonical_json():
    # written out by hand from the docstring: sorted keys, no spaces, numbers as floats, UTF-8, NaN as null
    text = '{"prompt":"Café?","t":"2026-01-01T00:00:00+00:00","x":1.0,"y":null}'
    expected = "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert example_hash({"y": float("nan"), "x": 1, "prompt": "Café?", "t": pd.Timestamp("2026-01-01")}) == expected
    assert example_hash({}) == "sha256:" + hashlib.sha256(b"{}").hexdigest()


def test_equal_inputs_match_whatever_their_types_and_other_columns():
    training = pd.DataFrame({"x": np.array([1, 2], dtype=np.int32), "prompt": ["a", "b"], "label": [9, 9]})
    evaluation = pd.DataFrame({"example_id": [7, 8], "x": [1.0, 2.0], "prompt": ["a", "B"], "label": [0, 1]})
    a, b = example_hashes(training, ["x", "prompt"]), example_hashes(evaluation, ["x", "prompt"])
    assert a[0] == b[0] and a[1] != b[1]  # case is content
    assert example_hash({"t": pd.Timestamp("2026-01-01T01:00", tz="Europe/Paris")}) == example_hash({"t": "2026-01-01T00:00:00+00:00"})
    assert example_hash({"flag": True}) != example_hash({"flag": 1})  # a boolean is not a number
    assert example_hash({"v": [1, 2]}) == example_hash({"v": np.array([1.0, 2.0])})


def test_content_columns_are_inputs_only():
    assert content_columns(SCHEMA) == ["x", "y"]
    generation = {"id_columns": ["example_id"], "label_column": "reference", "feature_columns": [],
                  "columns": {"example_id": "int64", "prompt": "object", "reference": "object"}}
    assert content_columns(generation) == ["prompt"]
    assert content_columns({"id_columns": ["example_id"], "label_column": "label", "feature_columns": []}) == []


# leakage ------------------------------------------------------------------------------------------------------
def test_temporal_leakage_counts_examples_at_or_before_the_cutoff():
    frame = _frame()
    report = leakage_report(frame, SCHEMA, "2026-01-01T00:00:00Z", None)
    # 2025-12-27 .. 2026-01-01 inclusive: six days, the last exactly at the cutoff
    assert (report.before_cutoff, report.leaked, report.in_manifest) == (6, 6, None)
    assert report.example_ids == ("0", "1", "2", "3", "4")
    assert "6 of 10 examples are at or before the model's training cutoff 2026-01-01T00:00:00+00:00 (time column 'ts')" in report.message()
    # one second earlier: the example at midnight is after it; the same instant in another zone is the same cutoff
    assert leakage_report(frame, SCHEMA, "2025-12-31T23:59:59Z", None).before_cutoff == 5
    assert leakage_report(frame, SCHEMA, datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))), None).before_cutoff == 6
    assert leakage_report(frame, SCHEMA, "2020-01-01", None).leaked == 0


def test_content_leakage_and_the_union_of_both():
    frame = _frame()
    manifest = [example_hash({"x": float(i) / 4, "y": i * 3}) for i in (4, 5, 8)]  # the same inputs as rows 4, 5 and 8
    manifest.append(example_hash({"x": 99.0, "y": 0}))  # a training example not in the dataset
    report = leakage_report(frame, SCHEMA, "2025-12-31T00:00:00Z", manifest)
    # by time: rows 0..4 (5); by content: rows 4, 5, 8 (3); either: 0..5 and 8 (7)
    assert (report.before_cutoff, report.in_manifest, report.leaked) == (5, 3, 7)
    assert "(7 distinct)" in report.message()
    record = report.to_record()
    assert record["leaked"] == 7 and record["time_column"] == "ts" and record["training_cutoff"] == "2025-12-31T00:00:00+00:00"


def test_what_cannot_be_checked_is_said():
    frame = _frame()
    no_time = {k: v for k, v in SCHEMA.items() if k != "time_column"}
    report = leakage_report(frame, no_time, "2026-01-01", None)
    assert not report.checked and report.leaked == 0
    assert report.not_checked == ("the dataset declares no time column", "the model has no training manifest")
    assert leakage_report(frame.iloc[:0], SCHEMA, "2026-01-01", []).to_record()["leaked"] == 0


@pytest.mark.parametrize(("values", "problem"), [
    ([1, 2], "holds numbers"),
    (["2026-01-01", None], "1 null value(s); the first at row 2"),
    (["2026-01-01", "yesterday"], "row 2 value 'yesterday' is not a timestamp"),
])
def test_bad_time_columns_are_named(values, problem):
    with pytest.raises(InvalidInput, match="time_column") as error:
        parse_time_column(pd.DataFrame({"ts": values}), "ts")
    assert problem in error.value.problem
    with pytest.raises(InvalidInput, match="not in the dataset"):
        parse_time_column(pd.DataFrame({"ts": values}), "when")


def test_time_columns_of_datetimes_naive_and_aware():
    naive = pd.DataFrame({"ts": pd.to_datetime(["2026-01-01 00:00", "2026-01-02 00:00"])})
    aware = pd.DataFrame({"ts": pd.to_datetime(["2026-01-01 01:00"]).tz_localize("Europe/Paris")})
    assert parse_time_column(naive, "ts").iloc[0] == pd.Timestamp("2026-01-01", tz="UTC")
    assert parse_time_column(aware, "ts").iloc[0] == pd.Timestamp("2026-01-01", tz="UTC")


@pytest.mark.parametrize("value", ["01/02/2026", "soon", 20260101, "9999-12-31", "2026-13-01"])
def test_bad_cutoffs_are_named(value):
    with pytest.raises(InvalidInput, match="training_cutoff"):
        parse_cutoff(value)


# manifests ------------------------------------------------------------------------------------------------------
def test_manifests_in_text_and_parquet_read_alike():
    hashes = [example_hash({"x": float(i)}) for i in range(3)]
    text = ("example_hash\n" + "\n".join(hashes + [hashes[0], ""]) + "\n").encode()
    buffer = io.BytesIO()
    pq.write_table(pa.table({"example_hash": hashes[::-1]}), buffer)
    assert read_training_manifest(text).equals(read_training_manifest(buffer.getvalue()))
    assert read_training_manifest(text).column("example_hash").to_pylist() == sorted(hashes)


@pytest.mark.parametrize(("payload", "problem"), [
    (pickle.dumps(["sha256:" + "0" * 64]), "pickle is refused"),
    (pickle.dumps(["x"], protocol=0), "row 1"),
    (b"\xff\xfe\x00binary", "not Parquet and not UTF-8"),
    (("sha256:" + "0" * 64 + "\nsha256:XYZ\n").encode(), "row 2: 'sha256:XYZ' is not an example hash"),
    (b"\n\n", "holds no hashes"),
    (b"PAR1 truncated", "could not be read"),
])
def test_malformed_manifests_are_refused_naming_the_field(payload, problem):
    with pytest.raises(InvalidInput) as error:
        read_training_manifest(payload)
    assert error.value.field == "training_manifest" and problem in error.value.problem


def test_a_parquet_manifest_needs_its_column():
    buffer = io.BytesIO()
    pq.write_table(pa.table({"hash": ["sha256:" + "0" * 64]}), buffer)
    with pytest.raises(InvalidInput, match="no 'example_hash' column"):
        read_training_manifest(buffer.getvalue())


# duplicates -----------------------------------------------------------------------------------------------------
def test_duplicates_within_between_slices_and_across_versions():
    frame = _frame(8)
    # row 7 repeats row 0's inputs under group b (row 0 is in group a); row 3 repeats row 1's within group b
    frame.loc[7, ["x", "y"]] = frame.loc[0, ["x", "y"]].to_numpy()
    frame.loc[3, ["x", "y"]] = frame.loc[1, ["x", "y"]].to_numpy()
    earlier = _frame(8).iloc[4:6]  # version 1 held rows 4 and 5 (ids differ in the new version: content counts)
    earlier = earlier.assign(example_id=earlier["example_id"] + 100)
    report = duplicate_report(frame, SCHEMA, {"d@1": (earlier, SCHEMA)})
    assert report.within_version == 4  # rows 0, 7 and 1, 3
    (groups,) = report.between_slices
    assert (groups.slice_column, groups.contents, groups.examples, groups.example_ids) == ("group", 1, 2, ("0", "7"))
    assert dict(report.across_versions) == {"d@1": 2}
    assert report.any and report.to_record()["between_slices"]["group"]["examples"] == 2
    clean = duplicate_report(_frame(8), SCHEMA)
    assert not clean.any and clean.within_version == 0 and clean.between_slices[0].examples == 0
