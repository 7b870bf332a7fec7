"""FID and the CLIP-style score against reference implementations on random data.

References: torchmetrics' ``_compute_fid`` (the formula inside ``FrechetInceptionDistance``, run on torch CPU
tensors), pytorch-fid's ``calculate_frechet_distance`` algorithm (scipy ``sqrtm`` of the covariance product,
written out below because the package itself needs torchvision, which would pull a CUDA torch here), the
closed form for Gaussians, and torch's ``cosine_similarity`` for the CLIP score.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics.embeddings import clip_score, frechet_distance, frechet_distance_from_statistics
from tests.optional import reference


def pytorch_fid_reference(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid 0.3.0's calculate_frechet_distance (fid_score.py), in substance (its ``disp=False`` is
    deprecated in SciPy 1.17: ``sqrtm`` now returns the matrix alone)."""
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def random_sets(n: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    y = rng.normal(0.3, 1.0, size=(n, dim)) @ rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return x, y


def stats_of(a):
    return a.mean(axis=0), np.cov(a, rowvar=False)


@pytest.mark.parametrize(("n", "dim", "seed"), [(400, 8, 0), (1000, 64, 1), (300, 128, 2), (2048, 256, 3)])
def test_fid_matches_torchmetrics(n, dim, seed):
    torch = reference("torch")
    fid_module = reference("torchmetrics.image.fid")
    x, y = random_sets(n, dim, seed)
    ours = frechet_distance(x, y)
    expected = fid_module._compute_fid(*(torch.tensor(a) for a in (*stats_of(x), *stats_of(y)))).item()
    assert ours.value == pytest.approx(expected, rel=1e-7)
    assert (ours.n_1, ours.n_2, ours.dim) == (n, n, dim)
    assert ours.value == pytest.approx(ours.mean_term + ours.covariance_term)


@pytest.mark.parametrize(("n", "dim", "seed"), [(400, 8, 4), (1000, 64, 5), (60, 32, 6)])
def test_fid_matches_pytorch_fid_algorithm(n, dim, seed):
    x, y = random_sets(n, dim, seed)
    assert frechet_distance(x, y).value == pytest.approx(pytorch_fid_reference(*stats_of(x), *stats_of(y)), rel=1e-6)


def test_fid_closed_form_for_known_gaussians():
    """N(0, I) vs N(m, 4I) in d dims: ||m||^2 + d (1 + 4 - 2*2) = ||m||^2 + d."""
    mu_2 = np.arange(5.0)
    result = frechet_distance_from_statistics(np.zeros(5), np.eye(5), mu_2, 4 * np.eye(5))
    assert result.value == pytest.approx(30 + 5)
    assert (result.mean_term, result.covariance_term) == (pytest.approx(30), pytest.approx(5))


def test_fid_edge_cases():
    x, y = random_sets(50, 10, 7)
    assert frechet_distance(x, x).value == 0.0
    assert frechet_distance(x, y).value == pytest.approx(frechet_distance(y, x).value, rel=1e-9)  # symmetric
    # fewer samples than dimensions: singular covariances, still defined and close to the reference
    small_x, small_y = random_sets(10, 40, 8)
    assert frechet_distance(small_x, small_y).value == pytest.approx(
        pytorch_fid_reference(*stats_of(small_x), *stats_of(small_y)), rel=1e-4)
    # one dimension: (mu1 - mu2)^2 + (s1 - s2)^2 with s the standard deviations
    a, b = np.array([[0.0], [2.0]]), np.array([[1.0], [5.0]])
    assert frechet_distance(a, b).value == pytest.approx((1 - 3) ** 2 + (np.sqrt(2) - np.sqrt(8)) ** 2)


def test_clip_score_matches_torch_cosine():
    torch = reference("torch")
    rng = np.random.default_rng(9)
    text = rng.normal(size=(200, 32))
    image = 0.5 * text + rng.normal(size=(200, 32))
    expected = 100 * torch.nn.functional.cosine_similarity(torch.tensor(text), torch.tensor(image)).clamp(min=0)
    ours = clip_score(text, image)
    assert ours.value == pytest.approx(expected.mean().item(), rel=1e-12)
    assert ours.std_error == pytest.approx(expected.std().item() / np.sqrt(200), rel=1e-9)
    assert ours.ci_low < ours.value < ours.ci_high and ours.n == 200
    # scale-invariant per vector
    assert clip_score(3 * text, 0.1 * image).value == pytest.approx(ours.value, rel=1e-12)


@pytest.mark.parametrize(
    ("call", "field", "problem"),
    [
        (lambda: frechet_distance(np.ones(5), np.ones((5, 1))), "embeddings_1", "two-dimensional"),
        (lambda: frechet_distance(np.ones((1, 3)), np.ones((5, 3))), "embeddings_1", "at least 2 rows"),
        (lambda: frechet_distance(np.ones((4, 3)), np.ones((5, 2))), "embeddings_2", "has 2 columns but embeddings_1 has 3"),
        (lambda: frechet_distance([[1.0, np.nan], [0, 0]], np.ones((5, 2))), "embeddings_1", "row 1, column 2"),
        (lambda: frechet_distance([["a", "b"], ["c", "d"]], np.ones((5, 2))), "embeddings_1", "numeric"),
        (lambda: frechet_distance_from_statistics(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)), "mu_2", "dimension 3"),
        (lambda: frechet_distance_from_statistics(np.zeros(2), [[1, 1], [0, 1]], np.zeros(2), np.eye(2)), "sigma_1", "symmetric"),
        (lambda: frechet_distance_from_statistics(np.zeros(2), np.eye(2), np.zeros(2), np.eye(3)), "sigma_2", "(2, 2)"),
        (lambda: clip_score(np.ones((3, 2)), np.ones((2, 2))), "image_embeddings", "one pair per row"),
        (lambda: clip_score([[1.0, 0.0], [0.0, 0.0]], np.ones((2, 2))), "text_embeddings", "row 2: a zero vector"),
        (lambda: clip_score(np.ones((2, 2)), [[1.0, np.inf], [1, 1]]), "image_embeddings", "not a finite number"),
        (lambda: clip_score(np.ones((2, 2)), np.ones((2, 2)), confidence=1.5), "confidence", "between 0 and 1"),
    ],
)
def test_bad_input_is_refused_naming_the_field(call, field, problem):
    with pytest.raises(InvalidInput) as error:
        call()
    assert error.value.field == field and problem in error.value.problem


