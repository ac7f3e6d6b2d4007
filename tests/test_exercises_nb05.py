"""Notebook 05's exercise checks, on a real registry: the champion of notebook 01's runs, the pipeline run on the
January-May batch (exercise 1's RMSEs, exercise 2's batch) and on January-July (exercise 3). An empty answer is "not
yet", a typical wrong one is named, the solution's answer passes."""

from __future__ import annotations

from dataclasses import replace

import mlflow
import pandas as pd
import pytest
from exercise_checks import not_yet, passes
from sklearn.metrics import root_mean_squared_error

from mlops_helpers import data, exercises, names, pipeline, validation
from mlops_helpers.names import MODEL_NAME
from mlops_helpers.registry import Registry

GATES = {"model_name": MODEL_NAME, "holdout_days": 14, "max_rmse": 80.0, "min_improvement": 0.05}  # the notebook's


def _run(path, reason: str) -> pipeline.PipelineResult:
    config = pipeline.PipelineConfig(path, integration_test=False, promote=False, reason=reason, **GATES)
    return pipeline.run_pipeline(config, echo=lambda line: None)


@pytest.fixture(scope="module")
def state(ridge_challenger):
    """The notebook's state: the winter champion, the January-May batch and a pipeline run on it (as stage 3 logs)."""
    ws, champion, _ = ridge_challenger
    batch_path = ws.root / "batches" / "bikes-2011-01-to-05.csv"
    batch_path.parent.mkdir(exist_ok=True)
    data.source_batch("2011-01-01:2011-06-01").to_csv(batch_path, index=False)
    may = _run(batch_path, "test: January-May")
    return ws, champion, batch_path, may


def test_every_check_says_not_yet_on_an_empty_answer(state):
    _, _, batch_path, may = state
    for q in exercises.notebook_05(MODEL_NAME, may.run_id, batch_path):
        not_yet(q.check(None), "no answer: replace `...`")


def test_margin(state):
    _, winter, batch_path, may = state
    q1 = exercises.notebook_05(MODEL_NAME, may.run_id, batch_path)[0]
    _, holdout = pipeline.split_holdout(data.prepare_bikes(pd.read_csv(batch_path)), 14)  # as the solution does it
    X_hold, y_hold = data.xy(holdout)
    candidate = root_mean_squared_error(y_hold, mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{may.version}")
                                        .predict(X_hold))  # fmt: skip
    winter_rmse = root_mean_squared_error(y_hold, mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{winter}")
                                          .predict(X_hold))  # fmt: skip
    margin, gate = 1 - candidate / winter_rmse, bool(candidate <= winter_rmse * (1 - 0.6))
    not_yet(q1.check({"margin": margin}), "lacks the key(s) ['passes 60 %']")
    not_yet(q1.check({"margin": 100 * margin, "passes 60 %": gate}), "is a percentage")
    not_yet(q1.check({"margin": 0.0, "passes 60 %": gate}), "compared the May model with itself")
    not_yet(q1.check({"margin": candidate / winter_rmse, "passes 60 %": gate}), "1 minus it")
    not_yet(q1.check({"margin": margin, "passes 60 %": not gate}), f"'passes 60 %' is {not gate}")
    not_yet(q1.check({"margin": margin, "passes 60 %": "no"}), "should be a bool")
    passes(q1.check({"margin": margin, "passes 60 %": gate}))


def test_wind_faults(state):
    _, _, batch_path, may = state
    q2 = exercises.notebook_05(MODEL_NAME, may.run_id, batch_path)[1]
    raw = pd.read_csv(batch_path)
    strict = replace(validation.BIKES_CONTRACT, rules=tuple(
        validation.ColumnRule("windspeed", "float", 0, 0.8) if rule.column == "windspeed" else rule
        for rule in validation.BIKES_CONTRACT.rules))  # fmt: skip
    report = strict.validate(raw).to_frame()
    count = int(report.loc[report["column"] == "windspeed", "rows"].sum())
    assert count >= 1
    not_yet(q2.check({"by hand": count}), "lacks the key(s) ['package']")
    not_yet(q2.check({"by hand": count, "package": report}), "is a table")
    not_yet(q2.check({"by hand": 0, "package": count}), "'by hand' finds no fault")
    year = int((data.load_bikes()["windspeed"] > 0.8).sum())
    if year != count:
        not_yet(q2.check({"by hand": count, "package": year}), "the whole year's count")
    passes(q2.check({"by hand": count, "package": count}))


def test_july_run(state):
    from mlflow import MlflowClient

    _, _, batch_path, may = state
    q3 = exercises.notebook_05(MODEL_NAME, may.run_id, batch_path)[2]
    registry, client = Registry(MODEL_NAME), MlflowClient()
    july_path = batch_path.with_name("bikes-2011-01-to-07.csv")
    data.source_batch("2011-01-01:2011-08-01").to_csv(july_path, index=False)
    july = _run(july_path, "test: January-July")
    version = registry.aliases()[names.CHALLENGER]
    passed = mlflow.get_run(july.run_id).data.tags["stage.3.evaluate"] == "passed"
    with pytest.raises(pipeline.ApprovalRefused) as refused:
        pipeline.approve(version, by="tester", why="", registry=registry)
    answer = {"run": july.run_id, "version": version, "passed": passed, "refusal": str(refused.value)}
    not_yet(q3.check({**answer, "run": may.run_id}), "the months of the batch", "missing ['July', 'June']")
    not_yet(q3.check({**answer, "run": "0" * 32}), "no run has the id")
    not_yet(q3.check({**answer, "passed": not passed}), f"your run's gate says {passed}")
    not_yet(q3.check({**answer, "refusal": "it was refused"}), "missing reason")
    not_yet(q3.check(answer), f"'challenger' still points at version {version}")
    client.delete_registered_model_alias(MODEL_NAME, names.CHALLENGER)  # withdrawn, but not recorded
    not_yet(q3.check(answer), "record the withdrawal")
    client.set_registered_model_alias(MODEL_NAME, names.CHALLENGER, version)
    registry.remove(names.CHALLENGER, "test: the July challenger withdrawn")  # recorded
    not_yet(q3.check(answer), f"version {version} is still registered")
    client.delete_model_version(MODEL_NAME, version)
    passes(q3.check(answer))
    passes(q3.check({**answer, "refusal": refused.value, "version": int(version)}))  # the exception, an int version


def test_each_solution_cell_ends_in_its_check():
    for number in (1, 2, 3):
        source = exercises.solution_source("05", number)
        assert source.startswith(f"# {number}.") and f"assert q{number}.check(" in source
