"""The course's model families and how they are logged (introduced in notebook 01; used by 03, 05 and 08).

One place for what notebook 01 teaches by hand and the checkpoints and the pipeline repeat: which scikit-learn
models the course trains, seeded, and how a model is logged so that it can be served anywhere (signature, input
example, exact requirements, the types skops must trust).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlops_helpers import environment

SEED = 42
#: Tree ensembles hold `sklearn.tree._tree.Tree` objects; skops (MLflow 3's default format) refuses unknown types.
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]
#: The families and their default hyperparameters (the best of notebook 01's sweep for each).
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "gradient_boosting": {"n_estimators": 100, "max_depth": 5, "learning_rate": 0.1},
    "random_forest": {"n_estimators": 100, "max_depth": 8},
    "ridge": {"alpha": 10.0},
}


def build_model(family: str, params: dict[str, Any] | None = None):
    """An unfitted, seeded scikit-learn model of ``family`` (a key of :data:`DEFAULT_PARAMS`) with ``params``."""
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    params = DEFAULT_PARAMS.get(family, {}) if params is None else params
    if family == "gradient_boosting":
        return GradientBoostingRegressor(random_state=SEED, **params)
    if family == "random_forest":
        return RandomForestRegressor(random_state=SEED, n_jobs=1, **params)
    if family == "ridge":
        return make_pipeline(StandardScaler(), Ridge(**params))
    raise ValueError(f"unknown model family {family!r}: choose one of {', '.join(DEFAULT_PARAMS)}")


def log_sklearn_model(model, X_example: pd.DataFrame, name: str = "model"):
    """Log a fitted model to the active MLflow run as notebook 01 teaches; returns MLflow's ``ModelInfo``."""
    import mlflow
    from mlflow.models import infer_signature

    return mlflow.sklearn.log_model(
        model,
        name=name,
        signature=infer_signature(X_example, model.predict(X_example)),
        input_example=X_example.head(3),
        pip_requirements=environment.model_requirements(),
        skops_trusted_types=TRUSTED_TYPES,
    )
