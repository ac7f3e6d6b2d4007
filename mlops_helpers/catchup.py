"""Catch-up cells: rebuild what an earlier notebook made, so that any notebook can run on its own.

A notebook that needs, say, notebook 01's runs calls :func:`ensure_runs` in a visible "Catch-up" cell. When the state
is there (the course ran in order), it is returned untouched; when it is not, the smallest faithful version is rebuilt
and tagged ``catchup=true`` so it is never mistaken for the learner's own work.

| function | rebuilds | made by notebook |
|---|---|---|
| :func:`ensure_runs` | tracked runs with a logged model and ``val_rmse`` in the CityBikes experiment | 01 |
| :func:`ensure_champion` | a registered model with the alias ``champion`` (the best of those runs) | 03 |
| :func:`ensure_release` | ``champion`` on the model the pipeline promoted from a given batch (e.g. January-May) | 05 |
| :func:`ensure_feast_venv` | nothing: checks Feast's own environment (``.feast-venv``, made by ``make setup``) | - |
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_helpers import REPO_ROOT, data, environment, models
from mlops_helpers.names import (
    CATCHUP_TAG,
    CHAMPION,
    DATA_TAG,
    EXPERIMENT,
    MODEL_NAME,
    PIPELINE_EXPERIMENT,
    PIPELINE_RUN_TAG,
    PROMOTED_TAG,
)
from mlops_helpers.workspace import Workspace, ensure_experiment, quiet_mlflow
from mlops_helpers.workspace import setup as setup_workspace

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion


@dataclass(frozen=True)
class Candidate:
    """One configuration of notebook 01's sweep."""

    run_name: str
    family: str
    params: dict


#: A reduced sweep: one configuration per family of notebook 01, including its best.
CATCHUP_SWEEP = (
    Candidate("ridge-alpha-10", "ridge", {"alpha": 10.0}),
    Candidate("forest-depth-8", "random_forest", {"n_estimators": 100, "max_depth": 8}),
    Candidate("boosting-depth-5", "gradient_boosting", {"n_estimators": 100, "max_depth": 5, "learning_rate": 0.1}),
)


def _workspace(ws: Workspace | None, experiment: str) -> Workspace:
    import mlflow

    ws = ws or setup_workspace()
    ensure_experiment(ws, experiment)
    mlflow.set_experiment(experiment)
    return ws


def model_runs(experiment: str = EXPERIMENT) -> pd.DataFrame:
    """Finished runs of ``experiment`` that logged a model and a validation RMSE, best first."""
    import mlflow
    import pandas as pd

    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return pd.DataFrame()
    return mlflow.search_runs(
        [found.experiment_id],
        filter_string="attributes.status = 'FINISHED' and metrics.val_rmse > 0 and tags.family != ''",
        order_by=["metrics.val_rmse ASC"],
    )


def ensure_runs(ws: Workspace | None = None, experiment: str = EXPERIMENT) -> pd.DataFrame:
    """Notebook 01's state: runs with a logged model and ``val_rmse``. Trains :data:`CATCHUP_SWEEP` if none."""
    import mlflow
    from sklearn.metrics import root_mean_squared_error

    _workspace(ws, experiment)
    runs = model_runs(experiment)
    if not runs.empty:
        return runs
    bikes = data.load_bikes()
    fit, valid = data.train_validation_split(data.window(bikes, *data.TRAIN_WINDOW))
    (X_fit, y_fit), (X_valid, y_valid) = data.xy(fit), data.xy(valid)
    source = data.DATA_DIR / data.BIKES_FILE
    datasets = {
        "training": mlflow.data.from_pandas(fit.reset_index(), source=source, name="bikes-fit", targets="bikers"),
        "validation": mlflow.data.from_pandas(valid.reset_index(), source=source, name="bikes-valid", targets="bikers"),
    }
    for candidate in CATCHUP_SWEEP:
        model = models.build_model(candidate.family, candidate.params).fit(X_fit, y_fit)
        with mlflow.start_run(run_name=candidate.run_name):
            mlflow.set_tags({"family": candidate.family, CATCHUP_TAG: "true"})
            mlflow.log_params(candidate.params)
            for context, dataset in datasets.items():
                mlflow.log_input(dataset, context=context)
            models.log_model(model, X_valid)
            mlflow.log_metrics(
                {
                    "train_rmse": root_mean_squared_error(y_fit, model.predict(X_fit)),
                    "val_rmse": root_mean_squared_error(y_valid, model.predict(X_valid)),
                }
            )
    return model_runs(experiment)


