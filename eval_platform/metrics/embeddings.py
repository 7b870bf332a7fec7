"""Image-generation metrics from embeddings the user computed: FID and a CLIP-style score.

No model is loaded and no weights are downloaded: the caller supplies feature vectors (Inception pool3
features for the classic FID, CLIP or any other encoder's embeddings otherwise). Scores computed from
different encoders are not comparable; record which encoder produced the arrays.

* :func:`frechet_distance`: the Fréchet distance between Gaussians fitted to two sets of embeddings
  (FID when the features are Inception-v3's),
  ``FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})`` with ``mu`` the means and ``S`` the sample
  covariances (``n - 1`` in the denominator, as pytorch-fid and torchmetrics). The trace of the matrix
  square root is computed as ``sum_i sqrt(lambda_i)`` over the eigenvalues of the symmetric positive
  semi-definite ``S_1^{1/2} S_2 S_1^{1/2}`` (similar to ``S_1 S_2``, so the same eigenvalues), which needs
  no general ``sqrtm`` and stays real; eigenvalues that round to slightly below zero are taken as zero.
* :func:`clip_score`: the mean over pairs ``i`` of ``100 * max(cos(t_i, v_i), 0)`` for paired text and
  image embeddings (torchmetrics' ``CLIPScore`` definition, 0 to 100), with a normal interval over pairs.

Edge cases: FID is biased upwards for small sets (its expectation falls with the number of samples), so
compare FIDs computed on sets of equal size only; with fewer samples than dimensions the covariances are
singular, which the eigenvalue route handles (the value is defined but noisy). FID is 0 for two identical
sets. A zero embedding has no direction: refused for the CLIP score, naming its row.

In the catalog (generation suites): ``fid_embeddings@1`` is the Fréchet distance between the predictions'
embeddings and the references' (columns ``prediction_emb_0..`` in the predictions file, ``reference_emb_0..``
in the dataset), ``clip_score_embeddings@1`` the CLIP-style score of the prompts' embeddings
(``prompt_emb_0..``, dataset) against the predictions' (see :func:`eval_platform.evaluation.metric_table.embedding_columns`).
The comparison's paired bootstrap recomputes FID per resample (two symmetric eigendecompositions of
``dim x dim``): fine for a few hundred dimensions, slow for 2048-dimensional Inception features.

Example::

    >>> import numpy as np
    >>> from eval_platform.metrics.embeddings import frechet_distance
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(500, 8))
    >>> frechet_distance(x, x).value
    0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from eval_platform.core.arrays import finite_matrix
from eval_platform.core.errors import InvalidInput
from eval_platform.core.lazy_imports import scipy_stats as stats
from eval_platform.metrics.base import MetricDefinition

__all__ = ["FrechetDistance", "ClipScore", "frechet_distance", "frechet_distance_from_statistics", "clip_score"]


@dataclass(frozen=True)
class FrechetDistance:
    """``value = mean_term + covariance_term``: ``||mu_1 - mu_2||^2`` and ``Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})``;
    ``n_1``, ``n_2`` the set sizes (0 when given as statistics), ``dim`` the embedding dimension."""

    value: float
    mean_term: float
    covariance_term: float
    n_1: int
    n_2: int
    dim: int


@dataclass(frozen=True)
class ClipScore:
    """Mean CLIP-style score over ``n`` pairs (0-100) with its normal ``confidence`` interval."""

    value: float
    ci_low: float
    ci_high: float
    std_error: float
    n: int
    confidence: float


def _matrix(values: Any, field: str, min_rows: int) -> np.ndarray:
    return finite_matrix(values, field, min_rows, "one embedding per row")


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def frechet_distance_from_statistics(mu_1, sigma_1, mu_2, sigma_2) -> FrechetDistance:
    """Fréchet distance between ``N(mu_1, sigma_1)`` and ``N(mu_2, sigma_2)`` (the formula of the module
    docstring), for statistics computed elsewhere (e.g. a reference set's saved mean and covariance).
    Covariances must be symmetric; their asymmetric rounding noise (below 1e-8 relative) is averaged out."""
    mu_1 = _matrix(np.atleast_2d(mu_1), "mu_1", 1)[0]
    mu_2 = _matrix(np.atleast_2d(mu_2), "mu_2", 1)[0]
    dim = len(mu_1)
    if len(mu_2) != dim:
        raise InvalidInput("mu_2", f"has dimension {len(mu_2)} but mu_1 has {dim}")
    covariances = []
    for name, sigma in (("sigma_1", sigma_1), ("sigma_2", sigma_2)):
        s = _matrix(sigma, name, 1)
        if s.shape != (dim, dim):
            raise InvalidInput(name, f"must be ({dim}, {dim}) to match the means, got {s.shape}")
        scale = max(float(np.abs(s).max()), 1e-300)
        if np.abs(s - s.T).max() > 1e-8 * scale:
            raise InvalidInput(name, "must be a symmetric covariance matrix")
        covariances.append((s + s.T) / 2)
    s1, s2 = covariances
    root_1 = _psd_sqrt(s1)
    middle = root_1 @ s2 @ root_1
    trace_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum())
    mean_term = float(np.sum((mu_1 - mu_2) ** 2))
    # clipped at 0: for (nearly) equal statistics, rounding may leave a tiny negative number
    covariance_term = max(float(np.trace(s1) + np.trace(s2) - 2 * trace_sqrt), 0.0)
    return FrechetDistance(mean_term + covariance_term, mean_term, covariance_term, 0, 0, dim)


def frechet_distance(embeddings_1, embeddings_2) -> FrechetDistance:
    """FID between two sets of embeddings (rows are samples): fit a Gaussian to each and take their
    Fréchet distance. Both sets need at least 2 rows and the same number of columns.

    >>> frechet_distance([[0.0, 0.0], [2.0, 0.0]], [[1.0, 1.0], [3.0, 1.0]]).mean_term
    2.0
    """
    x = _matrix(embeddings_1, "embeddings_1", 2)
    y = _matrix(embeddings_2, "embeddings_2", 2)
    if x.shape[1] != y.shape[1]:
        raise InvalidInput("embeddings_2", f"has {y.shape[1]} columns but embeddings_1 has {x.shape[1]}")
    result = frechet_distance_from_statistics(x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1]),
                                              y.mean(axis=0), np.cov(y, rowvar=False).reshape(y.shape[1], y.shape[1]))
    return FrechetDistance(result.value, result.mean_term, result.covariance_term, len(x), len(y), x.shape[1])


def clip_score(text_embeddings, image_embeddings, *, confidence: float = 0.95) -> ClipScore:
    """CLIP-style score of paired embeddings: ``mean_i 100 * max(cos(t_i, v_i), 0)``; row ``i`` of each
    array is one (text, image) pair. Interval: ``mean +- z * s / sqrt(n)`` over the per-pair scores (zero
    width for one pair).

    >>> clip_score([[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, -1.0]]).value  # cos 0.7071 and -1 (clamped to 0)
    35.35533905932737
    """
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise InvalidInput("confidence", f"must be a number strictly between 0 and 1, got {confidence!r}")
    t = _matrix(text_embeddings, "text_embeddings", 1)
    v = _matrix(image_embeddings, "image_embeddings", 1)
    if t.shape != v.shape:
        raise InvalidInput("image_embeddings", f"has shape {v.shape} but text_embeddings has {t.shape}: one pair per row")
    norms = {}
    for name, array in (("text_embeddings", t), ("image_embeddings", v)):
        norms[name] = np.linalg.norm(array, axis=1)
        zero = norms[name] == 0
        if zero.any():
            raise InvalidInput(name, f"row {int(np.flatnonzero(zero)[0]) + 1}: a zero vector has no direction")
    cosine = np.einsum("ij,ij->i", t, v) / (norms["text_embeddings"] * norms["image_embeddings"])
    scores = 100 * np.clip(cosine, 0, None)
    value = float(scores.mean())
    std_error = float(scores.std(ddof=1) / np.sqrt(len(scores))) if len(scores) > 1 else 0.0
    half = float(stats.norm.ppf(0.5 + confidence / 2)) * std_error
    return ClipScore(value, value - half, value + half, std_error, len(scores), float(confidence))


def _fid_metric(columns) -> float:
    return frechet_distance(columns["reference_embedding"], columns["prediction_embedding"]).value


def _clip_metric(columns) -> float:
    return clip_score(columns["prompt_embedding"], columns["prediction_embedding"]).value


_GENERATION = frozenset({"generation"})
METRICS = [
    MetricDefinition("fid_embeddings", 1, "lower", _GENERATION, ("reference_embedding", "prediction_embedding"),
                     _fid_metric, description="Fréchet distance between the predictions' and the references' "
                                              "embeddings (FID on Inception features); columns *_emb_<i>."),
    MetricDefinition("clip_score_embeddings", 1, "higher", _GENERATION, ("prompt_embedding", "prediction_embedding"),
                     _clip_metric, description="Mean 100 * max(cos, 0) of the prompts' and the predictions' "
                                               "embeddings (CLIP score); columns *_emb_<i>."),
]
