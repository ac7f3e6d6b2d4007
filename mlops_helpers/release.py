"""Release decisions: is the challenger better online, and how sure are we? (notebook 09)

The prediction service (:mod:`mlops_helpers.serving`) routes traffic between ``champion`` and ``challenger`` and
logs every prediction with its variant. Once the labels arrive, this module answers the question a release needs,
with tests whose assumptions the release's data meets:

- **the unit is the day.** Neighbouring hours share the weather and the events of their day, so hourly errors are
  not independent; days nearly are. :func:`daily_differences` turns a labelled prediction log into one number per
  day: the challenger's error minus the champion's, on the same requests (shadow mode, ``paired=True``) or on the
  requests each variant answered that day (a canary stage). Comparing within a day also keeps time out of the
  comparison: pooling a 10 % week with a 50 % week would compare mostly week-two challenger hours with mostly
  week-one champion hours.
- **a fixed horizon** (one look at the end): :func:`days_needed` says how many days a t-test needs to detect an
  effect worth detecting (:func:`t_test_power`), :func:`detectable_effect` what a given number of days can detect,
  and :func:`compare` tests the difference once (``paired=True`` on daily values).
- **daily looks**: a t-test repeated every day at 5 % finds a difference that is not there far more often than 5 %.
  :func:`sequential_boundary` gives the one threshold for ``|t|`` that keeps the chance of *any* false alarm, over
  every daily look from ``first_look`` to ``days``, at ``alpha`` (a Pocock-type boundary, calibrated by simulating
  the t statistic, which has the same distribution whatever the spread of the data); :func:`plan_sequential` picks
  the horizon that gives the power wanted; :func:`sequential_look` is the daily decision, with an interval that is
  valid at every look; :func:`peeking` measures the false-alarm rates of both ways of looking.

:class:`Comparison` and :class:`Look` turn the numbers into ``promote``, ``rollback`` or ``continue``. The same release
on a cluster (KServe, Seldon Core) is written by :mod:`mlops_helpers.manifests`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd


@dataclass(frozen=True)
class Comparison:
    """The online comparison of challenger and champion, and what it means for the release.

    ``difference`` is challenger minus champion (mean absolute error): negative means the challenger is better.
    ``ci_low``/``ci_high`` bound it at ``confidence``; ``p_value`` is two-sided for "no difference".
    """

    test: str
    n_champion: int
    n_challenger: int
    champion_mae: float
    challenger_mae: float
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    decision: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: the test, the difference with its interval, the p-value and the decision."""
        return (
            f"{self.test}: challenger - champion MAE = {self.difference:+.2f} "
            f"({self.confidence:.0%} CI {self.ci_low:+.2f} to {self.ci_high:+.2f}, p = {self.p_value:.2g}) "
            f"-> {self.decision.upper()}: {self.reason}"
        )


def _decide(low: float, high: float, n: int, min_samples: int, margin: float, final: bool) -> tuple[str, str]:
    if n < min_samples:
        return "continue", f"only {n} observations, {min_samples} are needed before deciding"
    if high < -margin:
        return "promote", "the challenger's error is lower, and the whole interval says so"
    if low > 0:
        return "rollback", "the challenger's error is higher, and the whole interval says so"
    if final:
        return "rollback", "no significant improvement by the end of the canary: the champion stays"
    return "continue", "the interval includes no improvement: keep collecting"


