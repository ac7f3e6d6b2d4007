"""Checkpoints: rebuild what an earlier notebook made, so that any notebook can run on its own.

A notebook that needs, say, notebook 01's runs calls :func:`ensure_runs` in a visible cell. When the state is there
(the course ran in order), it is returned untouched; when it is not, the smallest faithful version is rebuilt and
tagged ``checkpoint=true`` so it is never mistaken for the learner's own work.

| function | rebuilds | made by notebook |
|---|---|---|
| :func:`ensure_runs` | tracked runs with a logged model and ``val_rmse`` in the CityBikes experiment | 01 |
| :func:`ensure_champion` | a registered model with the alias ``champion`` (the best of those runs) | 03 |
| :func:`ensure_release` | ``champion`` on the model the pipeline promoted from a given batch (e.g. January-May) | 05 |
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlops_helpers import data, models
from mlops_helpers.workspace import Workspace, ensure_experiment
from mlops_helpers.workspace import setup as setup_workspace

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

EXPERIMENT_NAME = "citybikes-demand"
MODEL_NAME = "citybikes-demand"
#: Notebook 01's split: fit on January-February, validate on March.
TRAIN_START, VALIDATION_START, TRAIN_END = "2011-01-01", "2011-03-01", "2011-04-01"
TRUSTED_TYPES = models.TRUSTED_TYPES
SEED = models.SEED


@dataclass(frozen=True)
class Candidate:
    """One configuration of notebook 01's sweep."""

    run_name: str
    family: str
    params: dict

    def build(self):
        return models.build_model(self.family, self.params)


#: A reduced sweep: one configuration per family of notebook 01, including its best.
CHECKPOINT_SWEEP = (
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


def model_runs(experiment: str = EXPERIMENT_NAME) -> pd.DataFrame:
    """Finished runs of ``experiment`` that logged a model and a validation RMSE, best first."""
    import mlflow

    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        import pandas as pd

        return pd.DataFrame()
    runs = mlflow.search_runs(
        [found.experiment_id],
        filter_string="attributes.status = 'FINISHED' and metrics.val_rmse > 0 and tags.family != ''",
        order_by=["metrics.val_rmse ASC"],
    )
    return runs


def ensure_runs(ws: Workspace | None = None, experiment: str = EXPERIMENT_NAME) -> pd.DataFrame:
    """Notebook 01's state: runs with a logged model and ``val_rmse``. Trains :data:`CHECKPOINT_SWEEP` if none."""
    import mlflow
    from sklearn.metrics import root_mean_squared_error

    _workspace(ws, experiment)
    runs = model_runs(experiment)
    if not runs.empty:
        return runs
    bikes = data.load_bikes()
    fit, valid = data.train_validation_split(data.window(bikes, TRAIN_START, TRAIN_END), VALIDATION_START)
    (X_fit, y_fit), (X_valid, y_valid) = data.xy(fit), data.xy(valid)
    source = data.DATA_DIR / data.BIKES_FILE
    datasets = {
        "training": mlflow.data.from_pandas(fit.reset_index(), source=source, name="bikes-fit", targets="bikers"),
        "validation": mlflow.data.from_pandas(valid.reset_index(), source=source, name="bikes-valid", targets="bikers"),
    }
    for candidate in CHECKPOINT_SWEEP:
        model = candidate.build().fit(X_fit, y_fit)
        with mlflow.start_run(run_name=candidate.run_name):
            mlflow.set_tags({"family": candidate.family, "checkpoint": "true"})
            mlflow.log_params(candidate.params)
            for context, dataset in datasets.items():
                mlflow.log_input(dataset, context=context)
            models.log_sklearn_model(model, X_valid)
            mlflow.log_metrics(
                {
                    "train_rmse": root_mean_squared_error(y_fit, model.predict(X_fit)),
                    "val_rmse": root_mean_squared_error(y_valid, model.predict(X_valid)),
                }
            )
    return model_runs(experiment)


def ensure_champion(ws: Workspace | None = None, model_name: str = MODEL_NAME, experiment: str = EXPERIMENT_NAME):
    """Notebook 03's state: a registered model whose ``champion`` alias points at the best run's model.

    Returns the champion's ``ModelVersion``. Registers the best run of :func:`ensure_runs` when there is none.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    ws = _workspace(ws, experiment)
    client = mlflow.MlflowClient()
    try:
        return client.get_model_version_by_alias(model_name, "champion")
    except MlflowException:
        pass
    best = ensure_runs(ws, experiment).iloc[0]
    model_id = mlflow.get_run(best["run_id"]).outputs.model_outputs[0].model_id
    # Quietly: mlflow prints "Successfully registered ..." to stderr, and a checkpoint cell must show the same output
    # whether it rebuilt the state or found it.
    with contextlib.redirect_stderr(io.StringIO()):
        version = mlflow.register_model(f"models:/{model_id}", model_name, tags={"checkpoint": "true"})
    client.set_registered_model_alias(model_name, "champion", version.version)
    return client.get_model_version_by_alias(model_name, "champion")


def ensure_release(ws: Workspace, batch: str, window: tuple[str, str], model_name: str = MODEL_NAME):
    """Notebook 05's release for notebook 07: ``champion`` on the model the pipeline promoted from ``batch``.

    ``batch`` is the batch's CSV path in the workspace (notebook 05 writes ``batches/bikes-2011-01-to-05.csv``).
    If the pipeline promoted a model from it before, ``champion`` is moved back to that version when it is elsewhere
    (a re-run of notebook 07 starts from the same model); otherwise the batch is written from the source data and
    the pipeline runs on it, quietly, as notebook 05's first run does. Returns the champion's ``ModelVersion``.
    """
    import mlflow

    from mlops_helpers import pipeline

    ensure_champion(ws, model_name)
    client = mlflow.MlflowClient()
    promoted = set()
    if mlflow.get_experiment_by_name(pipeline.EXPERIMENT_NAME) is not None:
        runs = mlflow.search_runs(
            experiment_names=[pipeline.EXPERIMENT_NAME],
            filter_string=f"tags.`pipeline.data` = '{batch}' and tags.`pipeline.promoted` = 'True'",
        )
        promoted = set(runs["run_id"]) if not runs.empty else set()
    versions = client.search_model_versions(f"name='{model_name}'")
    versions = [v for v in versions if v.tags.get("pipeline_run") in promoted]
    if versions:
        release = max(versions, key=lambda v: int(v.version)).version
        if pipeline.registry_state(client, model_name)["aliases"].get(pipeline.CHAMPION) != release:
            pipeline.move_alias(client, model_name, pipeline.CHAMPION, release, "checkpoint: back to the release")
    else:
        data.source_batch(*window).to_csv(batch, index=False)
        config = pipeline.PipelineConfig(
            data=batch, window=window, integration_test=False, reason="checkpoint: notebook 05's release"
        )
        with contextlib.redirect_stderr(io.StringIO()):  # the same output whether it rebuilt the state or found it
            result = pipeline.run_pipeline(config, echo=lambda *_: None)
        if not result.promoted:
            raise RuntimeError(f"the checkpoint's pipeline run did not promote: {result.table().to_dict('records')}")
    return client.get_model_version_by_alias(model_name, pipeline.CHAMPION)
