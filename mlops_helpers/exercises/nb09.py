"""Notebook 09's exercises, checked against the learner's shadow log, the release library and their registry."""

from __future__ import annotations

from functools import partial
from typing import Any

from mlops_helpers.exercises import Exercise, NotYet, expect_close, expect_keys, expect_type

#: The A/A test of exercise 3 runs on these months (the exercise's text), one month at a time, three per salted run.
AA_START, AA_END = "2011-09-01", "2011-12-01"
AA_MONTHS_PER_RUN = 3


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not hasattr(value, "__float__") or isinstance(value, str):
        expect_type(value, float, what)
    return float(value)


def _near(value: float, expected: float, tolerance: float) -> bool:
    return abs(value - expected) <= tolerance


def _share(value: Any, expected: float, what: str, tolerance: float) -> float:
    """A share between 0 and 1; a percentage (100 times it) is named as such."""
    value = _number(value, what)
    if value > 1 and _near(value / 100, expected, tolerance):
        raise NotYet(f"{what} is {value:g}: a percentage; give the share, between 0 and 1 ({value / 100:g})")
    if not 0 <= value <= 1:
        raise NotYet(f"{what} is {value:g}: a share of tests is between 0 and 1")
    return expect_close(value, expected, what, tolerance)


# --- 1. Hours are not days


def _hours_not_days(pairs, per_day, alpha: float, boundary: float, answer: Any) -> str:
    from scipy import stats

    keys = ["interval width per hour", "interval width per day", "lag-1 autocorrelation of hours"]
    expect_keys(answer, keys, "your answer")
    hour, day, lag = (_number(answer[k], k) for k in keys)
    hours = (pairs["challenger"] - pairs["champion"]).sort_index(level="key")
    ci_hour = stats.ttest_1samp(hours, 0.0).confidence_interval(1 - alpha)
    ci_day = stats.ttest_1samp(per_day, 0.0).confidence_interval(1 - alpha)
    width = {"hour": ci_hour.high - ci_hour.low, "day": ci_day.high - ci_day.low}
    lag_1 = float(hours.autocorr())
    tolerance = 0.06  # rounded to one decimal
    if _near(hour, width["day"], tolerance) and _near(day, width["hour"], tolerance):
        raise NotYet("the two widths are swapped: the hourly interval is the narrower one")
    for name, given in (("hour", hour), ("day", day)):
        if _near(given, width[name] / 2, tolerance) and not _near(given, width[name], tolerance):
            raise NotYet(
                f"interval width per {name} is {given:.4g}: half the width (high - mean); the width is high - low"
            )
    se_day = float(per_day.std() / len(per_day) ** 0.5)
    if _near(day, 2 * boundary * se_day, tolerance) and not _near(day, width["day"], tolerance):
        raise NotYet(
            f"interval width per day is {day:.4g}: the sequential interval (± the boundary); the exercise "
            "compares one ordinary t-test of the days, looked at once (stats.ttest_1samp(per_day, 0))"
        )
    expect_close(hour, width["hour"], "interval width per hour", tolerance)
    expect_close(day, width["day"], "interval width per day", tolerance)
    if _near(lag, float(per_day.autocorr()), 0.006) and not _near(lag, lag_1, 0.006):
        raise NotYet(
            f"lag-1 autocorrelation {lag:.2f} is that of the days; the exercise asks the hours' (in time order)"
        )
    expect_close(lag, lag_1, "lag-1 autocorrelation of hours", 0.006)
    return (
        f"per hour the interval is {width['day'] / width['hour']:.1f} times narrower, but neighbouring hours "
        f"move together (lag-1 autocorrelation {lag_1:.2f}): {len(hours)} hours carry far less information than "
        f"{len(hours)} independent pairs, so the hourly t-test is overconfident. Days are the unit."
    )


# --- 2. Peek from day 2


