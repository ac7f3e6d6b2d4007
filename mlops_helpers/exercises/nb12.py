"""Notebook 12's exercises, checked against the learner's training frame, weekly profiles, reference errors and
error model."""

from __future__ import annotations

import math
import numbers
from functools import partial
from typing import Any

from mlops_helpers.exercises import Exercise, NotYet, as_list, expect_keys, expect_type

SIMULATIONS = 20_000  # the check's own simulation: as many draws as the notebook's


def _as_weeks(answer: Any, what: str) -> list[str]:
    import numpy as np

    if hasattr(answer, "keys") and hasattr(answer, "values"):  # {week: failed?} is an answer too
        values = list(answer.values())
        if values and all(isinstance(v, bool | np.bool_) for v in values):
            return [str(week) for week, failed in answer.items() if failed]
        raise NotYet(f"{what}: give the weeks (their names in weekly_views), or a dict of week -> True/False")
    return [str(week) for week in as_list(answer, what)]


def _mean_constraint(training, weekly_views, answer: Any) -> str:
    answer = _as_weeks(answer, "the weeks failing the mean")
    weekly_mean = training["temp"].groupby(training.index.to_period("W")).mean()
    profile = {week: view.to_pandas().loc["temp"] for week, view in weekly_views.items()}

    def failing(means) -> set[str]:
        low, high = means.min(), means.max()
        return {w for w, p in profile.items() if not low <= p["distribution/mean"] <= high}

    expected, with_partial = failing(weekly_mean.iloc[1:-1]), failing(weekly_mean)
    low, high = training["temp"].min(), training["temp"].max()
    out_of_range = {w for w, p in profile.items() if p["distribution/min"] < low or p["distribution/max"] > high}
    given = set(answer)
    unknown = sorted(given - set(profile))
    if unknown:
        raise NotYet(f"{unknown[:3]} are not weeks of weekly_views (names like {next(iter(profile))!r})")
    if given == expected:
        also = len(expected & out_of_range)
        among = (
            "every week out of range is among them"
            if out_of_range <= expected
            else (f"{len(out_of_range - expected)} week(s) out of range pass the mean")
        )
        return (f"{len(expected)} weeks fail the mean; {also} of them also fail temp's range, and {among}. "
                f"The other {len(expected) - also} are hot weeks "
                "whose mean leaves the training weeks' means without one hour hotter than training's hottest: a "
                "mean rule sees a shift of the whole week, a range rule only extremes")  # fmt: skip
    if given == with_partial and with_partial != expected:
        raise NotYet("your bounds include the window's first and last 'weeks' (two days each): leave them out "
                     "(`.iloc[1:-1]` of the weekly means)")  # fmt: skip
    if given == out_of_range and out_of_range != expected:
        raise NotYet(f"those are the {len(out_of_range)} weeks failing temp's *range* constraint; the mean "
                     "constraint fails more weeks")  # fmt: skip
    missing, extra = sorted(expected - given), sorted(given - expected)
    parts = [f"missing {len(missing)} week(s), e.g. {missing[:2]}" if missing else "",
             f"{len(extra)} week(s) that pass, e.g. {extra[:2]}" if extra else ""]  # fmt: skip
    raise NotYet(
        "the weeks failing the mean: "
        + "; ".join(p for p in parts if p)
        + f" (bounds: the smallest and largest weekly mean of whole training weeks, {len(expected)} fail)"
    )


def _hours_for(m0: float, s0: float, z_alpha: float, z_power: float, rise: float, squared: bool = True) -> int:
    k = (1 + rise) ** 2 if squared else 1 + rise
    return math.ceil(((z_alpha * s0 + z_power * s0 * k) / (m0 * k - m0)) ** 2)


def _simulated_hours(errors, rise: float, alpha: float, power: float, low: int, high: int) -> int:
    import numpy as np

    rng = np.random.default_rng(0)

    def reached(n: int) -> bool:
        no_change = (rng.choice(errors, size=(SIMULATIONS, n)) ** 2).mean(axis=1)
        return ((1 + rise) ** 2 * no_change > np.quantile(no_change, 1 - alpha)).mean() >= power

    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if reached(middle) else (middle, high)
    return high