def test_catalog_metrics_in_a_generation_eval(tmp_path):
    """fid_embeddings@1 and clip_score_embeddings@1 in a suite: embeddings as <side>_emb_<i> columns of the
    dataset (reference, prompt) and of the predictions file (prediction), evaluated by the runner."""
    import pandas as pd

    from eval_platform.evaluation import predicting, runner
    from eval_platform.platform.service import EvalPlatform

    rng = np.random.default_rng(10)
    n, dim = 60, 6
    reference = rng.normal(size=(n, dim))
    prompt = rng.normal(size=(n, dim))
    generated = 0.7 * prompt + rng.normal(0.2, 1.0, size=(n, dim))
    dataset = pd.DataFrame({"example_id": range(n), "prompt": [f"p{i}" for i in range(n)],
                            "reference": [f"r{i}.png" for i in range(n)], "style": ["a", "b"] * (n // 2)})
    for j in range(dim):
        dataset[f"reference_emb_{j}"] = reference[:, j]
        dataset[f"prompt_emb_{j}"] = prompt[:, j]
    predictions = pd.DataFrame({"example_id": range(n), "prediction": [f"g{i}.png" for i in range(n)]})
    for j in reversed(range(dim)):  # column order must not matter: dimensions are read by their index
        predictions[f"prediction_emb_{j}"] = generated[:, j]
    path = tmp_path / "generated.parquet"
    predictions.to_parquet(path)
    platform = EvalPlatform.open(tmp_path / "home")
    try:
        platform.register_dataset("images", dataset, task_type="generation", label_policy="human_reviewed",
                                  slice_columns=["style"])
        platform.register_suite({"suite_id": "images", "purpose": "exploratory", "task_type": "generation",
                                 "metrics": ["fid_embeddings@1", "clip_score_embeddings@1"], "slices": ["style"],
                                 "min_slice_size": 1})
        platform.register_model("painter", path, kind="predictions", eval_plan=[("images", "images")])
        runs = platform.claim_runs("painter@1", "local", requested=True)
        for run in runs:
            predicting.produce_predictions(platform, run)
            runner.compute_metrics(platform, run)
            runner.compare_with_baseline(platform, run)
        runner.finish_runs(platform, "painter@1", runs)
        metrics = platform.runs("painter@1")[0].results["metrics"]
    finally:
        platform.close()
    assert metrics["fid_embeddings"] == pytest.approx(
        pytorch_fid_reference(*stats_of(reference), *stats_of(generated)), rel=1e-6)
    t = prompt / np.linalg.norm(prompt, axis=1, keepdims=True)
    g = generated / np.linalg.norm(generated, axis=1, keepdims=True)
    assert metrics["clip_score_embeddings"] == pytest.approx(float(np.mean(100 * np.clip((t * g).sum(axis=1), 0, None))))


def test_embedding_columns_must_be_numbered_from_zero():
    import pandas as pd

    from eval_platform.evaluation.metric_table import embedding_columns

    with pytest.raises(InvalidInput) as error:
        embedding_columns(pd.DataFrame({"prediction_emb_0": [1.0], "prediction_emb_2": [2.0]}))
    assert error.value.field == "prediction_emb_*"
    assert embedding_columns(pd.DataFrame({"prediction": ["x"]})) == {}


def test_fid_in_the_paired_bootstrap_comparison():
    """A candidate whose outputs are closer to the references gets a negative FID delta (lower is better)
    with an interval below 0: the catalog metric works with the comparison's row resampling."""
    from eval_platform.metrics.catalog import get_metric
    from eval_platform.stats.comparison import paired_bootstrap

    rng = np.random.default_rng(12)
    reference = rng.normal(size=(200, 4))
    prompt = rng.normal(size=(200, 4))
    close = reference + rng.normal(0, 0.1, size=(200, 4))
    far = rng.normal(1.0, 2.0, size=(200, 4))
    definition = get_metric("fid_embeddings@1")
    assert definition.direction == "lower"
    candidate = {"reference_embedding": reference, "prompt_embedding": prompt, "prediction_embedding": close}
    baseline = {**candidate, "prediction_embedding": far}
    result = paired_bootstrap(definition, {}, candidate, baseline, resamples=200, confidence=0.95, seed=0)
    assert result["candidate"] == pytest.approx(pytorch_fid_reference(*stats_of(reference), *stats_of(close)), rel=1e-6)
    assert result["ci_high"] < 0 and result["undefined_resamples"] == 0
