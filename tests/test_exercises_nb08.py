"""Notebook 08's exercise checks: the empty answer is "not yet", a typical wrong answer is named, the right one passes
(a compiled pipeline with a check before train, the gated runs in the local runner's folders, a compiled default)."""

import json

import pandas as pd
import pytest
from exercise_checks import not_yet, passes
from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Model, Output

from mlops_helpers import data, exercises, kfp_pipeline, pipeline

WINDOW, MAX_RMSE = "2011-01-01:2011-06-01", 80.0


@pytest.fixture
def folders(tmp_path):
    kfp_dir, runs_dir = tmp_path / "kfp", tmp_path / "kfp-runs"
    kfp_dir.mkdir(), runs_dir.mkdir()
    return kfp_dir, runs_dir


@dsl.component(base_image=kfp_pipeline.IMAGE, install_kfp_package=False)
def check(data_uri: str, window_start: str, window_end: str):
    from mlops_helpers import pipeline

    frame, report = pipeline.validate_data(data_uri, (window_start, window_end))
    if frame is None:
        raise ValueError(report.verdict())


@dsl.component(base_image=kfp_pipeline.IMAGE, install_kfp_package=False)
def train(data_uri: str, model: Output[Model], holdout: Output[Dataset]):
    pass


@dsl.component(base_image=kfp_pipeline.IMAGE, install_kfp_package=False)
def evaluate(model: Input[Model], holdout: Input[Dataset]) -> bool:
    return True


@dsl.pipeline(name="checked")
def checked_pipeline(data_uri: str, window_start: str, window_end: str):
    checked = check(data_uri=data_uri, window_start=window_start, window_end=window_end)
    trained = train(data_uri=data_uri).after(checked)
    evaluate(model=trained.outputs["model"], holdout=trained.outputs["holdout"])


@dsl.pipeline(name="unordered")
def unordered_pipeline(data_uri: str, window_start: str, window_end: str):
    check(data_uri=data_uri, window_start=window_start, window_end=window_end)
    trained = train(data_uri=data_uri)
    evaluate(model=trained.outputs["model"], holdout=trained.outputs["holdout"])


def test_q1_a_check_before_train(folders):
    kfp_dir, runs_dir = folders
    q1 = exercises.notebook_08(kfp_dir, runs_dir, WINDOW, MAX_RMSE)[0]
    celsius = data.source_batch(WINDOW)  # the notebook's Celsius batch: three days' temperature in degrees
    hot_days = celsius["day"].between(140, 142)
    celsius.loc[hot_days, "temp"] = (celsius.loc[hot_days, "temp"] * 41).round(1)
    celsius.to_csv(kfp_dir / "bikes-celsius.csv", index=False)
    good, unordered = kfp_dir / "checked.yaml", kfp_dir / "unordered.yaml"
    compiler.Compiler().compile(checked_pipeline, str(good))
    compiler.Compiler().compile(unordered_pipeline, str(unordered))
    verdict = pipeline.validate_data(str(kfp_dir / "bikes-celsius.csv"), data.Window.parse(WINDOW))[1].verdict()
    error = f"ValueError: {verdict}"
    not_yet(q1.check(...), "no answer")
    not_yet(q1.check({"compiled": good}), "lacks the key(s) ['error']")
    not_yet(q1.check({"compiled": kfp_dir / "none.yaml", "error": error}), "no file 'none.yaml'")
    not_yet(q1.check({"compiled": unordered, "error": error}), "train does not wait for ['check']", ".after(")
    not_yet(q1.check({"compiled": good, "error": "Task 'check' finished with status FAILURE"}), "not the contract's")
    passes(q1.check({"compiled": good, "error": error}))
    passes(q1.check({"compiled": str(good), "error": verdict}))


def _local_run(runs_dir, stamp: str, tasks: list[str], passed: bool, rmse: float) -> None:
    """A run folder as kfp.local leaves it: one folder per task that ran; evaluate's executor output."""
    folder = runs_dir / f"my-gated-training-2026-12-02-10-36-{stamp}-000001"
    for task in tasks:
        (folder / task).mkdir(parents=True)
    scores = {"artifacts": [{"name": "scores", "metadata": {"holdout_rmse": rmse, "holdout_hours": 336}}]}
    output = {"parameterValues": {"Output": passed}, "artifacts": {"scores": scores}}
    (folder / "evaluate" / "executor_output.json").write_text(json.dumps(output))


def test_q2_the_gated_runs(folders):
    kfp_dir, runs_dir = folders
    q2 = exercises.notebook_08(kfp_dir, runs_dir, WINDOW, MAX_RMSE)[1]
    not_yet(q2.check({40.0: ["evaluate"], MAX_RMSE: ["evaluate", "publish"]}), "no run of a gated pipeline")
    rmse = 48.2  # the evaluation's RMSE in those runs: between the two thresholds, as in the notebook
    _local_run(runs_dir, "10", ["train", "evaluate"], passed=True, rmse=rmse)  # an earlier, ungated run
    _local_run(runs_dir, "20", ["evaluate"], passed=False, rmse=rmse)  # max_rmse=40: train cached, publish skipped
    _local_run(runs_dir, "30", ["evaluate", "publish"], passed=True, rmse=rmse)
    right = {40.0: ["evaluate"], MAX_RMSE: ["evaluate", "publish"]}
    not_yet(q2.check(None), "no answer")
    not_yet(q2.check({"40": ["evaluate"], "80": ["evaluate", "publish"]}), "as numbers")
    not_yet(q2.check({40.0: ["evaluate"]}), "one entry per run")
    not_yet(q2.check({40.0: ["Task 'evaluate' finished with status SUCCESS"], MAX_RMSE: []}), "tasks' names")
    not_yet(q2.check({**right, 40.0: ["evaluate", "publish"]}), "returned False (RMSE 48.20 > 40.0)", "skipped")
    not_yet(q2.check({**right, MAX_RMSE: ["evaluate"]}), "publish ran")
    not_yet(q2.check({**right, MAX_RMSE: ["train", "evaluate", "publish"]}), "from the cache")
    passes(q2.check(right))
    passes(q2.check(pd.Series(right).to_dict()))


def test_q3_a_stricter_default_at_compile_time(tmp_path, folders):
    q3 = exercises.notebook_08(*folders, WINDOW, MAX_RMSE)[2]
    default, strict = tmp_path / "default.yaml", tmp_path / "strict.yaml"
    compiler.Compiler().compile(kfp_pipeline.training_pipeline, str(default))
    compiler.Compiler().compile(kfp_pipeline.training_pipeline, str(strict), pipeline_parameters={"max_rmse": 60.0})
    pairs = zip(default.read_text().splitlines(), strict.read_text().splitlines(), strict=True)
    changed = [(old, new) for old, new in pairs if old != new]
    not_yet(q3.check(...), "no answer")
    not_yet(q3.check(["defaultValue: 60.0"]), "(old, new) pair")
    not_yet(q3.check(changed[-1:]), "missing the change")
    not_yet(q3.check([(new, old) for old, new in changed]), "(new, old)")
    not_yet(q3.check([*changed, ("name: a", "name: b")]), "did the code change too?")
    passes(q3.check(changed))
