"""Notebook 06's exercise checks, on the notebook's own state: the reference and July, the model's predictions, the
training weeks' PSI and the NYC flights. An empty answer is "not yet", a typical wrong one is named, the solution's
answer passes."""

from __future__ import annotations

import pandas as pd
import pytest
from exercise_checks import not_yet, passes
from scipy import stats

from mlops_helpers import data, exercises, models, monitoring, pipeline

PSI_THRESHOLD = 0.1  # the notebook's parameter


def _weekly(frame: pd.DataFrame, start) -> list[tuple[pd.Timestamp, pd.DataFrame]]:
    first = pd.Timestamp(start)  # the notebook's `weekly`
    return list(frame.groupby(first + pd.to_timedelta((frame.index - first).days // 7 * 7, unit="D")))


@pytest.fixture(scope="module")
def state():
    """The notebook's frames: the scored reference, July, the training weeks' PSI, the scored production hours."""
    bikes = data.load_bikes()
    ref_start, ref_end = data.Window.parse("2011-01-01:2011-04-01")
    reference = data.window(bikes, ref_start, ref_end)
    july = data.window(bikes, "2011-07-01", "2011-08-01")
    fit, _ = pipeline.split_holdout(reference, 14)
    model = models.build_model("gradient_boosting").fit(*data.xy(fit))

    def scored(frame):
        return frame.assign(prediction=model.predict(data.xy(frame)[0]))

    reference_scored = scored(reference)
    production = scored(data.window(bikes, ref_end, "2012-01-01"))
    options = {"numeric": ["prediction"], "categorical": []}  # only the prediction's PSI matters to exercise 2
    own_psi = pd.DataFrame(
        {start: monitoring.drift_table(reference_scored.drop(week.index), week, **options)["psi"]
         for start, week in _weekly(reference_scored, ref_start)}
    ).T  # fmt: skip
    return reference_scored, july, own_psi, production, ref_end


@pytest.fixture(scope="module")
def questions(state):
    reference_scored, july, own_psi, production, _ = state
    return exercises.notebook_06(reference_scored, july, own_psi, production, PSI_THRESHOLD)


def test_every_check_says_not_yet_on_an_empty_answer(questions):
    for q in questions:
        not_yet(q.check(...), "no answer: replace `...`")


def test_chi_square(state, questions):
    reference, july = state[0], state[1]
    q1 = questions[0]
    observed = july["weathersit"].value_counts()  # as the solution computes it
    expected = reference["weathersit"].value_counts().reindex(observed.index, fill_value=0) * len(july) / len(reference)
    mask = expected > 0
    chi2 = float((((observed - expected) ** 2)[mask] / expected[mask]).sum())
    dof = int(mask.sum()) - 1
    p_value = float(stats.chi2.sf(chi2, df=dof))
    not_yet(q1.check({"chi2": chi2}), "lacks the key(s) ['p_value']")
    not_yet(q1.check({"chi2": chi2 / len(july), "p_value": p_value}), "statistic on shares")
    not_yet(q1.check({"chi2": chi2, "p_value": float(stats.chi2.sf(chi2, df=dof + 1))}), f"minus 1, make {dof}")
    not_yet(q1.check({"chi2": chi2, "p_value": float(stats.chi2.cdf(chi2, df=dof))}), "cdf")
    not_yet(q1.check({"chi2": "205", "p_value": p_value}), "should be a float")
    passes(q1.check({"chi2": chi2, "p_value": p_value}))


def test_loose_thresholds(state, questions):
    reference_scored, _, own_psi, production, ref_end = state
    q2 = questions[1]
    loose = own_psi.quantile(0.9)  # as the solution computes it
    later = [monitoring.drift_table(reference_scored, week, numeric=["prediction"], psi_threshold=loose)
             .loc["prediction", "drifted"] for _, week in _weekly(production, ref_end)]  # fmt: skip
    training = int((own_psi["prediction"] >= loose["prediction"]).sum())
    assert training >= 1
    not_yet(q2.check({"later weeks": sum(later)}), "lacks the key(s) ['training weeks']")
    not_yet(q2.check({"later weeks": sum(later) / len(later), "training weeks": training}), "a share")
    strict = own_psi.max().apply(lambda v: -(-v * 100 // 1) / 100)  # the notebook's calibrated maximum, rounded up
    at_max = [monitoring.drift_table(reference_scored, week, numeric=["prediction"], psi_threshold=strict)
              .loc["prediction", "drifted"] for _, week in _weekly(production, ref_end)]  # fmt: skip
    if sum(at_max) != sum(later):
        not_yet(q2.check({"later weeks": sum(at_max), "training weeks": training}), "maximum as threshold")
    not_yet(q2.check({"later weeks": sum(later), "training weeks": 0}), "90th percentile")
    passes(q2.check({"later weeks": sum(later), "training weeks": training}))


def test_flights(questions):
    q3 = questions[2]
    flights = data.load_flights()  # as the solution computes it
    first_half, second_half = flights[flights["month"] <= 6], flights[flights["month"] > 6]
    columns = ["dep_delay", "distance", "temp"]
    by_psi = monitoring.drift_table(first_half, second_half, numeric=columns, psi_threshold=PSI_THRESHOLD)
    by_test = monitoring.drift_table(first_half, second_half, numeric=columns, method="test")
    verdicts = pd.DataFrame({"drifted by PSI": by_psi["drifted"], "drifted by test": by_test["drifted"]})
    not_yet(q3.check(verdicts[["drifted by PSI"]]), "lacks the column(s) ['drifted by test']")
    not_yet(q3.check(verdicts.drop(index="temp")), "missing ['temp']")
    not_yet(q3.check(verdicts.assign(**{"drifted by PSI": True})), "dep_delay, drifted by PSI", "threshold 0.1")
    not_yet(q3.check(by_psi["drifted"]), "should be a DataFrame")
    verdict = q3.check(verdicts)
    passes(verdict)
    assert "['dep_delay', 'distance']" in verdict.message


def test_each_solution_cell_ends_in_its_check():
    for number in (1, 2, 3):
        source = exercises.solution_source("06", number)
        assert source.startswith(f"# {number}.") and f"assert q{number}.check(" in source
