"""Notebook 06's exercises, checked against the learner's frames, their training weeks' PSI and the flights data."""

from __future__ import annotations

import math
import numbers
from functools import partial
from typing import Any

from mlops_helpers.exercises import Exercise, NotYet, expect_keys, expect_same_set, expect_type

# --- Notebook 06: drift, checked against the learner's reference, July, training weeks and production weeks


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        expect_type(value, float, what)
    return float(value)


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and 0 < value < 1:
            raise NotYet(f"{what} is {value:g}, a share: give the number of weeks")
        expect_type(value, int, what)
    return int(value)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-300)


def _chi_square(reference, july, answer: Any) -> str:
    from scipy import stats

    from mlops_helpers import monitoring

    expect_keys(answer, ["chi2", "p_value"], "your answer")
    chi2, p_value = _number(answer["chi2"], "chi2"), _number(answer["p_value"], "p_value")
    observed = july["weathersit"].value_counts()
    shares = reference["weathersit"].value_counts(normalize=True).reindex(observed.index, fill_value=0)
    expected = shares * len(july)
    kept = expected > 0
    right = float((((observed - expected) ** 2)[kept] / expected[kept]).sum())
    dof = int(kept.sum()) - 1
    if not _close(chi2, right):
        if _close(chi2, right / len(july)):
            raise NotYet(f"chi2 = {chi2:.4g} is the statistic on shares: chi-square compares counts (the July hours "
                         f"against the reference shares times July's {len(july)} hours)")  # fmt: skip
        counts = reference["weathersit"].value_counts().reindex(observed.index, fill_value=0)
        raw = float((((observed - counts) ** 2)[counts > 0] / counts[counts > 0]).sum())
        if _close(chi2, raw):
            raise NotYet("chi2 compares July's counts with the reference's *counts*: scale the reference shares to "
                         f"July's size ({len(july)} hours) first")  # fmt: skip
        if math.isinf(chi2) or math.isnan(chi2):
            raise NotYet(f"chi2 is {chi2}: drop the categories whose expected count is 0 before dividing")
        raise NotYet(f"chi2 = {chi2:.4g} is off by {abs(chi2 - right):.3g}: sum (observed - expected)^2 / "
                     "expected over the weather categories, July's counts against the reference shares scaled to "
                     "July")  # fmt: skip
    library = monitoring.drift_table(reference, july, numeric=[], categorical=["weathersit"])
    helper_p = float(library.loc["weathersit", "p_value"])  # the helper's answer (SciPy's chisquare)
    if not _close(p_value, helper_p):
        for wrong in (dof + 1, dof - 1):
            if wrong > 0 and _close(p_value, float(stats.chi2.sf(chi2, wrong))):
                raise NotYet(f"that p-value has {wrong} degrees of freedom: {int(kept.sum())} categories with an "
                             f"expected count, minus 1, make {dof}")  # fmt: skip
        if _close(p_value, float(stats.chi2.cdf(chi2, dof))):
            raise NotYet("that is the probability *below* the statistic (cdf): the p-value is the tail above, `sf`")
        raise NotYet(f"p_value = {p_value:.4g}, the helper's is {helper_p:.4g}: `stats.chi2.sf(chi2, df={dof})`")
    sparse = expected[kept].idxmin()
    share = float((observed[sparse] - expected[sparse]) ** 2 / expected[sparse])
    caveat = (
        f" The category {sparse!r} expects only {expected[sparse]:.2f} hours, under the usual 5 that the chi-square "
        f"approximation wants: its cell adds {share:.2f} of the {right:.0f}, so the verdict stands, but pool such a "
        "category with its neighbour before trusting a p-value that is close to the line."
        if expected[sparse] < 5
        else ""
    )
    return (
        f"chi2 = {right:.2f} on {dof} degrees of freedom, p = {helper_p:.3g}, as the helper's: the July weather "
        "does not fit the winter's shares (and the hours are not independent, so read p as a description)." + caveat
    )