def _smaller_rise(reference, alpha: float, power: float, answer: Any) -> str:
    from scipy import stats

    keys = ["25 % formula", "25 % simulation", "10 % formula"]
    expect_keys(answer, keys, "the sample sizes")
    for key in keys:
        if isinstance(answer[key], bool) or not isinstance(answer[key], numbers.Integral):
            expect_type(answer[key], int, f"{key!r} (a number of hours)")
    errors = (reference["bikers"] - reference["prediction"]).to_numpy()
    squared = errors**2
    m0, s0 = squared.mean(), squared.std(ddof=1)
    z = stats.norm.ppf(1 - alpha), stats.norm.ppf(power)
    for key, rise in (("25 % formula", 0.25), ("10 % formula", 0.10)):
        right, given = _hours_for(m0, s0, *z, rise), int(answer[key])
        if given == right:
            continue
        if given == _hours_for(m0, s0, *z, rise, squared=False):
            raise NotYet(f"{key}: {given} takes the MSE up by (1 + r), but a rise of the RMSE by (1 + r) "
                         "multiplies the MSE by (1 + r)**2")  # fmt: skip
        if given == _hours_for(m0, s0, *z, rise * 100):
            raise NotYet(f"{key}: {given} is the size for a rise of {rise * 100:g}, i.e. {rise * 100:g} times: "
                         f"a rise of {rise * 100:g} % is {rise:g}")  # fmt: skip
        if given == right - 1:
            raise NotYet(f"{key}: {given} is one short: round the formula's n *up* (np.ceil): fewer hours miss the "
                         "power")  # fmt: skip
        raise NotYet(f"{key}: the formula gives {right} hours, not {given} (m0, s0 of June's squared errors; "
                     "m1 = (1+r)**2 m0, s1 = (1+r)**2 s0)")  # fmt: skip
    formula = _hours_for(m0, s0, *z, 0.25)
    simulated, given = _simulated_hours(errors, 0.25, alpha, power, 1, 400), int(answer["25 % simulation"])
    if given == formula and abs(simulated - formula) > max(4, 0.05 * simulated):
        raise NotYet(
            f"'25 % simulation' is the formula's {formula}: simulate it, as for the 50 % rise "
            "(threshold at the 95th percentile of 'no change', hours added until the power is reached)"
        )
    if abs(given - simulated) > max(4, 0.05 * simulated):
        direction = "few" if given < simulated else "many"
        raise NotYet(f"'25 % simulation': {given} hours is too {direction}: the check's own simulation needs about "
                     f"{simulated} for the power (threshold at the 95th percentile of the sample's MSE with no "
                     "change, power on draws scaled by (1 + 0.25)**2)")  # fmt: skip
    ten, fifty = int(answer["10 % formula"]), _hours_for(m0, s0, *z, 0.5)
    return (f"25 %: {formula} hours by the formula, {given} by simulation (the check's: {simulated}); 10 %: {ten} "
            f"hours, {'more than the 168 a week has' if ten > 168 else 'within a week'}: {ten / fifty:.0f} times "
            f"the {fifty} of a 50 % rise. The MSE difference to detect, m1 - m0, shrinks faster than the rise, and n "
            "grows with 1 / (m1 - m0)**2 (less than that alone, as s1 shrinks too)")  # fmt: skip


