"""Release decisions: is the challenger better online, and how sure are we? (notebook 09)

The prediction service (:mod:`mlops_helpers.serving`) routes traffic between ``champion`` and ``challenger`` and
logs every prediction with its variant. Once the labels arrive, :func:`compare` answers the question a release needs:
is the challenger's online error lower than the champion's, and how sure are we? It states its test and returns a
confidence interval for the difference, and :class:`Comparison` turns that into ``promote``, ``rollback`` or
``continue`` (keep collecting). Two designs, two tests:

- **canary** (each request answered by one variant): the two samples are independent, so the test is Welch's t-test
  on the absolute errors (unequal variances, unequal sizes);
- **shadow** (both variants predict on every request): the errors are paired, so the test is the paired t-test on
  the per-request differences, or on their means per group (a day, say) when neighbouring requests are correlated,
  as hours are: averaging within a day and testing the daily means is the honest way to use correlated data.

Both rely on the central limit theorem for the mean of the errors (tens of observations at least): below
``min_samples`` the decision is ``continue``.

The same release on a cluster (KServe, Seldon Core) is written by :mod:`mlops_helpers.manifests`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


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
    """Compare two variants' absolute errors and decide.

    ``paired=False`` (canary): two independent samples, Welch's t-test. ``paired=True`` (shadow): the two arrays are
    the same requests in the same order; paired t-test on the differences, after averaging them within ``groups``
    (labels of the same length, e.g. the day of each request) when given. ``min_samples`` counts the smaller sample,
    or the pairs/groups. The challenger is promoted only when the whole interval lies below ``-margin``; it is rolled
    back when the whole interval lies above 0, or (``final=True``, the canary's budget is spent) when it is not
    better. Raises ``ValueError`` for empty, non-finite or mismatched input.
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