def _loose_thresholds(reference_scored, own_psi, production, answer: Any) -> str:
    import numpy as np
    import pandas as pd

    from mlops_helpers import monitoring

    expect_keys(answer, ["later weeks", "training weeks"], "your answer")
    later, training = (
        _count(answer["later weeks"], "'later weeks'"),
        _count(answer["training weeks"], "'training weeks'"),
    )
    first = production.index[0].normalize()  # the weeks of the monitor, from the end of the reference window

    def flagged(limit: float) -> int:
        starts = first + pd.to_timedelta((production.index - first).days // 7 * 7, unit="D")
        return sum(
            monitoring.psi(reference_scored["prediction"], week["prediction"]) >= limit
            for _, week in production.groupby(starts)
        )

    loose = float(own_psi["prediction"].quantile(0.9))
    right_training = int((own_psi["prediction"] >= loose).sum())
    right_later = flagged(loose)
    n_weeks = len(set((production.index - first).days // 7))
    if later != right_later:
        strict = float(np.ceil(own_psi["prediction"].max() * 100) / 100)
        if later == flagged(strict):
            raise NotYet(f"{later} weeks is the count with the maximum as threshold ({strict:.2f}); the 90th "
                         f"percentile of the training weeks' prediction PSI is {loose:.3f}")  # fmt: skip
        if later == flagged(float(own_psi["prediction"].quantile(0.1))):
            raise NotYet("that count uses the 10th percentile: `quantile(0.9)` is the 90th")
        raise NotYet(f"'later weeks' is {later}; with the prediction's threshold at {loose:.3f}, {right_later} of the "
                     f"{n_weeks} weeks from April show prediction drift")  # fmt: skip
    if training != right_training:
        if training == 0:
            raise NotYet("no training week reaches a threshold set at their 90th percentile? Count the training "
                         f"weeks whose prediction PSI is >= {loose:.3f} (`own_psi['prediction']`)")  # fmt: skip
        raise NotYet(f"'training weeks' is {training}; {right_training} of the {len(own_psi)} training weeks have a "
                     f"prediction PSI >= {loose:.3f}")  # fmt: skip
    return (
        f"{right_later} of {n_weeks} later weeks, and {right_training} of the {len(own_psi)} training weeks: a "
        "threshold at the 90th percentile is reached by about one ordinary week in ten by construction, so the "
        "monitor warns more often, and some of its warnings are noise"
    )


def _flights(psi_threshold: float, answer: Any) -> str:
    import pandas as pd

    from mlops_helpers import data, monitoring

    table = expect_type(answer, pd.DataFrame, "your answer")
    wanted = ["drifted by PSI", "drifted by test"]
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise NotYet(f"the table lacks the column(s) {missing}; it has {list(table.columns)}")
    columns = ["dep_delay", "distance", "temp"]
    expect_same_set(table.index, columns, "the table's rows (one per column of the flights)")
    flights = data.load_flights()
    first, second = flights[flights["month"] <= 6], flights[flights["month"] > 6]
    by_psi = monitoring.drift_table(first, second, numeric=columns, psi_threshold=psi_threshold)
    by_test = monitoring.drift_table(first, second, numeric=columns, method="test")
    for column in columns:
        for name, right in (("drifted by PSI", by_psi), ("drifted by test", by_test)):
            given = table.loc[column, name]
            if bool(given) != bool(right.loc[column, "drifted"]):
                psi, p = right.loc[column, "psi"], right.loc[column, "p_value"]
                raise NotYet(f"{column}, {name}: your table says {bool(given)}, but January-June against July-"
                             f"December gives PSI {psi:.4f} (threshold {psi_threshold:g}) and p = {p:.3g} "
                             "(drift when below 0.05)")  # fmt: skip
    disagree = [c for c in columns if by_psi.loc[c, "drifted"] != by_test.loc[c, "drifted"]]
    return (
        f"the rules disagree on {disagree}: with about 170,000 flights a side (and flights of one day sharing "
        "its weather and delays, so not independent), a test finds the smallest shift significant; PSI measures "
        "its size, and calls these shifts negligible"
    )


def notebook_06(reference_scored, july, own_psi, production, psi_threshold: float) -> tuple[Exercise, ...]:
    """Notebook 06's exercises: the reference with its predictions, July, the training weeks' PSI (``own_psi``), the
    production hours from April with their predictions, and the notebook's PSI threshold."""
    return (
        Exercise("06", 1, partial(_chi_square, reference_scored, july), [
            "Observed: `july['weathersit'].value_counts()`; expected: the reference's shares of the same categories "
            "times `len(july)`.",
            "`chi2 = ((observed - expected) ** 2 / expected).sum()` over the categories with expected > 0 (a category "
            "the reference never saw has none); `stats.chi2.sf(chi2, df=categories - 1)`.",
            "Answer `{'chi2': chi2, 'p_value': p_value}`.",
        ]),
        Exercise("06", 2, partial(_loose_thresholds, reference_scored, own_psi, production), [
            "`loose = own_psi.quantile(0.9)`: one threshold per column; only the prediction's matters here.",
            "For each week of `weekly(production, ref_end)`: `monitoring.drift_table(reference_scored, week, "
            "psi_threshold=loose, **WEEKLY_OPTIONS)`, its `drifted` for `prediction`; and "
            "`(own_psi['prediction'] >= loose['prediction']).sum()`.",
            "Answer `{'later weeks': ..., 'training weeks': ...}` (numbers of weeks).",
        ]),
        Exercise("06", 3, partial(_flights, psi_threshold), [
            "`flights = data.load_flights()`; the halves: `flights['month'] <= 6` and `> 6`.",
            "`monitoring.drift_table(first, second, numeric=[...])` decides by PSI; add `method='test'` for p < 0.05.",
            "Answer a DataFrame indexed by column, with the columns `drifted by PSI` and `drifted by test`.",
        ]),
    )  # fmt: skip
