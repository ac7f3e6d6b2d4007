"""Drift statistics: PSI, two-sample Kolmogorov-Smirnov and chi-square over whole tables (introduced in notebook 06).

Notebook 06 writes PSI and K-S out by hand first; this module is the same arithmetic for every column at once, fast
enough for the 336,776 NYC flights, and it bins exactly as Evidently does, so the numbers agree with its reports:

- numeric columns with more than 20 distinct reference values: PSI over ``numpy.histogram_bin_edges(reference and
  current together, bins="sturges")``; otherwise, and for categorical columns, PSI over the distinct values;
- an empty bin gets a small share instead of 0 (``1e-4``, or the smallest non-zero share / 1e6 when that is smaller),
  so the logarithm stays finite;
- K-S p-value from ``scipy.stats.ks_2samp`` with SciPy's default ``method="auto"``: the exact distribution of the
  statistic when neither sample has more than 10,000 values, the asymptotic (Kolmogorov) one above; Evidently calls
  the same function, so the p-values agree either way (numeric);
- chi-square p-value from ``scipy.stats.chisquare`` with the reference shares scaled to the current size: a
  goodness-of-fit test that takes the reference shares as exact (categorical). Evidently's default for a *binary*
  column with a reference of at most 1,000 rows is a two-proportion Z-test instead, which also counts the reference's
  own noise, so its p-value is larger; ask it for ``"chisquare"`` to compare.

A column drifts by ``method``: ``"psi"`` (the default) when its PSI is at least ``psi_threshold`` (0.1, Evidently's
default; or one threshold per column, e.g. calibrated on the reference's own weeks as notebook 06 does), ``"test"``
when its p-value is below ``alpha`` (0.05). The tests assume independent rows; hourly data are not (the weather of one
hour predicts the next), so their p-values come out far too small: notebook 06 decides with PSI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

PSI_THRESHOLD = 0.1
ALPHA = 0.05


def _fill_empty(shares: np.ndarray) -> np.ndarray:
    smallest = shares[shares > 0].min() if (shares > 0).any() else 1.0
    fill = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    return np.where(shares == 0, fill, shares)


def _finite(values: pd.Series) -> pd.Series:
    """The values without missing and infinite ones (Evidently drops both before any test)."""
    if pd.api.types.is_numeric_dtype(values):
        values = values.replace([np.inf, -np.inf], np.nan)
    return values.dropna()


def binned_shares(reference: pd.Series, current: pd.Series, kind: str = "numeric") -> tuple[np.ndarray, np.ndarray]:
    """The share of reference and current values in each bin (Evidently's binning; see the module docstring)."""
    reference, current = _finite(reference), _finite(current)
    if kind == "numeric" and reference.nunique() > 20:
        both = np.concatenate([reference.to_numpy(dtype="float64"), current.to_numpy(dtype="float64")])
        edges = np.histogram_bin_edges(both, bins="sturges")
        ref = np.histogram(reference.to_numpy(dtype="float64"), edges)[0] / len(reference)
        cur = np.histogram(current.to_numpy(dtype="float64"), edges)[0] / len(current)
    else:
        keys = pd.Index(pd.concat([reference, current]).unique())
        ref = reference.value_counts().reindex(keys, fill_value=0).to_numpy() / len(reference)
        cur = current.value_counts().reindex(keys, fill_value=0).to_numpy() / len(current)
    return _fill_empty(ref.astype("float64")), _fill_empty(cur.astype("float64"))


def psi(reference: pd.Series, current: pd.Series, kind: str = "numeric") -> float:
    """Population stability index: sum over bins of (ref - cur) * ln(ref / cur). 0 = same; >= 0.1 = drift."""
    ref, cur = binned_shares(reference, current, kind)
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def ks_pvalues(reference: pd.DataFrame, current: pd.DataFrame) -> np.ndarray:
    """Two-sample K-S p-values for every column at once (``scipy.stats.ks_2samp`` along axis 0)."""
    from scipy.stats import ks_2samp

    ref, cur = reference.to_numpy(dtype="float64"), current.to_numpy(dtype="float64")
    if not (np.isfinite(ref).all() and np.isfinite(cur).all()):  # the vectorised path needs complete columns
        return np.array([ks_2samp(_finite(reference[c]), _finite(current[c])).pvalue for c in reference.columns])
    return np.atleast_1d(ks_2samp(ref, cur, axis=0).pvalue)


def chi2_pvalue(reference: pd.Series, current: pd.Series) -> float:
    """Chi-square p-value of the current category counts against the reference shares."""
    from scipy.stats import chisquare

    keys = pd.Index(pd.concat([reference.dropna(), current.dropna()]).unique())
    expected = reference.value_counts().reindex(keys, fill_value=0).to_numpy() * (len(current) / len(reference))
    observed = current.value_counts().reindex(keys, fill_value=0).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(chisquare(observed, expected, sum_check=False).pvalue)


def drift_table(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    method: str = "psi",
    psi_threshold: float | Mapping[str, float] | pd.Series = PSI_THRESHOLD,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """One row per column: its PSI, its test p-value (K-S or chi-square), and whether it drifted by ``method``.

    ``numeric`` defaults to every numeric column not listed in ``categorical``. ``method`` is ``"psi"`` (drift when
    PSI >= ``psi_threshold``, a number or a mapping with a threshold for every column) or ``"test"`` (drift when
    p-value < ``alpha``).
    """
    if method not in {"psi", "test"}:
        raise ValueError(f"method must be 'psi' or 'test', not {method!r}")
    categorical = list(categorical)
    if numeric is None:
        numeric = [c for c in reference.select_dtypes("number").columns if c not in categorical]
    numeric = list(numeric)
    missing = sorted(set(numeric + categorical) - set(reference.columns) - set(current.columns))
    missing += sorted({c for c in numeric + categorical if c not in current.columns or c not in reference.columns})
    if missing:
        raise KeyError(f"columns missing from reference or current: {sorted(set(missing))}")
    rows = []
    pvalues = ks_pvalues(reference[numeric], current[numeric]) if numeric else []
    for column, pvalue in zip(numeric, pvalues, strict=True):
        rows.append((column, "numeric", psi(reference[column], current[column]), float(pvalue), "K-S"))
    for column in categorical:
        value = psi(reference[column], current[column], kind="categorical")
        rows.append((column, "categorical", value, chi2_pvalue(reference[column], current[column]), "chi-square"))
    table = pd.DataFrame(rows, columns=["column", "kind", "psi", "p_value", "test"]).set_index("column")
    table["drifted"] = (
        table["psi"] >= _thresholds(psi_threshold, table.index) if method == "psi" else table["p_value"] < alpha
    )
    return table


def _thresholds(psi_threshold: float | Mapping[str, float] | pd.Series, columns: pd.Index) -> float | pd.Series:
    """One PSI threshold, or the per-column thresholds for ``columns`` (a mapping or Series with one per column)."""
    if isinstance(psi_threshold, (int, float, np.number)):
        return float(psi_threshold)
    given = dict(psi_threshold)
    missing = [c for c in columns if c not in given]
    if missing:
        raise KeyError(f"psi_threshold has no threshold for {missing}: give one per column, or a single number")
    return pd.Series({c: float(given[c]) for c in columns})


def share_drifted(table: pd.DataFrame) -> float:
    """The share of columns that drifted (Evidently's ``DriftedColumnsCount`` share)."""
    return float(table["drifted"].mean()) if len(table) else 0.0