def compare(
    champion_errors,
    challenger_errors,
    *,
    paired: bool = False,
    groups=None,
    confidence: float = 0.95,
    min_samples: int = 30,
    margin: float = 0.0,
    final: bool = False,
) -> Comparison:
    """Compare two variants' absolute errors once (a fixed horizon) and decide.

    ``paired=False``: two independent samples, Welch's t-test; the observations must be independent units (users,
    days), not the hours of the same days. ``paired=True``: the two arrays are the same units in the same order
    (requests in shadow mode, or days: each variant's daily error); paired t-test on the differences, after
    averaging them within ``groups`` (labels of the same length, e.g. the day of each request) when given.
    ``min_samples`` counts the smaller sample, or the pairs/groups. The challenger is promoted only when the whole
    interval lies below ``-margin``; it is rolled back when the whole interval lies above 0, or (``final=True``, the
    test's days are spent) when it is not better. Look once: repeated at every new day, the test finds differences
    that are not there (see :func:`peeking`; :func:`sequential_look` is the daily test).
    Raises ``ValueError`` for empty, non-finite or mismatched input.
    """
    import numpy as np
    from scipy import stats

    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence must be in [0.5, 1), not {confidence!r}")
    a = np.abs(np.asarray(champion_errors, dtype="float64").reshape(-1))
    b = np.abs(np.asarray(challenger_errors, dtype="float64").reshape(-1))
    if a.size < 2 or b.size < 2:
        raise ValueError(f"each variant needs at least 2 errors to compare (champion {a.size}, challenger {b.size})")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("the errors contain NaN or infinity: join the labels first and drop requests without one")
    if paired:
        if a.size != b.size:
            raise ValueError(f"paired errors must be the same requests: {a.size} champion vs {b.size} challenger")
        diff = b - a
        if groups is not None:
            diff, n = _group_means(diff, groups)
            test = "paired t-test on group means"
        else:
            n, test = diff.size, "paired t-test"
        if n < 2:
            raise ValueError("a paired comparison needs at least 2 pairs (or groups)")
        result = stats.ttest_1samp(diff, 0.0)
        n_a = n_b = n
    else:
        result = stats.ttest_ind(b, a, equal_var=False)
        n, n_a, n_b = min(a.size, b.size), a.size, b.size
        test = "Welch's t-test"
    ci = result.confidence_interval(confidence)
    low, high = float(ci.low), float(ci.high)
    # The tested quantity: the mean paired difference (of group means), or the difference of the two means.
    difference = float(diff.mean()) if paired else float(b.mean() - a.mean())
    decision, reason = _decide(low, high, n, min_samples, margin, final)
    return Comparison(
        test=test,
        n_champion=int(n_a),
        n_challenger=int(n_b),
        champion_mae=float(a.mean()),
        challenger_mae=float(b.mean()),
        difference=difference,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        p_value=float(result.pvalue),
        decision=decision,
        reason=reason,
    )


def _group_means(values: np.ndarray, groups) -> tuple[np.ndarray, int]:
    import pandas as pd

    groups = list(groups)
    if len(groups) != values.size:
        raise ValueError(f"groups has {len(groups)} labels for {values.size} values")
    means = pd.Series(values).groupby(pd.Series(groups), sort=True).mean().to_numpy()
    return means, int(means.size)


# -- the unit: one difference per day ----------------------------------------------------------------------------------
def daily_differences(log: pd.DataFrame, *, paired: bool) -> pd.Series:
    """Challenger's minus champion's mean absolute error, one value per day, from a labelled prediction log.

    ``log`` has one row per logged prediction with ``key`` (the request key), ``day``, ``variant``, ``served`` and
    ``abs_error``. ``paired=True`` (shadow mode): both variants predicted every request; the per-request differences
    are averaged within each day. ``paired=False`` (a canary stage): each variant's served requests of the day are
    averaged, and the day's value is the difference; days on which one variant answered nothing are left out.
    """
    missing = {"key", "day", "variant", "served", "abs_error"} - set(log.columns)
    if missing:
        raise ValueError(f"the log lacks the columns {sorted(missing)}: join the labels first")
    if paired:
        pairs = log.pivot_table(index=["day", "key"], columns="variant", values="abs_error")
        if not {"champion", "challenger"} <= set(pairs.columns):
            raise ValueError("a paired comparison needs predictions of both variants (shadow mode)")
        per_request = (pairs["challenger"] - pairs["champion"]).dropna()
        return per_request.groupby(level="day").mean().rename("difference")
    served = log[log["served"].astype(bool)]
    by_day = served.pivot_table(index="day", columns="variant", values="abs_error", aggfunc="mean")
    if not {"champion", "challenger"} <= set(by_day.columns):
        raise ValueError("a canary comparison needs requests answered by both variants")
    return (by_day["challenger"] - by_day["champion"]).dropna().rename("difference")


# -- a fixed horizon: how many days? ---------------------------------------------------------------------------------
def _z(alpha: float, power: float) -> float:
    from scipy import stats

    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must be between 0 and 1, not {alpha!r} and {power!r}")
    return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))


def t_test_power(days: int, effect_size: float, *, alpha: float = 0.05) -> float:
    """The chance that one two-sided t-test of ``days`` daily differences, at ``alpha``, finds a true mean difference
    of ``effect_size`` standard deviations of a day, on its side (the noncentral t distribution; normal days)."""
    from scipy import stats

    if days < 2:
        raise ValueError(f"a t-test needs at least 2 days, not {days!r}")
    df = days - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(critical, df, abs(effect_size) * math.sqrt(days)))