def ensure_champion(
    ws: Workspace | None = None, model_name: str = MODEL_NAME, experiment: str = EXPERIMENT
) -> ModelVersion:
    """Notebook 03's state: a registered model whose ``champion`` alias points at the best run's model.

    Returns the champion's ``ModelVersion``. Registers the best run of :func:`ensure_runs` when there is none.
    """
    import mlflow

    from mlops_helpers.registry import Registry

    ws = _workspace(ws, experiment)
    registry = Registry(model_name)
    champion = registry.get(CHAMPION)
    if champion is not None:
        return champion
    best = ensure_runs(ws, experiment).iloc[0]
    model_id = mlflow.get_run(best["run_id"]).outputs.model_outputs[0].model_id
    # Quietly: the cell shows the same output whether it rebuilt the state or found it.
    with quiet_mlflow():
        version = mlflow.register_model(f"models:/{model_id}", model_name, tags={CATCHUP_TAG: "true"})
    registry.move(CHAMPION, version.version, "catch-up: notebook 03's champion, the best run of notebook 01")
    return registry.version(CHAMPION)


def ensure_release(
    ws: Workspace, batch: str | Path, window: data.Window | str, model_name: str = MODEL_NAME
) -> ModelVersion:
    """Notebook 05's release for notebooks 07, 09 and 10: ``champion`` on the model the pipeline promoted from
    ``batch``.

    ``batch`` is the batch's CSV path in the workspace (notebook 05 writes ``batches/bikes-2011-01-to-05.csv``).
    If the pipeline promoted a model from it before, ``champion`` is moved back to that version when it is elsewhere
    (a re-run starts from the same model); otherwise the batch is written from the source data and the pipeline runs
    on it, quietly, as notebook 05's first run does. Returns the champion's ``ModelVersion``.
    """
    import mlflow

    from mlops_helpers import pipeline
    from mlops_helpers.registry import Registry

    ensure_champion(ws, model_name)
    registry = Registry(model_name)
    promoted = set()
    if mlflow.get_experiment_by_name(PIPELINE_EXPERIMENT) is not None:
        runs = mlflow.search_runs(
            experiment_names=[PIPELINE_EXPERIMENT],
            filter_string=f"tags.`{DATA_TAG}` = '{batch}' and tags.`{PROMOTED_TAG}` = 'True'",
        )
        promoted = set(runs["run_id"]) if not runs.empty else set()
    versions = [v for v in registry.versions() if v.tags.get(PIPELINE_RUN_TAG) in promoted]
    if versions:
        release = str(max(versions, key=lambda v: int(v.version)).version)  # an int from SQLite: aliases are text
        if registry.aliases().get(CHAMPION) != release:
            registry.move(CHAMPION, release, "catch-up: back to the release")
    else:
        window = data.Window.parse(window)
        data.source_batch(window).to_csv(batch, index=False)
        config = pipeline.PipelineConfig(
            data=Path(batch),
            window=window,
            model_name=model_name,
            integration_test=False,
            reason="catch-up: notebook 05's release",
        )
        with quiet_mlflow():  # the same output whether it rebuilt the state or found it
            result = pipeline.run_pipeline(config, echo=lambda *_: None)
        if not result.promoted:
            raise RuntimeError(f"the catch-up's pipeline run did not promote: {result.table().to_dict('records')}")
    return registry.version(CHAMPION)


#: Feast's own environment (notebook 11) for this kernel's venv: ``make feast-venv`` builds it from its lock,
#: ``make setup`` too.
FEAST_VENV = environment.feast_venv(sys.prefix)


def ensure_feast_venv(venv: Path = FEAST_VENV) -> Path:
    """The Python of Feast's environment, checked to be built from today's ``feast/requirements.lock`` with this
    kernel's Python (the stamp ``scripts/feast_env.py`` writes). It cannot be rebuilt offline from a cell: a missing or
    stale one raises with the command to run."""
    python = venv / "bin" / "python"
    lock = REPO_ROOT / "feast" / "requirements.lock"
    stamp = hashlib.sha256(lock.read_bytes() + sys.version.encode()).hexdigest()
    marker = venv / ".feast-lock.sha256"
    if not python.exists() or not marker.exists() or marker.read_text() != stamp:
        raise RuntimeError(f"Feast's environment {venv} is missing or older than feast/requirements.lock (or made "
                           "with another Python): run `make feast-venv` (make setup builds it)")  # fmt: skip
    return python
