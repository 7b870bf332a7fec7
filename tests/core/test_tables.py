"""The one table reader (eval_platform.core.tables): declared text stays text in every format, the other
columns are read as before, and what cannot be text (a missing value, a number) is refused naming the row
and the column. Expected values are the files' own literal contents."""

import io
import json
import math
import pickle

import pandas as pd
import pytest

from eval_platform.core.errors import InvalidInput
from eval_platform.core.records import json_safe
from eval_platform.core.tables import read_table
from eval_platform.core.tasks import get_task_type

GENERATION = get_task_type("generation")
NA_WORDS = ["None", "NA", "null", "nan", "", "N/A", "NaN", "#N/A", "<NA>", "42", "007", "True", "1e3", "-0"]


def csv_bytes(rows: list[list[str]], separator: str = ",") -> bytes:
    return "\n".join(separator.join(row) for row in rows).encode() + b"\n"


@pytest.mark.parametrize("suffix, separator", [(".csv", ","), (".tsv", "\t")])
def test_csv_text_columns_keep_every_word_as_written(tmp_path, suffix, separator):
    path = tmp_path / f"qa{suffix}"
    rows = [["example_id", "prompt", "reference", "score"]]
    rows += [[f"{i:03d}", word, word, "" if i % 2 else "0.5"] for i, word in enumerate(NA_WORDS)]
    path.write_bytes(csv_bytes(rows, separator))
    frame = read_table(path, field="--file", text_columns=GENERATION.text_columns, verbatim_columns=GENERATION.verbatim_columns)
    assert frame["reference"].tolist() == NA_WORDS and frame["prompt"].tolist() == NA_WORDS
    assert frame["example_id"].tolist() == [f"{i:03d}" for i in range(len(NA_WORDS))]  # "007" is not 7
    # a column nobody declared text is read as before: numbers, and pandas' missing words missing
    assert frame["score"].dtype == "float64" and frame["score"].isna().sum() == len(NA_WORDS) // 2


def test_json_lines_keep_their_json_types(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"example_id": 1, "prompt": "6*7?", "reference": "42", "n": 3}\n'
                    '{"example_id": 2, "prompt": "null", "reference": "NA", "n": null}\n')
    frame = read_table(path, field="--file", text_columns=GENERATION.text_columns, verbatim_columns=GENERATION.verbatim_columns)
    assert frame["reference"].tolist() == ["42", "NA"] and frame["prompt"].tolist() == ["6*7?", "null"]
    assert frame["example_id"].tolist() == [1, 2]  # a typed format's ids keep their type
    assert frame["n"].iloc[0] == 3 and math.isnan(frame["n"].iloc[1])


def test_parquet_keeps_its_types(tmp_path):
    path = tmp_path / "qa.parquet"
    pd.DataFrame({"example_id": [7, 8], "prompt": ["a", "b"], "reference": ["0", "NA"]}).to_parquet(path)
    frame = read_table(path, field="--file", text_columns=GENERATION.text_columns, verbatim_columns=GENERATION.verbatim_columns)
    assert frame["reference"].tolist() == ["0", "NA"] and frame["example_id"].tolist() == [7, 8]


@pytest.mark.parametrize("line, problem", [
    ('{"prompt": "q", "reference": 42}', "row 2, column 'reference': must be text, got int 42"),
    ('{"prompt": "q", "reference": true}', "row 2, column 'reference': must be text, got bool True"),
    ('{"prompt": "q", "reference": null}', "row 2, column 'reference': the value is missing"),
    ('{"prompt": "q"}', "row 2, column 'reference': the value is missing"),
    ('{"prompt": 4.5, "reference": "x"}', "row 2, column 'prompt': must be text, got float 4.5"),
])
def test_what_is_not_text_in_a_text_column_is_refused_naming_row_and_column(tmp_path, line, problem):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"prompt": "p", "reference": "r"}\n' + line + "\n")
    with pytest.raises(InvalidInput) as refused:
        read_table(path, field="--file", text_columns=GENERATION.text_columns)
    assert refused.value.field == "--file" and problem in refused.value.problem


def test_a_parquet_number_in_a_text_column_is_refused(tmp_path):
    path = tmp_path / "qa.parquet"
    pd.DataFrame({"prompt": ["a", "b"], "reference": [1.0, None]}).to_parquet(path)
    with pytest.raises(InvalidInput, match=r"row 2, column 'reference': the value is missing"):
        read_table(path, field="file", text_columns=GENERATION.text_columns)


def test_pickles_and_unknown_formats_are_refused_before_any_parser(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    for name in ("rows.csv", "rows.jsonl", "rows.tsv"):
        (tmp_path / name).write_bytes(pickle.dumps(Exploit()))
        with pytest.raises(InvalidInput, match="is a pickle; refused"):
            read_table(tmp_path / name, field="--file")
    with pytest.raises(InvalidInput, match="is a pickle; refused"):  # an upload with no suffix: CSV by default
        read_table(io.BytesIO(pickle.dumps(Exploit())), field="file", name="upload", default_format="csv")
    (tmp_path / "rows.pkl").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(InvalidInput, match="unsupported format"):
        read_table(tmp_path / "rows.pkl", field="--file")
    (tmp_path / "fake.parquet").write_text("a,b\n1,2\n")
    with pytest.raises(InvalidInput, match="is named .parquet but is not a Parquet file"):
        read_table(tmp_path / "fake.parquet", field="--file")
    assert not (tmp_path / "pwned").exists()


def test_malformed_files_are_refused_naming_the_field(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"prompt": "a"\n')
    with pytest.raises(InvalidInput) as refused:
        read_table(tmp_path / "bad.jsonl", field="--data")
    assert refused.value.field == "--data" and "could not be read as JSONL" in refused.value.problem
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(InvalidInput, match="could not be read as CSV"):
        read_table(tmp_path / "empty.csv", field="--data")


def test_infinities_are_written_apart_from_undefined():
    payload = {"threshold": math.inf, "low": -math.inf, "undefined": math.nan, "fine": 0.25}
    assert json.loads(json.dumps(json_safe(payload, infinities_as_text=True))) == {
        "threshold": "inf", "low": "-inf", "undefined": None, "fine": 0.25}
    assert json_safe(payload) == {"threshold": None, "low": None, "undefined": None, "fine": 0.25}  # stored documents: unchanged
