"""Notebook 09's exercise checks: "not yet" on the empty answer, the common mistakes named, the solution's way passes.

The state is real: two registered versions (a forest as champion, a ridge as challenger) give the hourly paired errors
of a shadow test and the A/A canary's errors; the plan and the simulations are the release library's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from exercise_checks import not_yet, passes
from scipy import stats

from mlops_helpers import data, exercises, release
from mlops_helpers.names import MODEL_NAME
from mlops_helpers.serving.routing import route

ALPHA, SIMULATIONS, SEED = 0.05, 20_000, 42
WEIGHT, RATIO, MIN_HOURS = 0.25, 1.25, 48


def _errors(uri: str, start: str, end: str) -> pd.Series:
    import mlflow

    X, y = data.xy(data.load_bikes())
    X = X[(X.index >= start) & (X.index < end)]
    return (mlflow.pyfunc.load_model(uri).predict(X) - y[X.index]).abs()


@pytest.fixture(scope="module")
def versions(tmp_path_factory, module_tracking_env):
    """Two registered versions trained on the course's training window: a small forest and a ridge."""
    import mlflow

    from mlops_helpers import models, workspace

    # an experiment of its own: the id another module made active would stay active, and is not in this store
    workspace.setup(tmp_path_factory.mktemp("nb09") / "workspace", experiment="exercise-test-09")
    X, y = data.xy(data.window(data.load_bikes(), *data.TRAIN_WINDOW))
    found = []
    for family, params in (("random_forest", {"n_estimators": 20, "max_depth": 8}), ("ridge", None)):
        with mlflow.start_run(run_name=family):
            info = models.log_model(models.build_model(family, params).fit(X, y), X)
        found.append(str(mlflow.register_model(info.model_uri, MODEL_NAME).version))
    return found


@pytest.fixture(scope="module")
def state(versions):
    """A shadow test of the ridge (challenger) against the forest (champion) on three weeks of August, as notebook
    09's log gives it."""
    champion, ridge = versions
    errors = pd.DataFrame({role: _errors(f"models:/{MODEL_NAME}/{v}", "2011-08-01", "2011-08-21")
                           for role, v in (("champion", champion), ("challenger", ridge))})  # fmt: skip
    errors["key"], errors["day"] = errors.index.strftime("%Y-%m-%dT%H:00"), errors.index.strftime("%Y-%m-%d")
    pairs = errors.set_index(["day", "key"])[["champion", "challenger"]]
    per_day = (pairs["challenger"] - pairs["champion"]).groupby(level="day").mean()
    days = 20
    plan = release.SequentialPlan(days, 7, release.sequential_boundary(days, alpha=ALPHA, seed=SEED), ALPHA)
    qs = exercises.notebook_09(pairs, per_day, plan, alpha=ALPHA, simulations=SIMULATIONS, seed=SEED,
                               model_uri=f"models:/{MODEL_NAME}/{champion}", weight=WEIGHT, ratio=RATIO,
                               min_hours=MIN_HOURS)  # fmt: skip
    return pairs, per_day, plan, qs, f"models:/{MODEL_NAME}/{champion}"


def test_every_check_says_not_yet_on_the_empty_answer(state):
    for q in state[3]:
        not_yet(q.check(...), "no answer: replace `...`")


def test_1_hours_are_not_days(state):
    pairs, per_day, _, (q1, _, _), _ = state
    hours = (pairs["challenger"] - pairs["champion"]).sort_index(level="key")
    per_hour = stats.ttest_1samp(hours, 0.0).confidence_interval(1 - ALPHA)
    once = stats.ttest_1samp(per_day, 0.0).confidence_interval(1 - ALPHA)
    right = {"interval width per hour": round(float(per_hour.high - per_hour.low), 1),
             "interval width per day": round(float(once.high - once.low), 1),
             "lag-1 autocorrelation of hours": round(float(hours.autocorr()), 2)}  # fmt: skip
    not_yet(q1.check({"interval width per hour": 1.0}), "lacks the key(s)", "interval width per day")
    swapped = {**right, "interval width per hour": right["interval width per day"],
               "interval width per day": right["interval width per hour"]}  # fmt: skip
    not_yet(q1.check(swapped), "swapped")
    half = {**right, "interval width per day": (once.high - once.low) / 2}
    not_yet(q1.check(half), "half the width")
    not_yet(q1.check({**right, "lag-1 autocorrelation of hours": float(per_day.autocorr())}), "that of the days")
    not_yet(q1.check({**right, "interval width per hour": "narrow"}), "should be a float")
    verdict = q1.check(right)
    passes(verdict)
    assert "neighbouring hours" in verdict.message and "Days are the unit" in verdict.message


