"""The data contract reports every violation of a batch, with counts, and passes the real data."""

from __future__ import annotations

import pandas as pd
import pytest

from mlops_helpers import data
from mlops_helpers.validation import BIKES_CONTRACT, ColumnRule, DataContract


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return pd.read_csv(data.DATA_DIR / data.BIKES_FILE)


def _checks(report) -> set[tuple[str, str]]:
    return {(v.column, v.check) for v in report.violations}


def test_the_real_data_passes(raw):
    report = BIKES_CONTRACT.validate(raw)
    assert report.ok and report.rows == 8645
    assert report.verdict() == "data contract: passed (8645 rows)"
    assert report.to_frame().empty


def test_every_violation_is_reported_with_its_row_count(raw):
    bad = raw.head(500).copy()
    bad.loc[:10, "temp"] = 31.5  # Celsius instead of the normalised 0-1
    bad.loc[20:25, "hum"] = None
    bad.loc[30, "weathersit"] = "sunny"
    bad.loc[40:42, "bikers"] = -3
    bad["hr"] = bad["hr"].astype(str)
    bad.loc[50, "hr"] = "noon"
    bad["weekday"] = bad["weekday"].astype("float64")
    bad.loc[60, "weekday"] = 2.5
    report = BIKES_CONTRACT.validate(bad)
    assert not report.ok
    found = {(v.column, v.check): v for v in report.violations}
    assert found[("temp", "range")].rows == 11 and "max 31.5" in found[("temp", "range")].detail
    assert found[("hum", "not_null")].rows == 6
    assert found[("weathersit", "allowed")].detail == "unknown values: sunny"
    assert found[("bikers", "range")].rows == 3
    assert found[("bikers", "sum")].rows == 3  # casual + registered no longer add up
    assert found[("hr", "type")].detail == "not a number: noon"
    assert found[("weekday", "type")].detail == "not a whole number"
    assert "REFUSED, 7 violation(s)" in report.verdict()


def test_structure_rows_duplicates_and_window(raw):
    small = raw.head(30).drop(columns=["windspeed"]).assign(extra=1)
    report = BIKES_CONTRACT.validate(small)
    assert {("windspeed", "present"), ("extra", "expected"), ("*", "min_rows")} <= _checks(report)
    doubled = pd.concat([raw.head(200), raw.head(5)])
    assert ("day,hr", "unique") in _checks(BIKES_CONTRACT.validate(doubled))
    spring = raw[(raw["day"] > 90) & (raw["day"] <= 120)]
    assert BIKES_CONTRACT.validate(spring, ("2011-04-01", "2011-05-01")).ok
    outside = BIKES_CONTRACT.validate(spring, ("2011-04-01", "2011-04-15"))
    after_the_14th = int((spring["day"] >= 105).sum())  # 2011-04-15 is day 105
    assert [(v.column, v.check, v.rows) for v in outside.violations] == [("day,hr", "window", after_the_14th)]


def test_a_custom_contract():
    contract = DataContract(rules=(ColumnRule("x", "float", 0, 1, nullable=True),), min_rows=1, target_parts=())
    frame = pd.DataFrame({"x": [0.5, None, 2.0]})
    report = contract.validate(frame)
    assert [(v.column, v.check, v.rows) for v in report.violations] == [("x", "range", 1)]