def _peek_from_day_2(plan, alpha: float, simulations: int, seed: int, answer: Any) -> str:
    import numpy as np
    from scipy import stats

    from mlops_helpers import release

    keys = ["naive false alarms", "boundary"]
    expect_keys(answer, keys, "your answer")
    naive, boundary = answer["naive false alarms"], _number(answer["boundary"], "boundary")
    from_2 = release.peeking(plan.days, plan.boundary, first_look=2, alpha=alpha, simulations=simulations,
                             seed=seed + 1)["naive"]  # fmt: skip
    from_first = release.peeking(plan.days, plan.boundary, first_look=plan.first_look, alpha=alpha,
                                 simulations=simulations, seed=seed + 1)["naive"]  # fmt: skip
    se = float(np.sqrt(from_2 * (1 - from_2) / simulations))
    # another seed is another simulation: two independent estimates differ by sqrt(2) standard errors (sd); allow 3
    tolerance = max(3 * np.sqrt(2) * se, 0.005)
    naive_value = _number(naive, "naive false alarms")
    if _near(naive_value, from_first, tolerance / 2) and not _near(naive_value, from_2, tolerance):
        raise NotYet(
            f"naive false alarms {naive_value:.4g} is the rate looking from day {plan.first_look}, as in the "
            "notebook: pass first_look=2"
        )
    naive_value = _share(naive, from_2, "naive false alarms", tolerance)
    # the boundary: its Monte Carlo range (quantiles 3 sqrt(2) standard errors either side of 1 - alpha: the learner's
    # simulation and this one are independent)
    t = np.abs(release.t_paths(np.random.default_rng(seed).standard_normal((simulations, plan.days)))[:, 1:])
    maxima = t.max(axis=1)
    se_q = np.sqrt(alpha * (1 - alpha) / simulations)
    low, high = np.quantile(maxima, 1 - alpha + np.array([-3, 3]) * np.sqrt(2) * se_q)
    reference = release.sequential_boundary(plan.days, alpha=alpha, first_look=2, simulations=simulations, seed=seed)
    if _near(boundary, plan.boundary, 0.01):
        raise NotYet(
            f"boundary {boundary:.4g} is the notebook's, calibrated from day {plan.first_look}: "
            "sequential_boundary(..., first_look=2) calibrates it for looks from day 2"
        )
    one_look = float(stats.t.ppf(1 - alpha / 2, plan.days - 1))
    if _near(boundary, one_look, 0.01):
        raise NotYet(
            f"boundary {boundary:.4g} is one t-test's critical value on day {plan.days}: it keeps ALPHA for "
            "a single look only"
        )
    if not low - 0.01 <= boundary <= high + 0.01:
        off = boundary - reference
        raise NotYet(
            f"boundary is {boundary:.4g}: too {'high' if off > 0 else 'low'} by {abs(off):.3g} (the "
            f"simulations' range is {low:.2f} to {high:.2f}); same days ({plan.days}), ALPHA, first_look=2?"
        )
    return (
        f"looking from day 2 the naive test raises a false alarm in {naive_value:.0%} of the A/A tests (from day "
        f"{plan.first_look}: {from_first:.0%}); a boundary of about {reference:.1f} keeps ALPHA, against "
        f"{plan.boundary:.2f} from day {plan.first_look}: the t of 2 or 3 days has 1 or 2 degrees of freedom, "
        "whose tails are so heavy that huge |t| happen by chance."
    )


# --- 3. An A/A test of the guard


def _aa_fired(errors, runs: int, weight: float, ratio: float, min_hours: int) -> dict[str, int]:
    """Months in which the error rule fires, the notebook's way, and by three common mistakes (to name them)."""
    import numpy as np
    import pandas as pd

    from mlops_helpers.serving.routing import route

    keys = errors.index.strftime("%Y-%m-%dT%H:00")
    frame = pd.DataFrame({"error": errors.to_numpy(), "day": errors.index.date, "month": errors.index.month})
    fired = {"right": 0, "months pooled": 0, "no minimum hours": 0, "month end only": 0}
    for run in range(runs):
        side = np.array([route(f"aa{run}-{key}", "canary", weight) for key in keys])
        sums = frame.assign(side=side).pivot_table(
            index=["month", "day"], columns="side", values="error", aggfunc=["sum", "count"], fill_value=0
        )
        pooled = sums.cumsum()  # never reset at a month's start
        pooled_mae = pooled["sum"] / pooled["count"]
        pooled_fires = (pooled["count"]["challenger"] >= min_hours) & (
            pooled_mae["challenger"] > ratio * pooled_mae["champion"]
        )
        for month_number, month in sums.groupby(level="month"):
            total = month.groupby(level="month").cumsum()
            mae = total["sum"] / total["count"]
            worse = mae["challenger"] > ratio * mae["champion"]
            fires = (total["count"]["challenger"] >= min_hours) & worse
            fired["right"] += bool(fires.any())
            fired["no minimum hours"] += bool(worse.any())
            fired["month end only"] += bool(fires.iloc[-1])
            fired["months pooled"] += bool(pooled_fires.xs(month_number, level="month").any())
    return fired