def days_needed(sd: float, effect: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Days a two-sided t-test of the mean daily difference needs, looked at once, to detect ``effect`` with
    ``power``, when daily differences spread with standard deviation ``sd``.

    The normal formula ``((z_alpha/2 + z_power) sd/effect)^2`` is the first guess; the t-test, which also estimates
    the spread, has a little less power at that many days (0.74 instead of 0.8 around 10 days), so the answer is the
    first number of days from there whose :func:`t_test_power` reaches ``power``.
    """
    if not (sd > 0 and effect != 0 and math.isfinite(sd) and math.isfinite(effect)):
        raise ValueError(f"sd must be positive and effect non-zero, not {sd!r} and {effect!r}")
    days = max(2, math.ceil((_z(alpha, power) * sd / abs(effect)) ** 2))
    while t_test_power(days, effect / sd, alpha=alpha) < power:
        days += 1
    return days


def detectable_effect(sd: float, days: int, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest difference ``days`` days detect with ``power`` in one t-test (:func:`days_needed` the other way
    round: :func:`t_test_power` solved for the effect)."""
    from scipy import optimize

    if days < 2 or not sd > 0:
        raise ValueError(f"days must be at least 2 and sd positive, not {days!r} and {sd!r}")
    high = _z(alpha, power) / math.sqrt(days)  # the normal formula's answer, a lower bound: double it until enough
    while t_test_power(days, high, alpha=alpha) < power:
        high *= 2
    return sd * optimize.brentq(lambda size: t_test_power(days, size, alpha=alpha) - power, 0.0, high)


# -- daily looks: the sequential test --------------------------------------------------------------------------------
def t_paths(x) -> np.ndarray:
    """The one-sample t statistic after each day, for every row of ``x`` (rows: runs, columns: days).

    Column ``k - 1`` is the t statistic of the first ``k`` values of the row (NaN for ``k = 1``)."""
    import numpy as np

    x = np.asarray(x, dtype="float64")
    k = np.arange(1, x.shape[-1] + 1)
    mean = np.cumsum(x, axis=-1) / k
    squares = np.cumsum((x - mean[..., -1:]) ** 2, axis=-1) - k * (mean - mean[..., -1:]) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return mean / np.sqrt(squares / (k - 1) / k)


def _simulated_days(
    days: int, simulations: int, seed: int | None, shift: float = 0.0, df: float | None = None
) -> np.ndarray:
    """``simulations`` runs of ``days`` daily differences: standard normal (or Student's t with ``df``), plus
    ``shift``."""
    import numpy as np

    from mlops_helpers.models import SEED

    if days < 2 or simulations < 100:
        raise ValueError(f"simulate at least 2 days and 100 runs, not {days!r} and {simulations!r}")
    rng = np.random.default_rng(SEED if seed is None else seed)
    shape = (simulations, days)
    return (rng.standard_normal(shape) if df is None else rng.standard_t(df, shape)) + shift


def _check_first_look(first_look: int, days: int) -> None:
    if not 2 <= first_look <= days:
        raise ValueError(f"first_look must be between 2 and days ({days}), not {first_look!r}")


def sequential_boundary(
    days: int, *, alpha: float = 0.05, first_look: int = 7, simulations: int = 20_000, seed: int | None = None
) -> float:
    """The ``|t|`` that a daily look from day ``first_look`` to day ``days`` must reach to decide, so that with no
    difference the chance of deciding on *any* of those days is ``alpha`` (two-sided).

    Calibrated by simulating ``simulations`` runs of ``days`` normal daily differences (seeded): the boundary is the
    ``1 - alpha`` quantile of the largest ``|t|`` over the looks. The t statistic does not depend on the spread of the
    data, so one simulation serves every release.
    """
    import numpy as np

    _check_first_look(first_look, days)
    t = t_paths(_simulated_days(days, simulations, seed))[:, first_look - 1 :]
    return float(np.quantile(np.abs(t).max(axis=1), 1 - alpha))


def sequential_power(
    days: int,
    effect_size: float,
    boundary: float,
    *,
    first_look: int = 7,
    simulations: int = 20_000,
    seed: int | None = None,
) -> float:
    """The chance that the daily looks cross ``boundary`` on the side of a true difference of ``effect_size``
    standard deviations of a daily difference (simulated, seeded)."""
    _check_first_look(first_look, days)
    t = t_paths(_simulated_days(days, simulations, seed, shift=abs(effect_size)))[:, first_look - 1 :]
    return float((t.max(axis=1) >= boundary).mean())


@dataclass(frozen=True)
class SequentialPlan:
    """A sequential test planned before the data: look every day from ``first_look`` to ``days`` (the horizon), and
    decide as soon as ``|t|`` reaches ``boundary``. ``power`` is the simulated chance of detecting ``effect`` given
    daily differences of standard deviation ``sd``; ``fixed_days`` is what a single look at the end would need."""

    days: int
    first_look: int
    boundary: float
    alpha: float = 0.05
    effect: float | None = None
    sd: float | None = None
    power: float | None = None
    fixed_days: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_sequential(
    sd: float,
    effect: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    first_look: int = 7,
    simulations: int = 20_000,
    seed: int | None = None,
    max_days: int = 365,
) -> SequentialPlan:
    """The shortest horizon whose daily looks (from ``first_look``) detect ``effect`` with at least ``power``.

    Starts from the fixed-horizon :func:`days_needed` and adds days: looking every day costs a stricter boundary, so
    the horizon is a little longer than a single look would need. ``ValueError`` if ``max_days`` is not enough.
    """
    fixed = days_needed(sd, effect, alpha=alpha, power=power)
    for days in range(max(fixed, first_look), max_days + 1):
        boundary = sequential_boundary(days, alpha=alpha, first_look=first_look, simulations=simulations, seed=seed)
        reached = sequential_power(days, effect / sd, boundary, first_look=first_look, simulations=simulations,
                                   seed=seed)  # fmt: skip
        if reached >= power:
            return SequentialPlan(days, first_look, boundary, alpha, effect, sd, reached, fixed)
    raise ValueError(f"{max_days} days are not enough to detect {effect!r} with power {power!r}: raise the effect")


def peeking(
    days: int,
    boundary: float,
    *,
    first_look: int = 7,
    alpha: float = 0.05,
    simulations: int = 20_000,
    seed: int | None = None,
    df: float | None = None,
) -> dict[str, float]:
    """False-alarm rates with no true difference, looking every day from ``first_look`` to ``days``.

    ``naive``: a plain t-test at ``alpha`` each day, stopping at the first p below it; ``sequential``: the same looks
    against ``boundary``; ``single look``: one t-test on the last day. Daily differences are normal, or heavy-tailed
    (Student's t with ``df`` degrees of freedom: days like a hurricane's) when ``df`` is given.
    """
    import numpy as np
    from scipy import stats

    _check_first_look(first_look, days)
    t = np.abs(t_paths(_simulated_days(days, simulations, seed, df=df))[:, first_look - 1 :])
    critical = stats.t.ppf(1 - alpha / 2, np.arange(first_look, days + 1) - 1)
    return {
        "naive": float((t > critical).any(axis=1).mean()),
        "sequential": float((t.max(axis=1) >= boundary).mean()),
        "single look": float((t[:, -1] > critical[-1]).mean()),
    }


@dataclass(frozen=True)
class Look:
    """One daily look of a sequential test: the mean daily difference (challenger minus champion), its interval
    (valid at every look: ``boundary`` standard errors each side), ``t`` and the decision."""

    day: int
    days: int
    difference: float
    ci_low: float
    ci_high: float
    t: float
    boundary: float
    decision: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: the day, the difference with its interval, t against the boundary, and the decision."""
        return (
            f"day {self.day} of {self.days}: challenger - champion MAE = {self.difference:+.2f} "
            f"(interval {self.ci_low:+.2f} to {self.ci_high:+.2f}), t = {self.t:+.2f} vs +/-{self.boundary:.2f} "
            f"-> {self.decision.upper()}: {self.reason}"
        )


def _sequential_decision(t: float, day: int, plan: SequentialPlan) -> tuple[str, str]:
    if day < plan.first_look:
        return "continue", f"the first look is on day {plan.first_look}"
    if t <= -plan.boundary:
        return "promote", "the challenger's error is lower, beyond the boundary of daily looks"
    if t >= plan.boundary:
        return "rollback", "the challenger's error is higher, beyond the boundary of daily looks"
    if day >= plan.days:
        return "rollback", f"no difference shown in the {plan.days} planned days: the champion stays"
    return "continue", "inside the boundary: look again tomorrow"


def sequential_look(differences, plan: SequentialPlan) -> Look:
    """Today's look at the daily differences so far (challenger minus champion, one per day, oldest first).

    ``promote`` when ``t <= -boundary``, ``rollback`` when ``t >= boundary`` or when the planned days are over,
    ``continue`` otherwise (and before ``first_look``). Raises ``ValueError`` for fewer than 2 days, non-finite
    values, or more days than planned.
    """
    import numpy as np

    d = np.asarray(differences, dtype="float64").reshape(-1)
    if d.size < 2 or not np.isfinite(d).all():
        raise ValueError(f"a look needs at least 2 finite daily differences, not {d.size}")
    if d.size > plan.days:
        raise ValueError(f"{d.size} days is beyond the plan's {plan.days}: a new test needs a new plan")
    mean, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size))
    t = mean / se if se > 0 else math.copysign(math.inf, mean) if mean else 0.0
    decision, reason = _sequential_decision(t, d.size, plan)
    margin = plan.boundary * se
    return Look(d.size, plan.days, mean, mean - margin, mean + margin, t, plan.boundary, decision, reason)
