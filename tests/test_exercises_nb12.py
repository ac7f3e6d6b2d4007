"""Notebook 12's exercise checks: "not yet" on the empty answer, the common mistakes named, the solution passes; on
the notebook's windows, with a small model in place of the release (the checks only call its `predict`)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from exercise_checks import not_yet, passes
from scipy import stats
from sklearn.ensemble import HistGradientBoostingRegressor

from mlops_helpers import data, exercises

ALPHA, POWER = 0.05, 0.8


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One OpenMP thread for the gradient boosting, as the notebook does: on a busy 2-core machine threads wait."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def state(one_thread):
    os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "1")  # offline, as workspace.setup() sets it, before the import
    import whylogs as why

    bikes = data.load_bikes()

    def between(start, end):
        return bikes[(bikes.index >= start) & (bikes.index < end)]

    training = between("2011-01-01", "2011-06-01")
    model = HistGradientBoostingRegressor(max_iter=50, random_state=0).fit(*data.xy(training))

    def scored(frame):
        X, y = data.xy(frame)
        return X.assign(prediction=model.predict(X), bikers=y)

    reference, analysis = scored(between("2011-06-01", "2011-07-04")), scored(between("2011-07-04", "2012-01-01"))
    weeks = analysis.index.to_period("W")
    inputs = ["temp", "atemp", "hum", "windspeed", "hr", "workingday", "weathersit"]
    weekly_views = {str(week): why.log(pandas=bikes.loc[rows.index, inputs].astype({"weathersit": str})).view()
                    for week, rows in analysis.groupby(weeks)}  # fmt: skip
    inputs_and_prediction = [*data.FEATURES, "prediction"]
    error_model = HistGradientBoostingRegressor(random_state=42).fit(
        reference[inputs_and_prediction], (reference["bikers"] - reference["prediction"]) ** 2
    )
    checks = exercises.notebook_12(training, weekly_views, reference, model, error_model, ALPHA, POWER)
    return training, weekly_views, reference, scored, between, error_model, checks


def test_empty_answers_are_not_yet(state):
    for q in state[-1]:
        not_yet(q.check(None), "no answer: replace `...`")


def test_1_a_constraint_on_the_mean(state):
    training, weekly_views, *_, checks = state
    q1 = checks[0]
    means = training["temp"].groupby(training.index.to_period("W")).mean()

    def failing(weekly):
        low, high = weekly.min(), weekly.max()
        return {w for w, v in weekly_views.items() if not low <= v.to_pandas().loc["temp", "distribution/mean"] <= high}

    right, with_partial = failing(means.iloc[1:-1]), failing(means)
    low, high = training["temp"].min(), training["temp"].max()
    summary = {w: v.to_pandas().loc["temp"] for w, v in weekly_views.items()}
    out_of_range = {w for w, p in summary.items() if p["distribution/min"] < low or p["distribution/max"] > high}
    assert right and right != out_of_range
    not_yet(q1.check(sorted(out_of_range)), "range* constraint")
    if with_partial != right:
        not_yet(q1.check(sorted(with_partial)), "first and last 'weeks'")
    not_yet(q1.check(sorted(right)[1:]), "missing 1 week(s)")
    not_yet(q1.check(["2011-13"]), "are not weeks of weekly_views")
    not_yet(q1.check("2011-07-04/2011-07-10"), "should be a list")
    passes(q1.check(right))
    passes(q1.check({week: week in right for week in weekly_views}))  # {week: failed}, as the solution builds it


def test_2_a_smaller_rise(state):
    reference, checks = state[2], state[-1]
    q2 = checks[1]
    squared = ((reference["bikers"] - reference["prediction"]) ** 2).to_numpy()
    m0, s0 = squared.mean(), squared.std(ddof=1)
    z_alpha, z_power = stats.norm.ppf(1 - ALPHA), stats.norm.ppf(POWER)

    def hours_for(k):
        return int(np.ceil(((z_alpha * s0 + z_power * s0 * k) / (m0 * k - m0)) ** 2))

    rng = np.random.default_rng(7)
    errors = reference["bikers"].to_numpy() - reference["prediction"].to_numpy()

    def simulated_power(n):
        no_change = (rng.choice(errors, size=(20_000, n)) ** 2).mean(axis=1)
        return ((1.25**2 * no_change) > np.quantile(no_change, 1 - ALPHA)).mean()

    low, high = 1, 400
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if simulated_power(middle) >= POWER else (middle, high)
    right = {"25 % formula": hours_for(1.25**2), "25 % simulation": high, "10 % formula": hours_for(1.1**2)}
    not_yet(q2.check({"25 % formula": right["25 % formula"]}), "lacks the key(s)")
    not_yet(q2.check({**right, "25 % formula": hours_for(1.25)}), "multiplies the MSE by (1 + r)**2")
    not_yet(q2.check({**right, "10 % formula": right["10 % formula"] - 1}), "one short", "round")
    not_yet(q2.check({**right, "25 % simulation": 2 * high}), "too many")
    not_yet(q2.check({**right, "25 % formula": 125.5}), "should be an int")
    passes(q2.check(right))
    passes(q2.check({**right, "25 % simulation": high + 2}))  # another run of the simulation


def test_3_dle_on_a_shifted_week(state):
    *_, scored, between, error_model, checks = state
    q3 = checks[2]
    january = scored(between("2011-01-03", "2011-01-10"))
    inputs = [*data.FEATURES, "prediction"]
    estimated = float(np.sqrt(np.clip(error_model.predict(january[inputs]), 0, None).mean()))
    realised = float(np.sqrt(((january["bikers"] - january["prediction"]) ** 2).mean()))
    right = {"estimated RMSE": estimated, "realised RMSE": realised}
    not_yet(q3.check({"estimated RMSE": realised, "realised RMSE": estimated}), "swapped")
    not_yet(q3.check({"estimated RMSE": estimated**2, "realised RMSE": realised}), "an MSE")
    week_one = scored(between("2011-01-01", "2011-01-08"))
    not_yet(q3.check({"estimated RMSE": float(np.sqrt(np.clip(error_model.predict(week_one[inputs]), 0, None).mean())),
                       "realised RMSE": float(np.sqrt(((week_one["bikers"] - week_one["prediction"]) ** 2).mean()))}),
             "January 1-7", "Monday January 3")  # fmt: skip
    not_yet(q3.check({"estimated RMSE": "36"}), "lacks the key(s) ['realised RMSE']")
    not_yet(q3.check({**right, "realised RMSE": realised + 5}), "realised RMSE of January 3-9")
    passes(q3.check(right))
    passes(q3.check({name: round(value, 1) for name, value in right.items()}))
    assert pd.notna(estimated)
