import pandas as pd
import pytest

from eval_platform.core.errors import NotFound
from eval_platform.core.hashing import table_hash
from eval_platform.core.store import ArtifactStore, CorruptArtifact


def frame():
    return pd.DataFrame({"example_id": [1, 2, 3], "score": [0.1, 0.5, 0.9]})


def test_tables_are_addressed_by_content_and_written_once(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    digest = store.put_table("predictions", frame())
    assert digest == table_hash(frame())
    path = next((tmp_path / "store").rglob("*.parquet"))
    first_write = path.stat().st_mtime_ns
    assert store.put_table("predictions", frame()) == digest
    assert path.stat().st_mtime_ns == first_write  # never rewritten
    pd.testing.assert_frame_equal(store.get_table("predictions", digest), frame())
    assert store.count() == 1


def test_hash_ignores_index_but_not_values_or_order():
    shuffled = frame().iloc[[2, 0, 1]]
    assert table_hash(frame().set_axis([10, 11, 12])) == table_hash(frame())
    assert table_hash(shuffled) != table_hash(frame())
    assert table_hash(frame().assign(score=[0.1, 0.5, 0.91])) != table_hash(frame())


def test_corrupted_artifact_is_detected(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    digest = store.put_table("predictions", frame())
    other = ArtifactStore(str(tmp_path / "other"))
    other_digest = other.put_table("predictions", frame().assign(score=[0.0, 0.0, 0.0]))
    target = next((tmp_path / "store").rglob("*.parquet"))
    target.write_bytes(next((tmp_path / "other").rglob("*.parquet")).read_bytes())
    assert other_digest != digest
    with pytest.raises(CorruptArtifact):
        store.get_table("predictions", digest)


def test_missing_artifact(tmp_path):
    with pytest.raises(NotFound):
        ArtifactStore(str(tmp_path)).get_table("datasets", "sha256:" + "0" * 64)


def test_any_fsspec_url_works():
    store = ArtifactStore("memory://eval-store-test")
    digest = store.put_table("metric_tables", frame())
    assert store.uri("metric_tables", digest).startswith("memory://")
    pd.testing.assert_frame_equal(store.get_table("metric_tables", digest), frame())
    assert store.get_blob("plots", store.put_blob("plots", b"png-bytes", ".png"), ".png") == b"png-bytes"


def test_a_slice_with_strings_hashes_like_its_parquet_round_trip(tmp_path, breast_cancer):
    _, _, frame = breast_cancer
    sliced = frame.head(50)  # pandas hands Arrow string buffers with slack
    store = ArtifactStore(str(tmp_path / "store"))
    digest = store.put_table("datasets", sliced)
    assert store.get_table("datasets", digest)["tumour_size"].tolist() == sliced["tumour_size"].tolist()
    assert table_hash(store.get_table("datasets", digest)) == digest