def _aa_guard(model_uri: str, weight: float, ratio: float, min_hours: int, answer: Any) -> str:
    import mlflow

    from mlops_helpers import data

    keys = ["A/A months", "months in which the guard fired", "false-alarm rate"]
    expect_keys(answer, keys, "your answer")
    months = answer["A/A months"]
    if isinstance(months, bool) or not hasattr(months, "__index__"):  # an int, or numpy's
        expect_type(months, int, "A/A months")
    months = int(months)
    if months <= 0 or months % AA_MONTHS_PER_RUN:
        raise NotYet(
            f"A/A months is {months}: each salted run has {AA_MONTHS_PER_RUN} months (September to "
            "November), each checked on its own, so the count is a multiple of 3"
        )
    count = _number(answer["months in which the guard fired"], "months in which the guard fired")
    rate = _number(answer["false-alarm rate"], "false-alarm rate")
    X, y = data.xy(data.load_bikes())
    X = X[(X.index >= AA_START) & (X.index < AA_END)]
    errors = (mlflow.pyfunc.load_model(model_uri).predict(X) - y[X.index]).abs()
    fired = _aa_fired(errors, months // AA_MONTHS_PER_RUN, weight, ratio, min_hours)
    if count != fired["right"]:
        for mistake, why in (("months pooled", "the cumulative sums never restart: reset them at each month's start "
                              "(the guard watches one canary, one month)"),
                             ("no minimum hours", "the rule fired before the challenger had GUARD_MIN_HOURS labelled "
                              "hours: both conditions must hold"),
                             ("month end only", "you looked at each month's last day only; the guard looks every "
                              "day, so it fires if any day's cumulative numbers cross the rule")):  # fmt: skip
            if count == fired[mistake] != fired["right"]:
                raise NotYet(f"{count:g} months fired: {why}")
        raise NotYet(
            f"{count:g} months fired: with these {months // AA_MONTHS_PER_RUN} salted runs (salts aa0- to "
            f"aa{months // AA_MONTHS_PER_RUN - 1}-) the rule fires in {'more' if fired['right'] > count else 'fewer'}"
            " months; route each hour's key with the salt, and the new champion's own errors on both sides"
        )
    _share(rate, count / months, "false-alarm rate", 1e-9)
    return (
        f"the guard fired in {count:g} of {months} A/A months ({rate:.0%}), with nothing to find: the {weight:.0%} "
        f"side's MAE over its first days is noisy enough to cross {ratio:g} x the champion's now and then; the "
        f"{min_hours}-hour minimum keeps that share low, and it is the price of a guard that acts within days."
    )


def notebook_09(
    pairs, per_day, plan, *, alpha: float, simulations: int, seed: int, model_uri: str, weight: float,
    ratio: float, min_hours: int,
) -> tuple[Exercise, Exercise, Exercise]:  # fmt: skip
    """Notebook 09's exercises: the shadow test's pairs and days, the plan of its sequential test, and the new
    champion (``models:/NAME/VERSION``) whose A/A canary the guard's rule watches."""
    return (
        Exercise(
            "09",
            1,
            partial(_hours_not_days, pairs, per_day, alpha, plan.boundary),
            [
                "`stats.ttest_1samp(x, 0.0).confidence_interval(1 - ALPHA)`: `.high - .low` is the width.",
                "The hourly differences: `pairs['challenger'] - pairs['champion']`, sorted by the key (time order).",
                "`hour_differences.autocorr()`; answer a dict with the three keys the answer cell names.",
            ],
        ),
        Exercise(
            "09",
            2,
            partial(_peek_from_day_2, plan, alpha, simulations, seed),
            [
                "`release.peeking(plan.days, plan.boundary, first_look=2, ...)['naive']`: the naive false alarms.",
                "`release.sequential_boundary(plan.days, alpha=ALPHA, first_look=2, simulations=SIMULATIONS, "
                "seed=SEED)` calibrates the boundary for looks from day 2.",
            ],
        ),
        Exercise(
            "09",
            3,
            partial(_aa_guard, model_uri, weight, ratio, min_hours),
            [
                "`offline_errors('2011-09-01', '2011-12-01', champion=new_champion)['champion']`: both sides are the "
                "same model, so `route(f'aa{run}-{key}', 'canary', ROUND2_WEIGHT)` picks the side of an hour.",
                "Per month and side: cumulative sums and counts of the errors by day; the rule fires on a day when the "
                "challenger has >= GUARD_MIN_HOURS hours and its MAE > GUARD_RATIO x the champion's.",
                "20 runs (salts aa0- to aa19-) x 3 months = 60 A/A months; the rate is months fired / months.",
            ],
        ),
    )