def _dle_january(model, error_model, answer: Any) -> str:
    import numpy as np

    from mlops_helpers import data

    keys = ["estimated RMSE", "realised RMSE"]
    expect_keys(answer, keys, "the RMSEs")
    bikes = data.load_bikes()

    def rmses(start: str, end: str, clip: bool = True) -> dict[str, float]:
        X, y = data.xy(bikes[(bikes.index >= start) & (bikes.index < end)])
        predicted = model.predict(X)
        estimate = error_model.predict(X.assign(prediction=predicted)[[*data.FEATURES, "prediction"]])
        estimate = np.clip(estimate, 0, None) if clip else estimate
        return {"estimated RMSE": float(np.sqrt(np.mean(estimate))),
                "realised RMSE": float(np.sqrt(np.mean((y.to_numpy() - predicted) ** 2)))}  # fmt: skip

    right = rmses("2011-01-03", "2011-01-10")
    given = {}
    for key in keys:
        if isinstance(answer[key], bool) or not isinstance(answer[key], numbers.Real):
            expect_type(answer[key], float, repr(key))
        given[key] = float(answer[key])

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= max(0.06, 0.005 * abs(b))  # rounded to 0.1 is right

    if all(close(given[k], right[k]) for k in keys):
        ratio = right["estimated RMSE"] / right["realised RMSE"]
        return (
            f"estimated {right['estimated RMSE']:.1f} against a realised {right['realised RMSE']:.1f}, "
            f"{ratio:.1f} times too high. The error model learned June's out-of-sample errors: January is "
            "winter (inputs June never had) and the model's own training data, where its errors are small. "
            "DLE is only as good as the reference's coverage, and the reference must not be training data"
        )
    raise NotYet(_dle_mistake(given, right, rmses, close))


def _dle_mistake(given: dict, right: dict, rmses, close) -> str:
    """What is wrong with RMSEs that are not January 3-9's: the common mistakes first."""
    keys = list(right)
    if close(given["estimated RMSE"], right["realised RMSE"]) and close(
        given["realised RMSE"], right["estimated RMSE"]
    ):
        return "you swapped them: the estimate comes from error_model, the realised RMSE from the labels"
    for key in keys:
        if close(given[key], right[key] ** 2):
            return f"{key!r} is {given[key]:.4g}: that is an MSE; take its square root"
    for start, end, name in [("2011-01-01", "2011-01-08", "January 1-7"), ("2011-01-01", "2011-02-01", "January")]:
        other = rmses(start, end)
        if all(close(given[k], other[k]) for k in keys):
            return (f"those are the RMSEs of {name}: the first *week* is Monday January 3 to Sunday 9, "
                    "`between('2011-01-03:2011-01-10')`")  # fmt: skip
    unclipped = rmses("2011-01-03", "2011-01-10", clip=False)["estimated RMSE"]
    if not close(unclipped, right["estimated RMSE"]) and close(given["estimated RMSE"], unclipped):
        return "your estimate averages negative predicted squared errors: clip them at 0 first, as estimated_rmse does"
    key = next(k for k in keys if not close(given[k], right[k]))
    return f"the {key} of January 3-9 is {right[key]:.1f}, not {given[key]:.4g}"


def notebook_12(training, weekly_views, reference, model, error_model, alpha: float, power: float) -> tuple:
    """Notebook 12's three exercises: the training window's profile, June's errors, and the error model."""
    return (
        Exercise("12", 1, partial(_mean_constraint, training, weekly_views), [
            "`training['temp'].groupby(training.index.to_period('W')).mean().iloc[1:-1]`: whole weeks only.",
            "One ConstraintsBuilder per week with `mean_between_range(column_name='temp', lower=..., upper=...)`.",
            "Answer the weeks whose `.build().validate()` is False (a set of names, or {week: failed}).",
        ]),
        Exercise("12", 2, partial(_smaller_rise, reference, alpha, power), [
            "The formula of the cell that computes `n_hours`, with `scale = (1 + rise) ** 2`; round up.",
            "For the simulation, the recipe of the loop that finds `n_sample` (`simulate`, the 95th percentile of "
            "'no change'), per n; the power grows with n, so bisect between n_sample and 168.",
            "Answer `{'25 % formula': ..., '25 % simulation': ..., '10 % formula': ...}`, whole hours.",
        ]),
        Exercise("12", 3, partial(_dle_january, model, error_model), [
            "`january = scored(between('2011-01-03:2011-01-10'))`: Monday to Sunday.",
            "Answer `{'estimated RMSE': estimated_rmse(january), 'realised RMSE': rmse(january)}`.",
        ]),
    )  # fmt: skip
