"""The course's model families and how a model is logged (taught in notebook 01; used by 05, 08 and the catch-ups).

One place for what notebook 01 writes out by hand and the pipeline, the Kubeflow steps and the catch-up cells repeat:
which scikit-learn models the course trains, seeded, and how a model is saved so that it can be served anywhere
(signature, input example, exact requirements, the types skops must trust).
"""

from __future__ import annotations

from pathlib import Path
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
FAMILIES = tuple(DEFAULT_PARAMS)


def build_model(family: str, params: dict[str, Any] | None = None):
    """An unfitted, seeded scikit-learn model of ``family`` (one of :data:`FAMILIES`) with ``params``.

    Raises ``ValueError`` naming the families for an unknown one.
    """
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
    raise ValueError(f"unknown model family {family!r}: choose one of {', '.join(FAMILIES)}")


def flavour_args(model, X_example: pd.DataFrame) -> dict[str, Any]:
    """The arguments of ``mlflow.sklearn.log_model``/``save_model`` that notebook 01 teaches: signature, input
    example, exact requirements (faster than MLflow's inference, and it cannot guess wrong), trusted types."""
    from mlflow.models import infer_signature

    return {
        "signature": infer_signature(X_example, model.predict(X_example)),
        "input_example": X_example.head(3),
        "pip_requirements": environment.model_requirements(),
        "skops_trusted_types": TRUSTED_TYPES,
    }


def log_model(model, X_example: pd.DataFrame, name: str = "model"):
    """Log a fitted model to the active MLflow run as notebook 01 teaches; returns MLflow's ``ModelInfo``."""
    import mlflow

    return mlflow.sklearn.log_model(model, name=name, **flavour_args(model, X_example))


def save_model(model, X_example: pd.DataFrame, path: str | Path) -> Path:
    """Save a fitted model as an MLflow model folder at ``path`` (a Kubeflow ``Model`` artifact), as :func:`log_model`
    logs it."""
    import mlflow

    mlflow.sklearn.save_model(model, str(path), **flavour_args(model, X_example))
    return Path(path)