def test_2_peeking_from_day_2(state):
    _, _, plan, (_, q2, _), _ = state
    naive = release.peeking(plan.days, plan.boundary, first_look=2, alpha=ALPHA, simulations=SIMULATIONS,
                            seed=SEED + 1)["naive"]  # fmt: skip
    boundary = release.sequential_boundary(plan.days, alpha=ALPHA, first_look=2, simulations=SIMULATIONS, seed=SEED)
    from_7 = release.peeking(plan.days, plan.boundary, first_look=7, alpha=ALPHA, simulations=SIMULATIONS,
                             seed=SEED + 1)["naive"]  # fmt: skip
    not_yet(q2.check({"naive false alarms": from_7, "boundary": boundary}), "looking from day 7", "first_look=2")
    not_yet(q2.check({"naive false alarms": 100 * naive, "boundary": boundary}), "a percentage")
    not_yet(q2.check({"naive false alarms": naive, "boundary": plan.boundary}), "calibrated from day 7")
    one_look = stats.t.ppf(1 - ALPHA / 2, plan.days - 1)
    not_yet(q2.check({"naive false alarms": naive, "boundary": one_look}), "a single look only")
    not_yet(q2.check({"naive false alarms": naive, "boundary": boundary / 2}), "too low by")
    passes(q2.check({"naive false alarms": naive, "boundary": round(boundary, 2)}))
    # another seed is another simulation, within its Monte Carlo error
    other = release.sequential_boundary(plan.days, alpha=ALPHA, first_look=2, simulations=SIMULATIONS, seed=SEED + 7)
    passes(q2.check({"naive false alarms": naive, "boundary": other}))


def test_3_an_a_a_test_of_the_guard(state):
    *_, (_, _, q3), uri = state
    aa = _errors(uri, "2011-09-01", "2011-12-01").rename("error").to_frame()
    aa["key"], aa["day"], aa["month"] = aa.index.strftime("%Y-%m-%dT%H:00"), aa.index.date, aa.index.month
    fired = []
    for run in range(4):  # the notebook runs 20; the check follows the number of months answered
        side = np.array([route(f"aa{run}-{key}", "canary", WEIGHT) for key in aa["key"]])
        sums = aa.assign(side=side).pivot_table(index=["month", "day"], columns="side", values="error",
                                                aggfunc=["sum", "count"], fill_value=0)  # fmt: skip
        for _, month in sums.groupby(level="month"):
            total = month.groupby(level="month").cumsum()
            mae = total["sum"] / total["count"]
            fired.append(bool(((total["count"]["challenger"] >= MIN_HOURS) & (mae["challenger"] > RATIO * mae[
                "champion"])).any()))  # fmt: skip
    right = {"A/A months": len(fired), "months in which the guard fired": sum(fired),
             "false-alarm rate": float(np.mean(fired))}  # fmt: skip
    not_yet(q3.check({**right, "A/A months": 10}), "multiple of 3")
    not_yet(q3.check({**right, "months in which the guard fired": sum(fired) + 1}), "months fired")
    not_yet(q3.check({**right, "false-alarm rate": 100 * right["false-alarm rate"] or 50.0}), "between 0 and 1")
    not_yet(q3.check({k: v for k, v in right.items() if k != "false-alarm rate"}), "false-alarm rate")
    passes(q3.check(right))
