"""A generated multi-label dataset (scikit-learn's make_multilabel_classification, fixed seed) and models on it."""

from pathlib import Path

import numpy as np
import pandas as pd
import skops.io
from sklearn.datasets import make_multilabel_classification
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.multioutput import MultiOutputClassifier
from sklearn.preprocessing import MultiLabelBinarizer

#: Label names in the order the generator's indicator columns have them; models are trained on the
#: MultiLabelBinarizer (sorted) order, the column order the platform expects of a multi-label model.
TOPICS = np.array(["sports", "politics", "tech", "art"])

MULTILABEL_SUITE = {
    "suite_id": "topics", "purpose": "release_blocking", "task_type": "multilabel_classification",
    "comparison": {"bootstrap_resamples": 200},
    "metrics": [{"name": "f1_micro", "metric": "multilabel_f1_micro@1"},
                {"name": "f1_macro", "metric": "multilabel_f1_macro@1"},
                {"name": "hamming", "metric": "multilabel_hamming_loss@1"},
                {"name": "subset_accuracy", "metric": "multilabel_subset_accuracy@1"},
                {"name": "auc", "metric": "multilabel_roc_auc_macro@1"}],
    "gate": {"require_baseline": False, "rules": [{"metric": "f1_micro", "min": 0.5},
                                                  {"metric": "hamming", "max": 0.4},
                                                  {"metric": "auc", "non_inferiority": 0.02}]},
}


def topics_frame(n: int = 400, seed: int = 7) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``(frame, features, indicator)``: one list of topics per example, the features, and the 0/1 matrix
    of the topics in sorted (MultiLabelBinarizer) order."""
    features, indicator = make_multilabel_classification(n_samples=n, n_features=10, n_classes=4, n_labels=2,
                                                         allow_unlabeled=True, random_state=seed)
    lists = [list(TOPICS[row == 1]) for row in indicator]
    frame = pd.DataFrame(features, columns=[f"x{i}" for i in range(features.shape[1])])
    frame = frame.assign(example_id=[f"doc-{i}" for i in range(n)], labels=lists, source=np.where(np.arange(n) % 3 == 0, "news", "blog"))
    binarizer = MultiLabelBinarizer(classes=sorted(TOPICS))
    return frame, features, binarizer.fit_transform(lists)


def topic_models(directory: Path, features: np.ndarray, indicator: np.ndarray) -> dict[str, Path]:
    """A one-vs-rest model, and a per-label model trained on shuffled targets (no better than chance), saved with skops."""
    models = {"ovr": OneVsRestClassifier(LogisticRegression(max_iter=2000)),
              "weak": MultiOutputClassifier(LogisticRegression(max_iter=2000))}
    paths = {}
    shuffled = np.random.default_rng(0).permutation(indicator[:200])
    for name, model in models.items():
        # trained on the first 200 examples only
        model.fit(features[:200], shuffled if name == "weak" else indicator[:200])
        paths[name] = directory / f"{name}.skops"
        skops.io.dump(model, paths[name])
    return paths
