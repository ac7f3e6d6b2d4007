"""Reproducibility: rebuild a pipeline version from what its run logged, and prove it is the same model (notebook 10).

:func:`training_data` re-reads the file a pipeline run trained on and checks it against the run's records (the file's
SHA-256 and MLflow's digest of the training rows); :func:`reproduce` retrains from the logged parameters on those rows
and compares the predictions with the registered model's, bit for bit. Changed data is refused with
:class:`DataChanged`: a model rebuilt on other data is another model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_helpers import data as course_data
from mlops_helpers.governance.lineage import dataset_path, recorded_sha256

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient


class DataChanged(course_data.DataError):
    """The data a version was trained on is no longer what was logged: it cannot be reproduced from it."""


def parse_param(text: str) -> Any:
    """An MLflow parameter (always stored as text) back as the Python value it was logged from."""
    if text == "None":
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


@dataclass
class TrainingData:
    """What a pipeline version was trained on, re-read from disk and checked against what its run logged."""

    path: Path
    sha256: str
    recorded_sha256: str | None
    logged_digest: str
    digest: str
    train: Any  # pd.DataFrame
    holdout: Any  # pd.DataFrame


def training_data(run, check: bool = True) -> TrainingData:
    """Re-read the file a pipeline run trained on, split it as the run did, and check it is the same data.

    Two checks, both against what the run logged: the file's SHA-256 (tag ``pipeline.data_sha256``, when the run has
    it) and MLflow's digest of the training frame (the dataset input with context ``training``). With ``check``, a
    difference raises :class:`DataChanged`; the file may be rewritten with the same rows (its bytes differ, not the
    data), which is why the digest is the decisive check and the SHA-256 the quick one.
    """
    import mlflow
    import pandas as pd

    from mlops_helpers import pipeline

    params = run.data.params
    if "family" not in params or "holdout_days" not in params:
        raise ValueError(
            f"run {run.info.run_id} was not made by the pipeline (no 'family' and 'holdout_days' parameters): "
            "reproduce() rebuilds pipeline versions"
        )
    training = [i for i in run.inputs.dataset_inputs if any(t.value == "training" for t in i.tags)]
    if not training:
        raise ValueError(f"run {run.info.run_id} logged no dataset input with context 'training'")
    dataset = training[0].dataset
    path = dataset_path(dataset)
    if path is None or not path.is_file():
        raise DataChanged(f"the training data of run {run.info.run_id} was read from {path}, which no longer exists")
    sha = course_data.sha256(path)
    recorded = recorded_sha256(path, run.data.tags)
    if check and recorded is not None and recorded != sha:
        raise DataChanged(
            f"{path.name} has changed since run {run.info.run_name} trained on it: sha256 {sha[:12]}... now, "
            f"{recorded[:12]}... recorded. Restore the file (or find the data by its digest) before reproducing."
        )
    frame = course_data.prepare_bikes(pd.read_csv(path), source=str(path))
    train, holdout = pipeline.split_holdout(frame, int(params["holdout_days"]))
    digest = mlflow.data.from_pandas(
        train.reset_index(), source=str(path), name=dataset.name, targets=course_data.TARGET
    ).digest
    if check and digest != dataset.digest:
        raise DataChanged(
            f"the training rows read from {path.name} have MLflow digest {digest}, but run {run.info.run_name} "
            f"logged {dataset.digest}: the data changed. Reproducing on it would build a different model."
        )
    return TrainingData(path, sha, recorded, dataset.digest, digest, train, holdout)


@dataclass
class Reproduction:
    """The result of :func:`reproduce`: what was rebuilt from what, and how its predictions compare."""

    model_name: str
    version: str
    run_id: str
    family: str
    params: dict
    data_file: str
    sha256: str
    digest: str
    rows_compared: int
    max_abs_diff: float

    @property
    def identical(self) -> bool:
        """Bit-for-bit: every prediction equal (``max_abs_diff == 0.0``), not merely close."""
        return self.max_abs_diff == 0.0

    def summary(self) -> dict:
        return {
            "version": self.version,
            "family": self.family,
            "params": self.params,
            "data file": self.data_file,
            "sha256": self.sha256[:16],
            "mlflow digest": self.digest,
            "rows compared": self.rows_compared,
            "max |difference|": self.max_abs_diff,
            "identical": self.identical,
        }


def reproduce(model_name: str, version: str | int, client: MlflowClient | None = None) -> Reproduction:
    """Retrain ``model_name``'s pipeline ``version`` from its run's logged parameters and data, and compare.

    Reads the run's ``family``, hyperparameters and ``holdout_days``; re-reads its training file and refuses with
    :class:`DataChanged` if the file or the training rows differ from what was logged; rebuilds the model with
    ``models.build_model`` (seeded) on the same rows; and compares its predictions with the registered model's on
    every row of the batch (training and holdout).
    """
    import mlflow
    import numpy as np
    import pandas as pd

    from mlops_helpers import models
    from mlops_helpers.registry import Registry

    registry = Registry(model_name, client)
    mv = registry.version(version)
    run = registry.client.get_run(mv.run_id)
    found = training_data(run)
    params = {k: parse_param(v) for k, v in run.data.params.items()}
    family, _ = params.pop("family"), params.pop("holdout_days")
    rebuilt = models.build_model(family, params)
    X_train, y_train = course_data.xy(found.train)
    rebuilt.fit(X_train, y_train)
    X_all, _ = course_data.xy(pd.concat([found.train, found.holdout]))
    registered = mlflow.pyfunc.load_model(f"models:/{model_name}/{mv.version}")
    diff = np.abs(np.asarray(registered.predict(X_all), dtype="float64") - rebuilt.predict(X_all))
    return Reproduction(
        model_name,
        str(mv.version),
        run.info.run_id,
        family,
        params,
        found.path.name,
        found.sha256,
        found.digest,
        len(X_all),
        float(diff.max()),
    )
