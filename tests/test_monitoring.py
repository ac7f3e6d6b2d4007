"""Drift statistics: known values, agreement with scipy, and agreement with Evidently's own reports."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chisquare, ks_2samp

from mlops_helpers import data, monitoring


@pytest.fixture(scope="module")
def bikes():
    return data.load_bikes()


def test_psi_of_a_hand_computed_example():
    reference = pd.Series(["a", "a", "b", "b"])
    current = pd.Series(["a", "b", "b", "b"])
    expected = (0.5 - 0.25) * math.log(0.5 / 0.25) + (0.5 - 0.75) * math.log(0.5 / 0.75)
    assert monitoring.psi(reference, current, kind="categorical") == pytest.approx(expected, abs=1e-12)
    assert monitoring.psi(reference, reference, kind="categorical") == 0.0


def test_empty_bins_get_a_small_share_not_zero():
    reference = pd.Series(["a"] * 10)
    current = pd.Series(["a"] * 5 + ["b"] * 5)
    ref, cur = monitoring.binned_shares(reference, current, kind="categorical")
    assert ref.tolist() == [1.0, 1e-4] and cur.tolist() == [0.5, 0.5]
    assert np.isfinite(monitoring.psi(reference, current, kind="categorical"))


def test_numeric_psi_uses_sturges_bins_over_both_samples():
    rng = np.random.default_rng(0)
    reference, current = pd.Series(rng.normal(0, 1, 1000)), pd.Series(rng.normal(0.5, 1, 800))
    edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
    ref = np.histogram(reference, edges)[0] / 1000
    cur = np.histogram(current, edges)[0] / 800
    ref, cur = np.where(ref == 0, 1e-4, ref), np.where(cur == 0, 1e-4, cur)
    assert monitoring.psi(reference, current) == pytest.approx(float(np.sum((ref - cur) * np.log(ref / cur))))
    same = pd.Series(rng.normal(0, 1, 1000))
    assert monitoring.psi(reference, same) < monitoring.PSI_THRESHOLD < monitoring.psi(reference, current)


def test_ks_pvalues_are_scipys_column_by_column(bikes):
    reference = data.window(bikes, "2011-01-01", "2011-04-01")
    current = data.window(bikes, "2011-07-01", "2011-08-01")
    columns = ["temp", "hum", "windspeed", "hr"]
    got = monitoring.ks_pvalues(reference[columns], current[columns])
    expected = [ks_2samp(reference[c], current[c]).pvalue for c in columns]
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-300)
    with_gap = current[columns].copy()
    with_gap.iloc[0, 0] = np.nan
    assert monitoring.ks_pvalues(reference[columns], with_gap)[0] == pytest.approx(
        ks_2samp(reference["temp"], with_gap["temp"].dropna()).pvalue
    )


def test_chi2_pvalue_matches_scipy():
    reference = pd.Series(["clear"] * 60 + ["rain"] * 40)
    current = pd.Series(["clear"] * 30 + ["rain"] * 20)
    assert monitoring.chi2_pvalue(reference, current) == pytest.approx(1.0)
    current = pd.Series(["clear"] * 10 + ["rain"] * 40)
    assert monitoring.chi2_pvalue(reference, current) == pytest.approx(chisquare([10, 40], [30, 20]).pvalue)


def test_drift_between_halves_of_the_reference_but_not_in_july(bikes):
    train = data.window(bikes, "2011-01-01", "2011-04-01")
    numeric = ["temp", "atemp", "hum", "windspeed", "hr"]
    jan, march = data.window(bikes, "2011-01-01", "2011-01-16"), data.window(bikes, "2011-01-16", "2011-02-01")
    quiet = monitoring.drift_table(jan, march, numeric=["hr"], categorical=["workingday"])
    assert not quiet["drifted"].any()
    july = monitoring.drift_table(train, data.window(bikes, "2011-07-01", "2011-08-01"), numeric=numeric)
    assert july.loc["temp", "drifted"] and july.loc["temp", "psi"] > 5
    assert not july.loc["hr", "drifted"]  # the hours of the day do not drift
    assert monitoring.share_drifted(july) == pytest.approx(0.8)
    by_test = monitoring.drift_table(train, data.window(bikes, "2011-07-01", "2011-08-01"), numeric, method="test")
    assert by_test.loc["temp", "p_value"] < monitoring.ALPHA


def test_drift_table_refuses_unknown_columns_and_methods(bikes):
    with pytest.raises(KeyError, match="nope"):
        monitoring.drift_table(bikes, bikes, numeric=["nope"])
    with pytest.raises(ValueError, match="method"):
        monitoring.drift_table(bikes, bikes, numeric=["temp"], method="vibes")


def test_agrees_with_evidently(bikes):
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric, categorical = ["temp", "hum", "windspeed", "hr"], ["weathersit"]
    columns = numeric + categorical
    reference = data.window(bikes, "2011-01-01", "2011-04-01")[columns].astype({"weathersit": str})
    current = data.window(bikes, "2011-07-01", "2011-08-01")[columns].astype({"weathersit": str})
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    datasets = [Dataset.from_pandas(frame, data_definition=definition) for frame in (current, reference)]
    ours = monitoring.drift_table(reference, current, numeric=numeric, categorical=categorical)
    for preset, field in ((DataDriftPreset(method="psi"), "psi"),
                          (DataDriftPreset(num_method="ks", cat_method="chisquare"), "p_value")):  # fmt: skip
        values = {
            m["config"]["column"]: float(m["value"])
            for m in Report([preset]).run(*datasets).dict()["metrics"]
            if m["config"]["type"].endswith("ValueDrift")
        }
        assert set(values) == set(columns)
        for column in columns:
            assert ours.loc[column, field] == pytest.approx(values[column], rel=1e-9, abs=1e-300), (field, column)


def test_drift_table_takes_a_threshold_per_column(bikes):
    reference = data.window(bikes, "2011-01-01", "2011-04-01")
    july = data.window(bikes, "2011-07-01", "2011-08-01")
    columns = {"numeric": ["temp", "hr"], "categorical": ["workingday"]}
    plain = monitoring.drift_table(reference, july, **columns)
    strict = {"temp": 20.0, "hr": 0.001, "workingday": 0.1}
    for thresholds in (strict, pd.Series(strict)):
        table = monitoring.drift_table(reference, july, psi_threshold=thresholds, **columns)
        assert table["psi"].equals(plain["psi"])
        assert table["drifted"].to_dict() == {"temp": False, "hr": True, "workingday": False}
    with pytest.raises(KeyError, match="no threshold for \\['workingday'\\]"):
        monitoring.drift_table(reference, july, psi_threshold={"temp": 1.0, "hr": 1.0}, **columns)


def test_ks_pvalues_use_scipys_default_method_exact_for_small_samples(bikes):
    reference = data.window(bikes, "2011-01-01", "2011-04-01")
    july = data.window(bikes, "2011-07-01", "2011-08-01")
    got = monitoring.ks_pvalues(reference[["hum"]], july[["hum"]])[0]
    assert got == pytest.approx(ks_2samp(reference["hum"], july["hum"], method="exact").pvalue, rel=1e-12)
    assert got != pytest.approx(ks_2samp(reference["hum"], july["hum"], method="asymp").pvalue, rel=1e-4)
