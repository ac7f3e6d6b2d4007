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


def _write(tmp_path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_a_file_that_is_not_a_table_is_a_violation_that_says_where_and_what_to_do(raw, tmp_path):
    text = raw.head(200).to_csv(index=False).encode().splitlines(keepends=True)
    latin = [*text[:9], text[9].replace(b",clear,", b",cl\xe9ar,"), *text[10:]]
    assert latin != text
    cases = {
        "empty.csv": (b"", "file", "the file is empty (0 bytes)", "a header line and at least 168 rows"),
        "blank.csv": (b"\n \n", "file", "the file is empty (3 bytes)", "export the batch again"),
        "latin.csv": (
            b"".join(latin),
            "encoding",
            "line 10, column 'weathersit': byte 0xe9 is not UTF-8",
            "save the file as UTF-8",
        ),
        "ragged.csv": (
            b"".join([*text[:5], text[5].rstrip(b"\n") + b",9\n", *text[6:]]),
            "format",
            "not a table: Expected 15 fields in line 6, saw 16",
            "as many comma-separated fields",
        ),
    }
    for name, (content, check, detail, fix) in cases.items():
        frame, report = BIKES_CONTRACT.check_file(_write(tmp_path, name, content))
        assert frame is None and [(v.check, v.detail.split(" (the file")[0]) for v in report.violations] == [
            (check, detail)
        ], name
        assert report.verdict() == f"data contract: REFUSED, the batch: {report.violations[0].detail}" + (
            " (1 row)" if check == "encoding" else ""
        )
        assert any(fix in line for line in report.explain()) and report.to_dict()["what_to_do"]
    _, missing = BIKES_CONTRACT.check_file(tmp_path / "nowhere.csv")
    assert missing.violations[0].detail == f"no such file: {tmp_path / 'nowhere.csv'}"


def test_a_header_without_rows_says_how_many_rows_are_needed(raw, tmp_path):
    frame, report = BIKES_CONTRACT.check_file(_write(tmp_path, "header.csv", raw.head(0).to_csv(index=False).encode()))
    assert frame is not None and frame.empty
    assert report.verdict() == "data contract: REFUSED, the batch: 0 rows, at least 168 needed"
    assert (
        "what to do: send at least 168 hourly rows (a week); a header without rows is not a batch" in report.explain()
    )


def test_wrong_columns_are_named_with_the_expected_ones(raw):
    report = BIKES_CONTRACT.validate(raw.head(300).drop(columns=["windspeed"]).assign(wind=0.1))
    assert report.verdict() == (
        "data contract: REFUSED, windspeed: column is missing (300 rows); "
        "wind: column is not in the contract (300 rows)"
    )
    lines = report.explain()
    assert f"expected columns: {', '.join(BIKES_CONTRACT.columns)}" in lines
    assert "what to do: add the missing column(s)" in lines
    assert "what to do: drop or rename the column(s) the contract does not know" in lines
    assert report.to_dict()["expected_columns"] == list(BIKES_CONTRACT.columns)
