"""Notebook 07's exercise checks: the empty answer is "not yet", a typical wrong answer is named, the right one passes
(the rule test with promtool and with the Python fallback, the sensitive threshold on a registered model, the route)."""

from __future__ import annotations

import shutil

import mlflow
import pandas as pd
import pytest
import yaml
from exercise_checks import not_yet, passes

from mlops_helpers import alerting, data, exercises, models, workspace
from mlops_helpers.exercises import nb07
from mlops_helpers.names import MODEL_NAME, PIPELINE_RUN_TAG

TRAIN_WINDOW, REPLAY_END = "2011-01-01:2011-06-01", "2012-01-01"
SUMMARY = "the week's predictions drifted from the training window's (PSI 0.30)"


def _drift_test(folder, silent=True, summary=SUMMARY):
    cases = [{"eval_time": "100ms", "alertname": "CityBikesPredictionDrift", "exp_alerts": []}] if silent else []
    cases.append({"eval_time": "200ms", "alertname": "CityBikesPredictionDrift", "exp_alerts": [
        {"exp_labels": {"severity": "warning"}, "exp_annotations": {"summary": summary}}]})  # fmt: skip
    test = {"rule_files": ["rules.yml"], "evaluation_interval": "100ms", "tests": [{
        "interval": "100ms", "input_series": [{"series": "citybikes_prediction_psi", "values": "0.2 0.2 0.3 0.3"}],
        "alert_rule_test": cases}]}  # fmt: skip
    path = folder / f"drift-{silent}-{len(summary)}.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return path


@pytest.fixture
def q(tmp_workspace):
    return exercises.notebook_07(MODEL_NAME, "1", TRAIN_WINDOW, REPLAY_END)


def test_q1_the_drift_rule_test(q, tmp_path):
    q1 = q[0]
    not_yet(q1.check(...), "no answer")
    not_yet(q1.check(tmp_path / "nowhere.yml"), "no file 'nowhere.yml'")
    not_yet(q1.check(_drift_test(tmp_path, silent=False)), "never expects the warning to be silent")
    wrong_summary = _drift_test(tmp_path, summary=SUMMARY.replace("0.30", "0.3"))
    if shutil.which("promtool"):
        not_yet(q1.check(wrong_summary), "at 200ms CityBikesPredictionDrift fires, but not with", "two decimals")
        early = yaml.safe_load(_drift_test(tmp_path).read_text())
        early["tests"][0]["alert_rule_test"][1]["eval_time"] = "100ms"  # PSI 0.2 there: silent
        (tmp_path / "early.yml").write_text(yaml.safe_dump(early))
        not_yet(q1.check(tmp_path / "early.yml"), "at 100ms CityBikesPredictionDrift does not fire")
    passes(q1.check(_drift_test(tmp_path)))
    passes(q1.check(str(_drift_test(tmp_path))))


def test_q1_without_promtool_the_check_evaluates_the_rule_in_python(q, tmp_path, monkeypatch):
    monkeypatch.setattr(nb07, "_tool", lambda argv, cwd: None)
    q1 = q[0]
    not_yet(q1.check(_drift_test(tmp_path, summary=SUMMARY.replace("0.30", "0.3"))), "summary reads", "(PSI 0.30)")
    late = yaml.safe_load(_drift_test(tmp_path).read_text())
    late["tests"][0]["alert_rule_test"][0]["eval_time"] = "300ms"  # PSI 0.3 there: the warning fires
    (tmp_path / "late.yml").write_text(yaml.safe_dump(late))
    not_yet(q1.check(tmp_path / "late.yml"), "at 300ms the PSI is 0.3: the warning fires")
    passes(q1.check(_drift_test(tmp_path)))


