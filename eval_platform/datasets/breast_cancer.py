"""The breast-cancer example that the demo, the tests and the benchmarks share: scikit-learn's bundled
breast-cancer data split into training data and a held-out eval dataset, and the three models the demo
registers, trained on that split.

The split is deterministic (a stratified 40 % hold-out, ``random_state=0``); the eval dataset has an
``example_id`` column, the features, ``label`` (1 = malignant) and a ``tumour_size`` slice column.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def breast_cancer_split() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """Train features and labels, and the held-out eval dataset (label 1 = malignant)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    features.columns = [c.replace(" ", "_") for c in features.columns]
    label = (1 - target).rename("label")
    x_train, x_test, y_train, y_test = train_test_split(features, label, test_size=0.4, random_state=0, stratify=label)
    size_edges = x_train["mean_radius"].quantile([1 / 3, 2 / 3]).to_list()
    tumour_size = pd.cut(x_test["mean_radius"], [-float("inf"), *size_edges, float("inf")], labels=["small", "medium", "large"])
    dataset = x_test.assign(label=y_test.astype("int64"), tumour_size=tumour_size.astype(str))
    dataset.insert(0, "example_id", x_test.index.astype("int64"))
    return x_train, y_train, dataset.reset_index(drop=True)


def train_models(home: Path, x_train: pd.DataFrame, y_train: pd.Series) -> dict[str, Path]:
    """Model files are written once: skops files are not byte-reproducible, and a new file is a new version."""
    import skops.io
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    recipes = {
        "logistic_regression": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "gradient_boosting": lambda: GradientBoostingClassifier(n_estimators=100, max_depth=2, random_state=0),
        # a candidate that should not ship: one split on one feature
        "decision_stump": lambda: DecisionTreeClassifier(max_depth=1, random_state=0),
    }
    paths = {}
    for name, recipe in recipes.items():
        path = home / "models" / f"{name}.skops"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            skops.io.dump(recipe().fit(x_train.to_numpy(), y_train.to_numpy()), path)
        paths[name] = path
    return paths