def test_q2_the_sensitive_threshold_on_the_old_champion(tmp_workspace):
    workspace.setup(tmp_workspace, experiment="exercise-07")
    bikes = data.load_bikes()
    start, end = data.Window.parse(TRAIN_WINDOW)
    X, y = data.xy(data.window(bikes, start, end))
    model = models.build_model("ridge").fit(X, y)
    with mlflow.start_run() as pipeline_run:  # the pipeline's parent run records the holdout RMSE
        holdout = float(((y - model.predict(X)) ** 2).mean() ** 0.5)
        mlflow.log_metric("holdout_rmse", holdout)
    with mlflow.start_run():
        logged = models.log_model(model, X.head())
    version = mlflow.register_model(logged.model_uri, MODEL_NAME, tags={PIPELINE_RUN_TAG: pipeline_run.info.run_id})
    q2 = exercises.notebook_07(MODEL_NAME, version.version, TRAIN_WINDOW, REPLAY_END)[1]
    # the right answer, as the solution computes it: the old champion's weekly RMSE against 1.25 x its holdout RMSE
    production = data.window(bikes, end, REPLAY_END)
    first_day = pd.Timestamp(end)
    week = first_day + pd.to_timedelta((production.index - first_day).days // 7 * 7, unit="D")
    predicted = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{version.version}").predict(data.xy(production)[0])
    old_errors = ((production["bikers"] - predicted) ** 2).groupby(week).mean() ** 0.5
    sensitive = round(1.25 * holdout, 2)
    rules = alerting.default_rules()
    gauges = {w: {"rmse": e, "rmse_threshold": sensitive} for w, e in old_errors.items()}
    fires = pd.Series({w: "CityBikesErrorHigh" in alerting.evaluate_rules(rules, g) for w, g in gauges.items()})
    groups = int((fires & ~fires.shift(fill_value=False)).sum())
    weeks = [w.date().isoformat() for w in fires.index[fires]]
    assert 0 < len(weeks) < len(fires) and groups < len(weeks), "the fixture's model must fire in some weeks"
    not_yet(q2.check(...), "no answer")
    not_yet(q2.check(weeks), "should be a dict")
    not_yet(q2.check({"weeks firing": weeks}), "lacks the key(s) ['retrainings started']")
    not_yet(q2.check({"weeks firing": weeks[1:], "retrainings started": groups}), f"missing {weeks[0]}")
    usual = [w.date().isoformat() for w, e in old_errors.items() if e > round(1.5 * holdout, 2)]
    if usual != weeks:
        not_yet(q2.check({"weeks firing": usual, "retrainings started": groups}), "1.5 x")
    ends = [(pd.Timestamp(w) + pd.Timedelta(days=6)).date().isoformat() for w in weeks]
    not_yet(q2.check({"weeks firing": ends, "retrainings started": groups}), "by its first day")
    not_yet(q2.check({"weeks firing": weeks, "retrainings started": len(weeks)}), "number of firing weeks")
    passes(q2.check({"weeks firing": weeks, "retrainings started": groups}))
    passes(q2.check({"weeks firing": list(fires.index[fires]), "retrainings started": groups}))  # Timestamps too


def _paging(folder, name="alertmanager.yml", route=None, oncall=True, replace=False):
    config = yaml.safe_load(alerting.alertmanager_yaml("http://127.0.0.1:9"))
    route = route or {"matchers": ['severity="page"'], "receiver": "oncall", "repeat_interval": "30m"}
    config["route"]["routes"] = [route] if replace else [*config["route"]["routes"], route]
    if oncall:
        config["receivers"].append({"name": "oncall", "webhook_configs": [{"url": "http://127.0.0.1:9/oncall"}]})
    (folder / name).write_text(yaml.safe_dump(config, sort_keys=False))
    return folder / name


@pytest.mark.parametrize("amtool", [True, False], ids=["amtool", "python"])
def test_q3_the_paging_route(q, tmp_path, monkeypatch, amtool):
    if not amtool:
        monkeypatch.setattr(nb07, "_tool", lambda argv, cwd: None)
    elif not shutil.which("amtool"):
        pytest.skip("amtool is not installed (make system-deps)")
    q3 = q[2]
    not_yet(q3.check(None), "no answer")
    not_yet(q3.check(_paging(tmp_path, "a.yml", oncall=False)), "no receiver named 'oncall'")
    no_repeat = {"matchers": ['severity="page"'], "receiver": "oncall"}
    not_yet(q3.check(_paging(tmp_path, "b.yml", route=no_repeat)), "repeats every 4h", "repeat_interval: 30m")
    not_yet(q3.check(_paging(tmp_path, "c.yml", replace=True)), "CityBikesErrorHigh", "'team-chat', not 'retrain'")
    critical = {"matchers": ['severity="critical"'], "receiver": "oncall", "repeat_interval": "30m"}
    not_yet(q3.check(_paging(tmp_path, "d.yml", route=critical)), "PredictionLatencyHigh", "not 'oncall'")
    passes(q3.check(_paging(tmp_path)))
